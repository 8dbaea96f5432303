"""Write real DICOM series for fabricated datasets (plain Part 10 files; no pydicom needed).

Every slice gets the tags a reader relies on: Modality, Study/Series/SOP Instance UIDs, SOP Class,
InstanceNumber, ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness,
RescaleSlope/RescaleIntercept (CT). Geometry is given in the DICOM patient system (LPS, mm), the
way scanners write it, so tests can check labels against world coordinates.
"""

from __future__ import annotations

import hashlib
import struct
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


#: VR of every attribute the fabricators write (implicit VR files need them only to encode values)
VR = {
    "0008|0016": "UI", "0008|0018": "UI", "0008|0020": "DA", "0008|0021": "DA", "0008|0023": "DA",
    "0008|0030": "TM", "0008|0031": "TM", "0008|0033": "TM", "0008|0060": "CS", "0010|0010": "PN",
    "0010|0020": "LO", "0018|0050": "DS", "0018|0081": "DS", "0018|5100": "CS", "0020|000d": "UI",
    "0020|000e": "UI", "0020|0011": "IS", "0020|0013": "IS", "0020|0032": "DS", "0020|0037": "DS",
    "0020|0052": "UI", "0020|1041": "DS", "0028|0002": "US", "0028|0004": "CS", "0028|0010": "US",
    "0028|0011": "US", "0028|0030": "DS", "0028|0100": "US", "0028|0101": "US", "0028|0102": "US",
    "0028|0103": "US", "0028|1052": "DS", "0028|1053": "DS",
}
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


def _tag(key: str) -> tuple[int, int]:
    group, element = key.split("|")
    return int(group, 16), int(element, 16)


def _value(vr: str, value: object) -> bytes:
    if vr == "US":
        return struct.pack("<H", int(value))  # type: ignore[call-overload]
    raw = str(value).encode("ascii")
    return raw + (b"\0" if vr == "UI" else b" ") if len(raw) % 2 else raw


def write_dicom(path: Path, meta: Mapping[str, str], stored: np.ndarray) -> None:
    """Write one DICOM Part 10 file (implicit VR little endian, as some releases are) with the
    attributes ``meta`` (``"gggg|eeee"`` keys, see :data:`VR`) and 16-bit ``stored`` pixels.

    Written byte by byte so the output depends on nothing but the arguments (a library writer
    stamps its name, version and the time)."""
    sop_class, sop_uid = meta["0008|0016"], meta["0008|0018"]
    file_meta = b"".join(
        struct.pack("<HH2sH", 2, element, vr.encode(), len(raw)) + raw if vr != "OB"
        else struct.pack("<HH2sHI", 2, element, b"OB", 0, len(raw)) + raw
        for element, vr, raw in (
            (0x0001, "OB", b"\0\1"),
            (0x0002, "UI", _value("UI", sop_class)),
            (0x0003, "UI", _value("UI", sop_uid)),
            (0x0010, "UI", _value("UI", IMPLICIT_VR_LITTLE_ENDIAN)),
            (0x0012, "UI", _value("UI", uid("harmonize.testing", "dicom"))),
            (0x0013, "SH", _value("SH", "HARMONIZE_TEST")),
        )
    )
    header = b"\0" * 128 + b"DICM" + struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(file_meta))
    elements = []
    for key in sorted(meta, key=_tag):
        if key not in VR:
            raise ValueError(f"no VR known for DICOM attribute {key}; add it to VR")
        raw = _value(VR[key], meta[key])
        elements.append(struct.pack("<HHI", *_tag(key), len(raw)) + raw)
    pixels = np.ascontiguousarray(stored, dtype=stored.dtype.newbyteorder("<")).tobytes()
    elements.append(struct.pack("<HHI", 0x7FE0, 0x0010, len(pixels)) + pixels)
    Path(path).write_bytes(header + file_meta + b"".join(elements))


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
    scanners do. Stored values are unsigned 16-bit when none is negative, else signed. MR slices
    are written as stored (no rescale tags).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    orient = "\\".join(f"{v:g}" for v in geometry.orientation)
    thickness = geometry.thickness if geometry.thickness is not None else abs(geometry.step)
    written = []
    for item in slices:
        pixels = np.asarray(item.pixels, dtype=float)
        if pixels.shape != (geometry.rows, geometry.columns):
            raise ValueError(f"slice {item.name}: shape {pixels.shape}, expected "
                             f"{(geometry.rows, geometry.columns)}")
        if rescale is not None:
            pixels = (pixels - rescale[1]) / rescale[0]
        stored = np.rint(pixels)
        signed = bool(stored.min() < 0)
        stored = stored.astype(np.int16 if signed else np.uint16)
        meta = {
            "0008|0020": "20000101", "0008|0021": "20000101", "0008|0023": "20000101",
            "0008|0030": "120000", "0008|0031": "120000", "0008|0033": "120000",
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
            "0020|0032": "\\".join(f"{v:.4f}" for v in geometry.position(item.k)),
            "0020|0037": orient,
            "0020|0052": uid(study_uid, "frame"),
            "0028|0002": "1",
            "0028|0004": "MONOCHROME2",
            "0028|0010": str(geometry.rows),
            "0028|0011": str(geometry.columns),
            "0028|0030": f"{geometry.pixel_spacing[0]:g}\\{geometry.pixel_spacing[1]:g}",
            "0028|0100": "16", "0028|0101": "16", "0028|0102": "15",
            "0028|0103": "1" if signed else "0",
        }
        if rescale is not None:
            meta["0028|1053"] = f"{rescale[0]:g}"
            meta["0028|1052"] = f"{rescale[1]:g}"
        meta.update(tags or {})
        meta.update(item.tags)
        path = folder / item.name
        write_dicom(path, meta, stored)
        written.append(path)
    return written
