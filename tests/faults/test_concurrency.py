"""Concurrent writers, stale locks, temporary files, and runs stopped by SIGTERM, Ctrl-C or kill -9.

Each test asserts the exit code, the message (who holds the lock, the next step), that no partial
file is left under a final name, and that a rerun gives the bytes of one clean run. Nothing waits
on luck: a run is held inside a case by a gate (:data:`GATED`) that blocks while writing one
case's image, with its temporary file on disk, until the test creates ``GATE/release``; a holder
of a lock is a process the test starts and stops (:data:`HOLDER`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import psutil
import pytest
from harmonize.plugins.fabricators.kits import make_kits23

from harmonize.engine.case_task import clear_case_dir
from harmonize.engine.pipeline import Target, run
from harmonize.files import HOST_TAG, atomic_path, remove_stale_temps
from harmonize.folder_lock import LOCK_FILE, FolderLockedError, folder_lock
from harmonize.loader.cache import VolumeCache, build_cache
from harmonize.manifest.build import read_manifest

#: ``python -c GATED <harmonize args>``: harmonize, held while writing the image of case $HOLD_CASE.
GATED = """
import os, sys, time
from contextlib import contextmanager
from pathlib import Path
import harmonize.read.nifti_writer as writer

real, gate = writer.atomic_path, Path(os.environ["GATE"])

@contextmanager
def gated(target):
    with real(target) as tmp:
        yield tmp
        if Path(target).parent.name == os.environ["HOLD_CASE"]:
            note = gate / f".note-{os.getpid()}"
            note.write_text(str(tmp))
            os.replace(note, gate / f"writing-{os.getpid()}")  # whole when it appears
            while not (gate / "release").exists():
                time.sleep(0.02)

writer.atomic_path = gated
from harmonize.cli.app import main
sys.argv = ["harmonize", *sys.argv[1:]]
main()
"""

#: ``python -c HOLDER FOLDER exclusive|shared``: holds the folder's lock until stdin closes.
HOLDER = """
import sys
from harmonize.folder_lock import folder_lock
with folder_lock(sys.argv[1], shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    sys.stdin.read()
"""

N_CASES = 3
HELD_CASE = "case_00001"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_kits23(tmp_path / "kits23", n_cases=N_CASES, seed=31)


@pytest.fixture
def reference(tmp_path: Path, root: Path, tree) -> dict[str, bytes]:
    """The files of one clean, uninterrupted run."""
    out = tmp_path / "reference"
    assert run([Target("kits23", root)], out, workers=1, progress=False).ok
    return tree(out)


def run_args(root: Path, out: Path, workers: int = 2) -> list[str]:
    return ["run", "-d", "kits23", "-r", str(root), "-o", str(out), "--workers", str(workers),
            "--no-progress"]


@pytest.fixture
def rerun(cli, tree):
    """``rerun(root, out)``: ``harmonize run`` again into ``out``; it must succeed. Returns
    ``out``'s files."""

    def again(root: Path, out: Path) -> dict[str, bytes]:
        code, output = cli(*run_args(root, out, workers=1))
        assert code == 0, output
        return tree(out)

    return again


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.02)


class Gated:
    """A ``harmonize run`` (subprocess, own session) held inside :data:`HELD_CASE`."""

    def __init__(self, tmp_path: Path, root: Path, out: Path, workers: int = 2) -> None:
        self.gate = tmp_path / "gate"
        self.gate.mkdir()
        env = {**os.environ, "GATE": str(self.gate), "HOLD_CASE": HELD_CASE}
        self.proc = subprocess.Popen([sys.executable, "-c", GATED, *run_args(root, out, workers)],
                                     env=env, start_new_session=True, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_until_writing(self) -> Path:
        """The temporary file the held case is writing (its writer is stuck until release)."""
        wait_for(lambda: list(self.gate.glob("writing-*")) or self.proc.poll() is not None,
                 "the held case started writing")
        assert self.proc.poll() is None, self.proc.communicate()
        tmp = Path(next(self.gate.glob("writing-*")).read_text())
        assert tmp.is_file()
        return tmp

    def release(self) -> None:
        (self.gate / "release").touch()

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def hold(folder: Path, processes: list, mode: str = "exclusive") -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), mode], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    processes.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def gone(procs: list[psutil.Process], timeout: float) -> bool:
    """True once every process has exited (a zombie waiting to be reaped has exited)."""
    def running(proc: psutil.Process) -> bool:
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while any(running(p) for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def assert_no_partial_final_file(out: Path) -> None:
    """No temporary file, and every file under a final name is whole."""
    assert not [p for p in out.rglob(".*") if p.name != LOCK_FILE]
    for path in out.rglob("*.nii.gz"):
        nib.load(path).get_fdata()  # a truncated gzip would raise
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    for path in out.glob("*.jsonl"):
        read_manifest(path)


def assert_names_holder(message: str, pid: int) -> None:
    assert f"pid {pid} on host {socket.gethostname()} since " in message
    assert "running `" in message and LOCK_FILE in message
    assert "Next step: wait for it to finish or stop it, then rerun" in message


@pytest.mark.parametrize("command", ["run", "manifest", "export sat"])
def test_second_writer_into_a_locked_folder_exits_2_naming_the_holder(
        tmp_path: Path, root: Path, reference: dict[str, bytes], processes: list, cli, rerun,
        command: str) -> None:
    out = tmp_path / "out"
    holder = hold(out, processes)
    if command == "run":
        code, output = cli(*run_args(root, out))
    elif command == "manifest":
        code, output = cli("manifest", "-d", "kits23", "-r", str(root), "-o", str(out))
    else:
        code, output = cli("export", "sat", "-m", str(tmp_path / "reference" / "kits23.jsonl"),
                           "-o", str(out), "--no-progress")
    assert code == 2, output
    assert_names_holder(output, holder.pid)
    assert "from harmonize.folder_lock import folder_lock" in output  # the holder's command line
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written
    holder.communicate("")  # the holder finishes and removes its lock file
    assert not (out / LOCK_FILE).exists()
    if command == "run":
        assert rerun(root, out) == reference


def test_stale_lock_of_a_killed_process_is_taken_over(
        tmp_path: Path, root: Path, reference: dict[str, bytes], processes: list, tree) -> None:
    out = tmp_path / "out"
    holder = hold(out, processes)
    holder.kill()  # kill -9: the kernel drops its flock; its holder record stays in the file
    holder.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid
    result = run([Target("kits23", root)], out, workers=1, progress=False)
    assert result.ok
    assert result.warnings[0].startswith(f"took over the lock of pid {holder.pid} on host ")
    assert "without releasing it" in result.warnings[0]
    assert not (out / LOCK_FILE).exists()
    assert tree(out) == reference


def test_lock_held_by_an_orphan_of_a_dead_holder_names_both(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    read, write = os.pipe()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, sys\nfrom harmonize.folder_lock import folder_lock\n"
        f"with folder_lock({str(folder)!r}):\n"
        "    if os.fork() == 0:\n"  # the child shares the locked file description
        f"        os.read({read}, 1)\n        os._exit(0)\n"
        "    os._exit(0)\n")], pass_fds=(read,))
    try:
        holder.wait(timeout=30)
        assert not psutil.pid_exists(holder.pid)
        with pytest.raises(FolderLockedError) as info:
            with folder_lock(folder):
                pass
        assert f"pid {holder.pid} is gone but a process it started still holds the lock" \
            in str(info.value) and "fuser -v" in str(info.value)
    finally:
        os.close(read)
        os.close(write)  # the orphan reads EOF and exits
    wait_for(lambda: not (folder / LOCK_FILE).exists() or _lockable(folder), "orphan exit")


def _lockable(folder: Path) -> bool:
    try:
        with folder_lock(folder):
            return True
    except FolderLockedError:
        return False


def test_two_concurrent_runs_give_the_outputs_of_one_clean_run(
        tmp_path: Path, root: Path, reference: dict[str, bytes], cli, rerun) -> None:
    out = tmp_path / "out"
    first = Gated(tmp_path, root, out)
    try:
        first.wait_until_writing()
        code, output = cli(*run_args(root, out))
        assert code == 2, output
        assert_names_holder(output, first.proc.pid)
    finally:
        first.release()
    code, err = first.finish()
    assert code == 0, err
    assert_no_partial_final_file(out)
    assert rerun(root, out) == reference


def test_cleanup_keeps_the_temp_file_of_another_live_process(tmp_path: Path) -> None:
    case_dir = tmp_path / "out" / "kits23" / HELD_CASE
    case_dir.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        live = case_dir / f".image.tmp-{HOST_TAG}-{other.pid}-abcdefgh.nii.gz"
        elsewhere = case_dir / ".image.tmp-zzzzzz-1-abcdefgh.nii.gz"  # another machine's
        not_ours = case_dir / ".image-abcdefgh.nii.gz"  # no writer recorded: not ours to judge
        for path in (live, elsewhere, not_ours):
            path.write_bytes(b"being written")
        clear_case_dir(case_dir, outputs=True)
        assert sorted(p.name for p in case_dir.iterdir()) == sorted(
            p.name for p in (live, elsewhere, not_ours))
        assert live.read_bytes() == b"being written"
    finally:
        other.communicate(b"")
    assert remove_stale_temps(case_dir) == [live]  # its writer has exited now


def test_stale_temps_of_gone_writers_are_cleaned_and_live_ones_kept(
        tmp_path: Path, root: Path, reference: dict[str, bytes], rerun) -> None:
    out = tmp_path / "out"
    assert run([Target("kits23", root)], out, workers=1, progress=False).ok
    dead = _dead_pid()
    (out / "kits23" / HELD_CASE / "done.json").unlink()  # so the rerun redoes the case
    leftovers = [out / "kits23" / HELD_CASE / f".image.tmp-{HOST_TAG}-{dead}-abcdefgh.nii.gz",
                 out / "kits23" / HELD_CASE / f".mask.tmp-{HOST_TAG}-{os.getpid()}-abcdefgh.nii.gz",
                 out / f".kits23.tmp-{HOST_TAG}-{dead}-abcdefgh.jsonl"]
    for path in leftovers:
        path.write_bytes(b"partial")
    with pytest.raises(RuntimeError), atomic_path(out / "kits23" / HELD_CASE / "x.txt") as mine:
        mine.write_text("being written")  # a temp file this process is writing: kept
        assert remove_stale_temps(mine.parent) == leftovers[:2]
        assert mine.is_file()
        raise RuntimeError("abandon the write")  # atomic_path removes its temp file
    assert rerun(root, out) == reference


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not psutil.pid_exists(proc.pid)
    return proc.pid


def test_kill_9_of_the_parent_ends_its_workers(
        tmp_path: Path, root: Path, reference: dict[str, bytes], rerun) -> None:
    out = tmp_path / "out"
    gated = Gated(tmp_path, root, out)
    try:
        gated.wait_until_writing()
        workers = gated.descendants()
        assert len(workers) >= 2
        started = time.monotonic()
        os.kill(gated.proc.pid, signal.SIGKILL)  # the parent only, as the OOM killer would
        gated.finish()
        assert gone(workers, timeout=5), [p.pid for p in workers if p.is_running()]
        print(f"workers gone {time.monotonic() - started:.2f} s after kill -9 of the parent")
    finally:
        gated.release()
    assert not (out / "kits23.jsonl").exists()
    for path in out.rglob("*.nii.gz"):
        if not path.name.startswith("."):
            nib.load(path).get_fdata()
    assert rerun(root, out) == reference  # the killed workers' temp files are gone too


@pytest.mark.parametrize(("sig", "workers", "code", "name"), [
    (signal.SIGTERM, 2, 143, "SIGTERM"), (signal.SIGINT, 2, 130, "Ctrl-C"),
    (signal.SIGTERM, 1, 143, "SIGTERM"),
])
def test_sigterm_and_ctrl_c_stop_the_run_and_leave_no_process_or_partial_file(
        tmp_path: Path, root: Path, reference: dict[str, bytes], rerun, sig: int, workers: int,
        code: int, name: str) -> None:
    out = tmp_path / "out"
    gated = Gated(tmp_path, root, out, workers=workers)
    try:
        tmp = gated.wait_until_writing()
        workers_before = gated.descendants()
        assert len(workers_before) == (workers if workers > 1 else 0)
        if sig == signal.SIGINT:  # Ctrl-C reaches the terminal's whole process group
            os.killpg(gated.proc.pid, sig)
        else:
            os.kill(gated.proc.pid, sig)
        returncode, err = gated.finish()
    finally:
        gated.release()
    assert returncode == code, err
    message = " ".join(err.split())
    assert f"interrupted ({name}): workers stopped" in message
    assert "rerun the same command to do the rest" in message and "Traceback" not in err
    assert gone(workers_before, timeout=5)
    assert not tmp.exists() and not (out / LOCK_FILE).exists()
    assert_no_partial_final_file(out)
    assert rerun(root, out) == reference


def test_cache_folder_is_locked_for_builders(tmp_path: Path, root: Path, processes: list,
                                             reference: dict[str, bytes], cli, tree) -> None:
    manifest = tmp_path / "reference" / "kits23.jsonl"
    record = read_manifest(manifest)[0]
    cache = tmp_path / "cache"
    holder = hold(cache, processes)
    code, output = cli("cache", "-m", str(manifest), "--cache-dir", str(cache))
    assert code == 2, output
    assert_names_holder(output, holder.pid)
    with pytest.raises(FolderLockedError, match=f"pid {holder.pid}"):
        VolumeCache(cache).load(record, manifest.parent)  # a loader's lazy build waits its turn
    assert sorted(p.name for p in cache.iterdir()) == [LOCK_FILE]
    holder.communicate("")

    loader = hold(cache, processes, "shared")  # a loader building entries: builders coexist
    assert VolumeCache(cache).ensure(record, manifest.parent) == "built"
    code, output = cli("cache", "-m", str(manifest), "--cache-dir", str(cache))
    assert code == 2 and "records no holder" in output, output
    loader.communicate("")

    report = build_cache([manifest], cache, workers=2)
    assert report.errors == [] and report.counts == {"ok": 1, "built": N_CASES - 1, "rebuilt": 0}
    clean = tmp_path / "clean-cache"
    build_cache([manifest], clean)
    assert tree(cache, exclude=(LOCK_FILE,)) == tree(clean, exclude=(LOCK_FILE,))
