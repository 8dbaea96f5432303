"""One writer per output folder: ``<folder>/.harmonize.lock``, held with ``fcntl.flock``.

A command that writes into a folder (``run``, ``manifest``, the exports, ``cache``) holds the lock
exclusively for its whole run; a second one exits at once with :class:`FolderLockedError`, naming
who holds it (pid, host, since when, command) and what to do. The kernel releases a ``flock`` when
its holder dies, even by ``kill -9``, so a stale lock needs no guessing: the next process gets
the lock, and the holder JSON still in the file tells it whom it took over from
(:attr:`FolderLock.stale`). The holder removes the file when it finishes normally.

Processes the holder starts (its pool workers) work under its lock. The loader's cache builds
entries under a *shared* lock: many loaders at once, but not while ``harmonize cache`` holds it.
On a file system without ``flock`` (e.g. Lustre mounted without ``-o flock``) the folder is not
locked and a :class:`FolderLockWarning` says so. Why not the ``filelock`` package: it locks, but
records nobody in the file, and the message must name the holder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harmonize.errors import HarmonizeError, output_error
from harmonize.files import pid_alive

LOCK_FILE = ".harmonize.lock"
#: Folders this process holds exclusively (a nested lock of the same folder is a no-op).
_HELD: set[Path] = set()


class FolderLockedError(HarmonizeError):
    """Another process is writing into the folder (commands exit 2)."""

    kind = "locked"


class FolderLockWarning(UserWarning):
    """The folder could not be locked (its file system has no ``flock``)."""


@dataclass
class FolderLock:
    """A held lock; ``stale`` is the holder record of a process that died holding it, if any."""

    path: Path
    stale: dict[str, Any] | None = None


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, Linux ``/proc``), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def holder_running(holder: dict[str, Any]) -> bool:
    """True unless the holder is known gone: this host, and its pid not running or reused."""
    if holder.get("host") != socket.gethostname():
        return True  # another machine: cannot tell
    pid = holder.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    started = holder.get("started")
    return started is None or process_start(pid) in (None, started)


def command_line() -> str:
    """This process's command: ``harmonize ARGS`` for the console script and ``python -m
    harmonize``, else the interpreter's whole command line."""
    program = Path(sys.argv[0])
    if program.name == "harmonize" or program.parts[-2:] == ("harmonize", "__main__.py"):
        return shlex.join(["harmonize", *sys.argv[1:]])
    return shlex.join(sys.orig_argv)


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder record in a lock file, or None (empty, being written, or not ours)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host h since 2024-05-01T10:00:00+02:00, running `harmonize run ...```."""
    if holder is None:
        return "a process that records no holder (a loader building cache entries, or a " \
               "command that is just starting)"
    return (f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('since')}, "
            f"running `{holder.get('command')}`")


def _locked_error(folder: Path, path: Path, holder: dict[str, Any] | None) -> FolderLockedError:
    if holder is not None and not holder_running(holder):
        hint = (f"pid {holder.get('pid')} is gone but a process it started still holds the lock: "
                f"`fuser -v {shlex.quote(str(path))}` lists it; stop it, then rerun")
    else:
        hint = ("wait for it to finish or stop it, then rerun (finished work is kept); to run "
                "both at once, give this one another output folder")
    return FolderLockedError(f"{folder} is in use by {describe(holder)}", file=path, hint=hint)


def _open_locked(path: Path, shared: bool) -> int | None:
    """An fd of ``path`` holding the flock (retrying if a releasing holder removed the file);
    None if another process holds it. OSError if the file system has no flock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file its holder removed on release: lock the new one


@contextmanager
def folder_lock(folder: Path, *, shared: bool = False) -> Iterator[FolderLock]:
    """Hold ``folder``'s lock for the ``with`` block, creating the folder (and removing it again
    at the end if nothing was written into it: a command refused early leaves nothing behind).

    Raises :class:`FolderLockedError` at once if another process holds it, unless that process is
    this one or its parent (a pool worker of the holder), and :class:`~harmonize.errors.OutputError`
    if the folder cannot be written. ``shared`` locks coexist with each other and record no holder.
    """
    folder = Path(folder).resolve()
    path = folder / LOCK_FILE
    if folder in _HELD:
        yield FolderLock(path)
        return
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path, shared)
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise output_error(exc, folder) from exc  # read-only, not permitted, a file: exit 2
        warnings.warn(f"{folder} cannot be locked ({exc.strerror}): make sure no other "
                      "harmonize process writes into it", FolderLockWarning, stacklevel=3)
        yield FolderLock(path)
        return
    if fd is None:
        holder = read_holder(path)
        if holder is not None and holder.get("host") == socket.gethostname() \
                and holder.get("pid") in (os.getpid(), os.getppid()):
            yield FolderLock(path)  # the holder's own worker
            return
        raise _locked_error(folder, path, holder)
    lock = FolderLock(path)
    try:
        if not shared:
            lock.stale = read_holder(path)
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": process_start(os.getpid()),
                      "since": datetime.now().astimezone().isoformat(timespec="seconds"),
                      "command": command_line()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            _HELD.add(folder)
        yield lock
    finally:
        if not shared:
            _HELD.discard(folder)
            path.unlink(missing_ok=True)  # while still locked: see _open_locked
        os.close(fd)
        for made in created:  # deepest first; stops at the first one something was written into
            try:
                made.rmdir()
            except OSError:
                break
