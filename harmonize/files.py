"""Files in general: content hashes of sources and atomic writes (temp name, then rename), so no
reader ever sees a half-written output. A failing write (permission, read-only file system, disk
full, missing folder) is an :class:`~harmonize.errors.OutputError` naming the output path.

A temporary file is named ``.<stem>.tmp-<host>-<pid>-<random><suffixes>``: the machine (6 hex
digits of a hash of its name) and the process that writes it. :func:`remove_stale_temps` removes
only temporary files whose writer is gone (this machine, process no longer running) or is this
process and no longer writing them, so no process ever deletes another live process's file.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
import threading
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


#: This machine in temporary names: a short hash of the host name (any characters, fixed length).
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_NAME = re.compile(r"^\..*\.tmp-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-")
#: Names of the temporary files this process is writing now (threads share a process).
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only on success.

    The temporary name keeps ``target``'s suffixes (``.nii.gz``) so writers pick the right format,
    and names this machine and process (see the module docstring). The result gets the permissions
    of a normally created file (0666 minus the umask), not the 0600 of a temporary file, so other
    users and cluster workers can read outputs. An ``OSError``
    about the output (disk full, read-only, permission, missing folder) becomes an
    :class:`~harmonize.errors.OutputError` naming ``target``; the temporary file is removed.
    """
    target = Path(target)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(target.suffixes) or ".tmp"
        prefix = f".{target.name.split('.')[0]}.tmp-{HOST_TAG}-{os.getpid()}-"
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        with _LIVE_LOCK:
            _LIVE.add(tmp.name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except OSError as exc:
        if not _about_output(exc, (target, *((tmp,) if tmp else ()))):
            raise
        raise output_error(exc, target) from exc
    finally:
        if tmp is not None:
            with _LIVE_LOCK:
                _LIVE.discard(tmp.name)
            if tmp.exists():
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


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` runs on this machine (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill said it exists


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` in ``folder`` (not below it) whose writer
    is gone: this machine, and a process that no longer runs, or this process when no thread of it
    is writing the file. Other files, and temporary files of other machines, are left alone.
    Returns the removed paths."""
    removed: list[Path] = []
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None or match["host"] != HOST_TAG:
            continue
        path = Path(folder) / name
        pid = int(match["pid"])
        with _LIVE_LOCK:
            live = name in _LIVE
        if (pid == os.getpid() and not live) or (pid != os.getpid() and not pid_alive(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
