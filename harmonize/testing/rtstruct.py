"""Write a CT series and an RT Structure Set referencing it, from REAL DICOM headers.

The CT slices start from pydicom's ``CT_small.dcm`` and the structure set from its
``rtstruct.dcm`` (both shipped in pydicom's test files); geometry, UIDs, pixels, ROIs and contours
are replaced. Contours are given in voxel indices of the series (column ``i``, row ``j``) and
written in LPS mm, so tests know the exact voxel set of every ROI: :func:`voxel_box` draws an
axis-aligned rectangle with its edges half a voxel outside voxels ``i0..i1 x j0..j1``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harmonize.testing.dicom import SeriesGeometry, uid

__all__ = ["voxel_box", "voxel_polygon", "write_ct", "write_rtstruct"]

#: one contour: (slice index k, (N, 2) voxel (i, j) vertices)
Contour = tuple[int, np.ndarray]


def _testdata(name: str) -> str:
    """Path of one of pydicom's bundled test files."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if not isinstance(path, str):
        raise FileNotFoundError(f"pydicom's test file {name} is not installed")
    return path


def voxel_polygon(geometry: SeriesGeometry, k: float, ij: np.ndarray) -> np.ndarray:
    """LPS mm points of voxel-index vertices ``ij`` ((N, 2): column i, row j) on slice ``k``."""
    o = np.asarray(geometry.orientation, dtype=float)
    ij = np.asarray(ij, dtype=float)
    base = np.asarray(geometry.origin, dtype=float) + k * geometry.step * geometry.normal
    return (base[None] + ij[:, :1] * geometry.pixel_spacing[1] * o[None, :3]
            + ij[:, 1:2] * geometry.pixel_spacing[0] * o[None, 3:])


def voxel_box(i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
    """Vertices (i, j) of the rectangle covering exactly voxels ``i0..i1 x j0..j1``."""
    return np.array([[i0 - 0.5, j0 - 0.5], [i1 + 0.5, j0 - 0.5], [i1 + 0.5, j1 + 0.5],
                     [i0 - 0.5, j1 + 0.5]])


def write_ct(folder: Path, geometry: SeriesGeometry, volume: np.ndarray, *, series_uid: str,
             study_uid: str, frame_uid: str, patient_id: str, names: Sequence[str] | None = None,
             series_number: int = 0) -> list[Path]:
    """Write ``volume`` ((columns, rows, slices) HU) as a CT series; slice k is named
    ``names[k]`` (default ``1-001.dcm`` ...). Returns the paths."""
    import pydicom

    template = pydicom.dcmread(_testdata("CT_small.dcm"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    slope, inter = float(template.RescaleSlope), float(template.RescaleIntercept)
    paths = []
    for k in range(volume.shape[2]):
        ds = copy.deepcopy(template)
        sop = uid(series_uid, "slice", k)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientID = ds.PatientName = patient_id
        ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
        ds.Rows, ds.Columns = geometry.rows, geometry.columns
        ds.PixelSpacing = [f"{v:g}" for v in geometry.pixel_spacing]
        ds.ImageOrientationPatient = [f"{v:g}" for v in geometry.orientation]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in geometry.position(k)]
        ds.SliceLocation = f"{geometry.position(k)[2]:.4f}"
        ds.SliceThickness = f"{abs(geometry.step):g}"
        stored = np.rint((volume[:, :, k].T - inter) / slope).astype(np.int16)
        ds.PixelData = stored.tobytes()
        path = folder / (names[k] if names else f"1-{k + 1:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_rtstruct(path: Path, geometry: SeriesGeometry, ct_files: Sequence[Path],
                   rois: Mapping[str, Sequence[Contour]], *, series_uid: str, study_uid: str,
                   frame_uid: str, patient_id: str, kinds: Mapping[str, str] | None = None,
                   z_offset_mm: float = 0.0) -> Path:
    """Write an RTSTRUCT referencing the CT ``ct_files`` (series ``series_uid``) with one ROI
    per entry of ``rois`` (in order; ROI numbers 1, 2, ...), each a list of ``(k, vertices)``
    contours in voxel indices. ``kinds`` overrides ContourGeometricType per ROI (default
    CLOSED_PLANAR); ``z_offset_mm`` moves every contour along the slice normal (off-slice tests).
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as Seq

    ds = pydicom.dcmread(_testdata("rtstruct.dcm"), force=True)
    sop = uid(series_uid, "rtstruct", path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop)
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = uid(series_uid, "rtstruct series", path)
    ds.PatientID = ds.PatientName = patient_id
    ds.Modality = "RTSTRUCT"
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_files]
    sop_of = {int(h.InstanceNumber) - 1: str(h.SOPInstanceUID) for h in headers}

    def image_ref(k: int) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = sop_of[k]
        return item

    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ContourImageSequence = Seq([image_ref(k) for k in sorted(sop_of)])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = study_uid
    study.RTReferencedSeriesSequence = Seq([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = Seq([study])
    ds.ReferencedFrameOfReferenceSequence = Seq([frame])
    set_rois, contour_rois, observations = [], [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        item = Dataset()
        item.ROINumber, item.ReferencedFrameOfReferenceUID = number, frame_uid
        item.ROIName, item.ROIGenerationAlgorithm = name, "MANUAL"
        set_rois.append(item)
        roi = Dataset()
        roi.ReferencedROINumber = number
        roi.ROIDisplayColor = [255, 0, 0]
        sequence = []
        for n, (k, ij) in enumerate(contours, start=1):
            points = voxel_polygon(geometry, k, ij) + z_offset_mm * geometry.normal
            contour = Dataset()
            contour.ContourImageSequence = Seq([image_ref(int(k))])
            contour.ContourGeometricType = (kinds or {}).get(name, "CLOSED_PLANAR")
            contour.NumberOfContourPoints = len(points)
            contour.ContourNumber = n
            contour.ContourData = [f"{v:.6g}" for v in points.ravel()]
            sequence.append(contour)
        if sequence:
            roi.ContourSequence = Seq(sequence)
        contour_rois.append(roi)
        observation = Dataset()
        observation.ObservationNumber = observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN"
        observation.ROIInterpreter = ""
        observations.append(observation)
    ds.StructureSetROISequence = Seq(set_rois)
    ds.ROIContourSequence = Seq(contour_rois)
    ds.RTROIObservationsSequence = Seq(observations)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
