"""Reading volumes and headers, hashing sources, writing files atomically.

NIfTI is read with nibabel; NRRD, MHA and DICOM series (a folder) with SimpleITK. A
:class:`Volume` carries its ``kind`` ("image" or "label") so a label map is never treated as an
image (never interpolated, never intensity-scaled).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from harmonize.errors import ReadError

Kind = Literal["image", "label"]
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class Volume:
    """Voxel array (X, Y, Z[, C]) with its voxel-to-world (RAS mm) affine and its kind."""

    data: np.ndarray
    affine: np.ndarray
    kind: Kind = "image"

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        return "".join(nib.aff2axcodes(self.affine))


@dataclass(frozen=True)
class Header:
    """Geometry of a volume without reading its voxels."""

    shape: tuple[int, ...]
    spacing: tuple[float, float, float]
    orientation: str
    affine: np.ndarray


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def read_header(path: Path) -> Header:
    """Shape, spacing, orientation code and affine of a NIfTI file (header only)."""
    path = Path(path)
    if not path.exists():
        raise ReadError("file does not exist", file=path, hint="check the dataset is complete")
    if is_nifti(path):
        try:
            img = nib.load(str(path))
            affine = np.asarray(img.affine, dtype=float)
            shape = tuple(int(s) for s in img.shape)
        except Exception as exc:  # noqa: BLE001 - nibabel raises many types
            raise ReadError(
                f"cannot read NIfTI header: {exc}", file=path,
                hint="re-download the file; it may be truncated or not NIfTI",
            ) from exc
    else:
        import SimpleITK as sitk

        try:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            size = reader.GetSize()
            affine = sitk_affine(reader.GetOrigin(), reader.GetSpacing(), reader.GetDirection())
            shape = tuple(int(s) for s in size)
        except RuntimeError as exc:
            raise ReadError(f"cannot read header: {exc}", file=path) from exc
    spacing = tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    return Header(
        shape=shape,
        spacing=spacing,  # type: ignore[arg-type]
        orientation="".join(nib.aff2axcodes(affine)),
        affine=affine,
    )


def sitk_affine(
    origin: tuple[float, ...], spacing: tuple[float, ...], direction: tuple[float, ...]
) -> np.ndarray:
    """RAS voxel-to-world affine from SimpleITK's LPS origin, spacing and direction."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) * np.asarray(spacing, dtype=float)
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def sha256_path(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a folder's files (sorted names and contents) for DICOM series."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only on success.

    The temporary name keeps ``target``'s suffixes (``.nii.gz``) so writers pick the right format.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name.split('.')[0]}-", suffix=suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_volume(path: Path, kind: Kind = "image") -> Volume:
    """Read a NIfTI file (nibabel), an NRRD/MHA file or a DICOM series folder (SimpleITK).

    Arrays are indexed (X, Y, Z[, C]) with the RAS affine. Labels keep their stored dtype.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(f"{kind} file does not exist", file=path,
                        hint="check the dataset is complete")
    if is_nifti(path):
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
            affine = np.asarray(img.affine, dtype=float)
        except Exception as exc:  # noqa: BLE001 - gzip/EOF/header errors have many types
            raise ReadError(
                f"cannot read NIfTI {kind}: {type(exc).__name__}: {exc}", file=path,
                hint="re-download the file; it may be truncated or corrupt",
            ) from exc
        return Volume(data=data, affine=affine, kind=kind)
    return _read_with_sitk(path, kind)


def _read_with_sitk(path: Path, kind: Kind) -> Volume:
    import SimpleITK as sitk

    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise ReadError("no DICOM series in folder", file=path,
                                hint="point at the folder that holds the .dcm files")
            if len(series) > 1:
                raise ReadError(
                    f"{len(series)} DICOM series in one folder ({', '.join(series)})",
                    file=path, hint="split the folder so that it holds one series",
                )
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ReadError(f"cannot read {kind}: {exc}", file=path,
                        hint="check the file is a readable NRRD/MHA/DICOM") from exc
    array = sitk.GetArrayFromImage(image)  # (Z, Y, X[, C])
    data = np.transpose(array, (2, 1, 0, 3) if array.ndim == 4 else (2, 1, 0))
    affine = sitk_affine(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    return Volume(data=np.ascontiguousarray(data), affine=affine, kind=kind)
