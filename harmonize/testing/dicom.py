"""Write real DICOM series for fabricated datasets (SimpleITK's GDCM writer, no pydicom needed).

Every slice gets the tags a reader relies on: Modality, Study/Series/SOP Instance UIDs, SOP Class,
InstanceNumber, ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness,
RescaleSlope/RescaleIntercept (CT). Geometry is given in the DICOM patient system (LPS, mm), the
way scanners write it, so tests can check labels against world coordinates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
             "CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1"}


def uid(*parts: object) -> str:
    """A deterministic DICOM UID (``2.25.<integer>``) from ``parts``."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return "2.25." + str(int(digest[:30], 16))


@dataclass
class SeriesGeometry:
    """Axial-ish slice stack in LPS mm: slice ``k`` has its first pixel at
    ``origin + k * step * normal`` (``step`` may be negative: slice 0 is then the top one)."""

    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    origin: tuple[float, float, float]
    step: float
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    thickness: float | None = None

    @property
    def normal(self) -> np.ndarray:
        o = np.asarray(self.orientation, dtype=float)
        return np.cross(o[:3], o[3:])

    def position(self, k: int) -> np.ndarray:
        return np.asarray(self.origin, dtype=float) + k * self.step * self.normal

    def world(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LPS coordinates (x, y, z), each (rows, columns), of the pixel centres of slice ``k``."""
        o = np.asarray(self.orientation, dtype=float)
        r, c = np.meshgrid(np.arange(self.rows), np.arange(self.columns), indexing="ij")
        pts = (self.position(k)[:, None, None]
               + o[:3, None, None] * (c * self.pixel_spacing[1])[None]
               + o[3:, None, None] * (r * self.pixel_spacing[0])[None])
        return pts[0], pts[1], pts[2]


@dataclass
class SliceFile:
    """One slice to write: file name, pixel values (rows, columns) and its index in the geometry."""

    name: str
    pixels: np.ndarray
    k: int
    instance: int
    tags: Mapping[str, str] = field(default_factory=dict)


def write_series(
    folder: Path,
    slices: Sequence[SliceFile],
    geometry: SeriesGeometry,
    *,
    modality: str,
    series_uid: str,
    study_uid: str,
    patient_id: str,
    rescale: tuple[float, float] | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``slices`` as one DICOM series in ``folder``; return the paths.

    ``pixels`` are real-world values (HU for CT); with ``rescale = (slope, intercept)`` the file
    stores ``(value - intercept) / slope`` and carries RescaleSlope/RescaleIntercept, as CT
    scanners do. MR slices are written as stored (no rescale tags).
    """
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    orient = "\\".join(f"{v:g}" for v in geometry.orientation)
    thickness = geometry.thickness if geometry.thickness is not None else abs(geometry.step)
    written = []
    for item in slices:
        pixels = np.asarray(item.pixels)
        if pixels.shape != (geometry.rows, geometry.columns):
            raise ValueError(f"slice {item.name}: shape {pixels.shape}, expected "
                             f"{(geometry.rows, geometry.columns)}")
        image = sitk.GetImageFromArray(pixels)
        image.SetSpacing((geometry.pixel_spacing[1], geometry.pixel_spacing[0]))
        pos = geometry.position(item.k)
        meta = {
            "0008|0016": SOP_CLASS[modality],
            "0008|0018": uid(series_uid, "sop", item.instance),
            "0008|0060": modality,
            "0010|0010": patient_id,
            "0010|0020": patient_id,
            "0018|0050": f"{thickness:g}",
            "0020|000d": study_uid,
            "0020|000e": series_uid,
            "0020|0011": "1",
            "0020|0013": str(item.instance),
            "0020|0032": "\\".join(f"{v:.4f}" for v in pos),
            "0020|0037": orient,
            "0020|0052": uid(study_uid, "frame"),
            "0028|0030": f"{geometry.pixel_spacing[0]:g}\\{geometry.pixel_spacing[1]:g}",
        }
        if rescale is not None:
            meta["0028|1053"] = f"{rescale[0]:g}"
            meta["0028|1052"] = f"{rescale[1]:g}"
        meta.update(tags or {})
        meta.update(item.tags)
        for key, value in meta.items():
            image.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        path = folder / item.name
        writer.SetFileName(str(path))
        writer.Execute(image)
        written.append(path)
    return written
