"""Fabricate a CT series from a REAL CT header and a DICOM-SEG on it, with highdicom directly.

The CT slices are copies of pydicom's test file ``CT_small.dcm`` (a real 128 x 128 CT slice,
0.66 mm pixels, RescaleIntercept -1024) with new UIDs, positions and pixel values; the SEG is
built with ``highdicom.seg.Segmentation`` (the ``dicom`` extra), never with harmonize's own
writer, so tests of the reader and the exporter have an independent oracle.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.testing.dicom import uid


@dataclass(frozen=True)
class SegmentSpec:
    """One segment to write: label, codes as (scheme, value, meaning) triplets, its mask
    (Z, rows, cols): bool for BINARY, floats in [0, 1] for FRACTIONAL."""

    label: str
    category: tuple[str, str, str]
    type: tuple[str, str, str]
    mask: np.ndarray
    modifier: tuple[str, str, str] | None = None
    region: tuple[str, str, str] | None = None
    region_modifier: tuple[str, str, str] | None = None


def real_ct_series(folder: Path, n_slices: int, *, patient_id: str, key: str,
                   step: float = 2.5, values: np.ndarray | None = None,
                   drop: tuple[str, ...] = ()) -> list[Any]:
    """Write ``n_slices`` CT slices (copies of pydicom's real ``CT_small.dcm``) into ``folder``
    as ``<SOPInstanceUID>.dcm``, slice ``k`` at z = first z + k * ``step``; return the datasets
    in slice order. ``values`` (Z, rows, cols) are the stored pixel values (default: a ramp);
    ``drop`` names attributes to delete (e.g. type 2 patient attributes of de-identified data)."""
    import pydicom
    from pydicom.data import get_testdata_file

    base = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    rows, cols = int(base.Rows), int(base.Columns)
    study, series, frame = uid(key, "study"), uid(key, "ct series"), uid(key, "frame")
    folder.mkdir(parents=True, exist_ok=True)
    x0, y0, z0 = (float(v) for v in base.ImagePositionPatient)
    out = []
    for k in range(n_slices):
        ds = copy.deepcopy(base)
        sop = uid(key, "ct", k)
        ds.PatientID, ds.PatientName = patient_id, ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID, ds.SOPInstanceUID = frame, sop
        ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop)
        ds.InstanceNumber, ds.SeriesNumber = k + 1, 2
        ds.SliceLocation = z0 + k * step
        ds.ImagePositionPatient = [x0, y0, z0 + k * step]
        plane = (values[k] if values is not None
                 else (np.arange(rows * cols).reshape(rows, cols) % 200 + 10 * k))
        ds.PixelData = np.ascontiguousarray(plane, dtype=np.int16).tobytes()
        for keyword in drop:
            delattr(ds, keyword)
        ds.save_as(folder / f"{sop}.dcm", enforce_file_format=True)
        out.append(ds)
    return out


def _code(triplet: tuple[str, str, str]) -> Any:
    from highdicom.sr import CodedConcept

    scheme, value, meaning = triplet
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def write_seg(path: Path, sources: Sequence[Any], segments: Sequence[SegmentSpec], *,
              key: str, fractional: bool = False, label_in_description: str = "",
              omit_empty_frames: bool = True) -> Any:
    """Write a SEG of ``sources`` (the CT datasets in slice order) with ``segments`` to
    ``path`` using highdicom alone; return the highdicom object."""
    import highdicom as hd
    descriptions = []
    for number, spec in enumerate(segments, start=1):
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=spec.label,
            segmented_property_category=_code(spec.category),
            segmented_property_type=_code(spec.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            anatomic_regions=[_code(spec.region)] if spec.region else None)
        if spec.modifier is not None:
            desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                _code(spec.modifier)]
        if spec.region_modifier is not None:
            desc.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [
                _code(spec.region_modifier)]
        descriptions.append(desc)
    stack = np.stack([np.asarray(s.mask) for s in segments], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=stack.astype(np.float32 if fractional else np.uint8),
        segmentation_type=(hd.seg.SegmentationTypeValues.FRACTIONAL if fractional
                           else hd.seg.SegmentationTypeValues.BINARY),
        segment_descriptions=descriptions,
        series_instance_uid=uid(key, "seg series"), series_number=300,
        sop_instance_uid=uid(key, "seg"), instance_number=1,
        manufacturer="harmonize test fabricator", manufacturer_model_name="highdicom",
        software_versions=hd.__version__, device_serial_number="0",
        series_description=label_in_description or "Segmentation",
        max_fractional_value=255,  # used for FRACTIONAL only
        omit_empty_frames=omit_empty_frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return seg


def ball(shape: tuple[int, int, int], centre: Sequence[float], radius: float) -> np.ndarray:
    """Boolean ball (Z, rows, cols) in voxel units: an analytic shape."""
    z, r, c = np.indices(shape)
    return ((z - centre[0]) ** 2 + (r - centre[1]) ** 2 + (c - centre[2]) ** 2) <= radius ** 2


def box(shape: tuple[int, int, int], lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
    """Boolean box (Z, rows, cols) with ``lo`` inclusive and ``hi`` exclusive corners."""
    out = np.zeros(shape, dtype=bool)
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return out


def masks_by_label(specs: Sequence[SegmentSpec]) -> Mapping[str, np.ndarray]:
    return {s.label: np.asarray(s.mask) for s in specs}
