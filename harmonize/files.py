"""Files in general: content hashes of sources and atomic writes (temp name, then rename), so no
reader ever sees a half-written output. A failing write (permission, read-only file system, disk
full, missing folder) is an :class:`~harmonize.errors.OutputError` naming the output path."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harmonize.errors import output_error


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


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import (os.umask is process-wide and not thread-safe to query later).
_UMASK = _current_umask()


def _about_output(exc: OSError, paths: tuple[Path, ...]) -> bool:
    """True if ``exc`` is about one of ``paths`` or a folder above them (or names no file)."""
    if exc.filename is None:
        return True
    failed = Path(os.fsdecode(exc.filename))
    return any(failed == p or failed in p.parents for p in paths)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only on success.

    The temporary name keeps ``target``'s suffixes (``.nii.gz``) so writers pick the right format.
    The result gets the permissions of a normally created file (0666 minus the umask), not the
    0600 of a temporary file, so other users and cluster workers can read outputs. An ``OSError``
    about the output (disk full, read-only, permission, missing folder) becomes an
    :class:`~harmonize.errors.OutputError` naming ``target``; the temporary file is removed.
    """
    target = Path(target)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(target.suffixes) or ".tmp"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name.split('.')[0]}-", suffix=suffix,
                                        dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except OSError as exc:
        if not _about_output(exc, (target, *((tmp,) if tmp else ()))):
            raise
        raise output_error(exc, target) from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def writable_folder(path: Path) -> Path:
    """Create the folder ``path`` (and its parents) if needed and check that a file can be
    written in it; raise :class:`~harmonize.errors.OutputError` naming it otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".harmonize-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(exc, path) from exc
    return path


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
