"""Fabricate VerSe'19 / VerSe'20 in the restructured "VerSe-complete" layout (see plugins/verse.py).

Quirks reproduced: BIDS-like names with optional ``dir-`` and ``split-`` entities, a subject with two
scans (``split-verse223``/``split-verse224``), varied orientations (PIR with an oblique affine and a
float64 mask with sform code 2 and no qform, as in the repository's sample ``sub-verse004``; LAS,
LPS, sagittal PSR, RAS), T13 (28) and L6 (25), centroid JSON in voxel coordinates whose first entry
is the axis code (one file with a NaN entry), and preview PNGs.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as nio

from harmonize.testing import ct_phantom, ellipsoid


@dataclass(frozen=True)
class Scan:
    """One fabricated scan: where it goes, how it is stored, which vertebrae it shows (top first)."""

    folder: str
    subject: str
    entities: str
    axcodes: str
    spacing: tuple[float, float, float]  # mm along R, A, S
    levels: tuple[int, ...]
    oblique_deg: float = 0.0
    mask_dtype: str = "uint8"
    nan_centroid: bool = False

    @property
    def prefix(self) -> str:
        return f"{self.subject}_{self.entities}" if self.entities else self.subject


SCANS: dict[str, tuple[Scan, ...]] = {
    "verse19": (
        Scan("dataset-verse19training", "sub-verse004", "", "PIR", (2.0, 1.0, 1.0),
             tuple(range(16, 25)), oblique_deg=4.0, mask_dtype="float64"),
        Scan("dataset-verse19training", "sub-verse408", "split-verse223", "LAS", (0.8, 0.8, 1.5),
             tuple(range(1, 8))),
        Scan("dataset-verse19training", "sub-verse408", "split-verse224", "LAS", (0.8, 0.8, 1.5),
             tuple(range(8, 20))),
        Scan("dataset-verse19validation", "sub-verse012", "", "LPS", (0.7, 0.7, 1.0),
             (17, 18, 19, 28, 20, 21), nan_centroid=True),
        Scan("dataset-verse19test", "sub-verse150", "", "PSR", (3.0, 1.0, 1.0),
             tuple(range(20, 26)), mask_dtype="int16"),
    ),
    "verse20": (
        Scan("dataset-01training", "sub-gl003", "dir-ax", "LPS", (0.6, 0.6, 1.25),
             tuple(range(1, 11))),
        Scan("dataset-01training", "sub-verse412", "split-verse230", "LAS", (0.8, 0.8, 1.0),
             tuple(range(8, 15))),
        Scan("dataset-01training", "sub-verse412", "split-verse231", "LAS", (0.8, 0.8, 1.0),
             tuple(range(15, 25))),
        Scan("dataset-01training", "sub-verse500", "dir-ax", "LPS", (0.8, 0.8, 1.0),
             tuple(range(18, 25))),
        Scan("dataset-02validation", "sub-verse525", "dir-sag", "PSR", (3.0, 0.8, 0.8),
             tuple(range(20, 26)), oblique_deg=6.0),
        Scan("dataset-02validation", "sub-verse505", "", "LAS", (0.9, 0.9, 0.9),
             (19, 28, 20, 21, 22, 23, 24), nan_centroid=True),
        Scan("dataset-03test", "sub-verse010", "", "PIR", (2.0, 1.0, 1.0),
             tuple(range(20, 25)), mask_dtype="float64"),
        Scan("dataset-03test", "sub-verse563", "dir-iso", "RAS", (1.0, 1.0, 1.0),
             tuple(range(20, 25))),
    ),
}


def spine_arrays(
    levels: tuple[int, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """CT (int16 HU) and mask in RAS array order: one vertebra per level, top level most superior."""
    per_level = 4
    shape = (14, 16, per_level * len(levels) + 4)
    image = ct_phantom(shape, rng, axial_axes=(0, 1))
    mask = np.zeros(shape, dtype=np.uint8)
    for i, level in enumerate(levels):
        z = 1.0 - (2 + per_level * i + per_level / 2) / shape[2]
        body = ellipsoid(shape, (0.5, 0.55, z), (0.3, 0.25, 0.4 / len(levels) * 0.9))
        mask[body] = level
    image[mask > 0] = np.int16(rng.integers(500, 900))
    return image, mask


def reorient(data: np.ndarray, affine: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray]:
    """Store RAS-ordered ``data`` in the axis order ``axcodes`` (same world positions)."""
    transform = nio.ornt_transform(nio.axcodes2ornt(("R", "A", "S")), nio.axcodes2ornt(tuple(axcodes)))
    out = nio.apply_orientation(data, transform)
    return np.ascontiguousarray(out), affine @ nio.inv_ornt_aff(transform, data.shape)


def rotation_z(degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    rot = np.eye(4)
    rot[:2, :2] = [[c, -s], [s, c]]
    return rot


def save(path: Path, data: np.ndarray, affine: np.ndarray, *, sform_only: bool = False) -> None:
    """Write NIfTI; ``sform_only`` mimics VerSe's sample (sform code 2 'aligned', qform code 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data, affine)
    if sform_only:
        image.set_qform(None, code=0)
        image.set_sform(affine, code=2)
    else:
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
    nib.save(image, str(path))


def centroids(mask: np.ndarray, axcodes: str, nan_entry: bool) -> list[dict]:
    """VerSe centroid list: ``[{"direction": [...]}, {"label", "X", "Y", "Z"}, ...]`` in voxels."""
    entries: list[dict] = [{"direction": list(axcodes)}]
    for level in sorted(int(v) for v in np.unique(mask) if v):
        x, y, z = np.argwhere(mask == level).mean(axis=0)
        entries.append({"label": level, "X": round(float(x), 1), "Y": round(float(y), 1),
                        "Z": round(float(z), 1)})
    if nan_entry:
        entries.append({"label": 26, "X": float("nan"), "Y": float("nan"), "Z": float("nan")})
    return entries


def tiny_png() -> bytes:
    """A valid 1x1 greyscale PNG (stands in for the release's preview images)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


def make_verse(
    root: Path, *, release: str = "verse19", n_subjects: int | None = None, seed: int = 0
) -> Path:
    """Write the release's fabricated scans under ``root`` (release folders inside); return ``root``.

    ``n_subjects`` keeps the first subjects only (a subject's scans stay together).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    subjects: list[str] = []
    for scan in SCANS[release]:
        if scan.subject not in subjects:
            subjects.append(scan.subject)
        if n_subjects is not None and len(subjects) > n_subjects:
            break
        image, mask = spine_arrays(scan.levels, rng)
        affine = np.diag([*scan.spacing, 1.0])
        affine[:3, 3] = (-rng.uniform(10, 40), -rng.uniform(100, 200), -rng.uniform(200, 800))
        image, stored_affine = reorient(image, affine, scan.axcodes)
        mask, _ = reorient(mask, affine, scan.axcodes)
        stored_affine = rotation_z(scan.oblique_deg) @ stored_affine
        mask = mask.astype(scan.mask_dtype)
        sform_only = scan.mask_dtype == "float64"
        raw = root / scan.folder / "rawdata" / scan.subject
        der = root / scan.folder / "derivatives" / scan.subject
        save(raw / f"{scan.prefix}_ct.nii.gz", image, stored_affine, sform_only=sform_only)
        save(der / f"{scan.prefix}_seg-vert_msk.nii.gz", mask, stored_affine, sform_only=sform_only)
        (der / f"{scan.prefix}_seg-subreg_ctd.json").write_text(
            json.dumps(centroids(mask, scan.axcodes, scan.nan_centroid)), encoding="utf-8")
        (der / f"{scan.prefix}_seg-vert_snp.png").write_bytes(tiny_png())
    return root


def scans_of(release: str, n_subjects: int | None = None) -> list[Scan]:
    """The scans :func:`make_verse` writes for these arguments."""
    out, subjects = [], []
    for scan in SCANS[release]:
        if scan.subject not in subjects:
            subjects.append(scan.subject)
        if n_subjects is not None and len(subjects) > n_subjects:
            break
        out.append(scan)
    return out
