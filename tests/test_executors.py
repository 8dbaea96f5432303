"""Executors: serial, process pool and Dask give the same results; failures come back as results."""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from harmonize.plugins.fabricators.kits import make_kits23

from harmonize.engine.executors import (
    DaskExecutor,
    ExecutorError,
    LocalExecutor,
    SerialExecutor,
    default_workers,
    make_executor,
)
from harmonize.engine.normalize import Settings
from harmonize.engine.pipeline import Target, run


def collect(executor, fn, items) -> dict[int, object]:
    try:
        return dict(executor.imap_unordered(fn, items))
    finally:
        executor.close()


@pytest.mark.parametrize("factory", [SerialExecutor, lambda: LocalExecutor(2)])
def test_results_by_index_and_exceptions_as_results(factory) -> None:
    results = collect(factory(), math.sqrt, [4.0, -1.0, 9.0, 16.0, 25.0, 36.0])
    assert sorted(results) == [0, 1, 2, 3, 4, 5]
    assert results[0] == 2.0 and results[5] == 6.0
    assert isinstance(results[1], ValueError)


def exit_on_three(value: int) -> int:
    """Kill the worker process (as the OOM killer would) for the value 3."""
    if value == 3:
        os._exit(9)
    return value * 10


def test_dead_worker_fails_only_its_item_and_the_pool_recovers() -> None:
    pool = LocalExecutor(2)
    results = collect(pool, exit_on_three, list(range(8)))
    assert sorted(results) == list(range(8))
    assert isinstance(results[3], BrokenProcessPool)
    assert {i: r for i, r in results.items() if i != 3} == {i: i * 10 for i in range(8) if i != 3}
    assert collect(pool, exit_on_three, [1, 2]) == {0: 10, 1: 20}  # usable again


def test_make_executor_choices_and_errors(monkeypatch) -> None:
    assert isinstance(make_executor("local", workers=1), SerialExecutor)
    pool = make_executor("local", workers=2)
    assert isinstance(pool, LocalExecutor) and pool.workers == 2
    assert make_executor(pool) is pool
    with pytest.raises(ExecutorError, match="unknown executor"):
        make_executor("slurm")
    with pytest.raises(ExecutorError, match="only applies to --executor dask"):
        make_executor("local", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ExecutorError, match="at least 1"):
        make_executor("local", workers=0)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ExecutorError) as info:
        make_executor("dask")
    assert "harmonize-med[dask]" in str(info.value)


def test_dask_cluster_output_is_byte_identical_to_the_process_pool(tmp_path: Path) -> None:
    import distributed
    root = make_kits23(tmp_path / "kits23", n_cases=3, seed=21)
    settings = Settings(spacing=(1.5, 1.5, 2.0))
    local = run([Target("kits23", root)], tmp_path / "local", settings, workers=2, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = run([Target("kits23", root)], tmp_path / "dask", settings,
                   executor=DaskExecutor(client=client), progress=False)
    assert local.ok and dask.ok and len(dask.done) == 3

    def files(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert files(tmp_path / "dask") == files(tmp_path / "local")


def test_unreachable_scheduler_is_a_clear_error() -> None:
    import distributed  # noqa: F401 - a test dependency (test extras)
    with pytest.raises(ExecutorError, match="cannot reach the Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:9", connect_timeout=1.0)


def test_cli_dask_executor_without_scheduler_starts_a_local_cluster(tmp_path: Path) -> None:
    import distributed  # noqa: F401 - a test dependency (test extras)
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    root = make_kits23(tmp_path / "kits23", n_cases=2, seed=22)
    res = CliRunner().invoke(app, ["run", "-d", "kits23", "-r", str(root), "-o",
                                   str(tmp_path / "dask"), "--executor", "dask", "--workers", "1",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    run([Target("kits23", root)], tmp_path / "serial", workers=1, progress=False)
    for name in ("kits23.jsonl", "kits23/case_00000/image.nii.gz", "kits23/case_00001/mask.nii.gz"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()


def _dask_command() -> list[str]:
    """The ``dask`` command of this environment (next to the interpreter)."""
    script = Path(sys.executable).with_name("dask")
    assert script.exists(), f"the dask CLI is missing next to {sys.executable} (test extras)"
    return [str(script)]


def test_real_scheduler_and_worker_processes_give_the_local_pool_bytes(tmp_path: Path) -> None:
    """A `dask scheduler` and a `dask worker` started as separate processes on 127.0.0.1 (as on
    a cluster): `harmonize run --scheduler` writes exactly the bytes the local pool writes."""
    import json
    import subprocess
    import time

    from typer.testing import CliRunner

    from harmonize.cli.app import app

    root = make_kits23(tmp_path / "kits23", n_cases=3, seed=23)
    info = tmp_path / "scheduler.json"
    logs = (tmp_path / "scheduler.log").open("w"), (tmp_path / "worker.log").open("w")
    scheduler = subprocess.Popen([*_dask_command(), "scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
                                 stdout=logs[0], stderr=subprocess.STDOUT)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen([*_dask_command(), "worker", address, "--nworkers", "2",
                                   "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                  stdout=logs[1], stderr=subprocess.STDOUT)
        import distributed
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        res = CliRunner().invoke(app, ["run", "-d", "kits23", "-r", str(root), "-o",
                                       str(tmp_path / "dask"), "--executor", "dask",
                                       "--scheduler", address, "--spacing", "1.5", "1.5", "2",
                                       "--no-progress"])
        assert res.exit_code == 0, res.output
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        for log in logs:
            log.close()
    run([Target("kits23", root)], tmp_path / "local", Settings(spacing=(1.5, 1.5, 2.0)),
        workers=2, progress=False)

    def files(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes()
                for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix == ".gz"}

    assert files(tmp_path / "dask") == files(tmp_path / "local") != {}
    for name in ("kits23.jsonl", "splits.json"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_dask_submission_is_bounded(tmp_path: Path) -> None:
    """However many items, at most `in_flight` futures are held at a time; every item comes
    back once, exceptions as results."""
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        executor = DaskExecutor(client=client, in_flight=3)
        held = []
        results = {}
        for index, result in executor.imap_unordered(math.sqrt, [float(v) for v in range(-1, 60)]):
            held.append(len(client.futures))
            results[index] = result
    assert sorted(results) == list(range(61))
    assert isinstance(results[0], ValueError) and results[5] == 2.0
    assert max(held) <= 3 and len(held) == 61


def test_default_workers_are_the_usable_cores_and_threads_are_shared(monkeypatch) -> None:
    from harmonize.engine.threads import CORES_ENV, threads_per_worker, usable_cores

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == usable_cores() == expected
    monkeypatch.setenv(CORES_ENV, "64")
    assert default_workers() == 64
    assert threads_per_worker(64) == 1 and threads_per_worker(4) == 16
    assert threads_per_worker(3, cores=8) == 2 and threads_per_worker(16, cores=8) == 1


def _library_threads(_: object) -> tuple[int, list[int]]:
    import SimpleITK as sitk
    from threadpoolctl import threadpool_info

    return (sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            [pool["num_threads"] for pool in threadpool_info()])


def test_pool_workers_get_their_share_of_the_cores(monkeypatch) -> None:
    """With 2 workers on 4 cores each worker runs 2 SimpleITK and 2 BLAS threads at most."""
    from harmonize.engine.threads import CORES_ENV

    monkeypatch.setenv(CORES_ENV, "4")
    results = collect(LocalExecutor(2), _library_threads, [None] * 4)
    for sitk_threads, blas in results.values():
        assert sitk_threads == 2 and all(n <= 2 for n in blas)


def test_dask_chunks_grow_for_quick_items_and_stay_single_for_slow_ones(monkeypatch) -> None:
    """Quick items travel many to a task (fewer Dask round trips); items slower than
    CHUNK_SECONDS go one per task. Every item comes back once, with its own index."""
    import distributed

    from harmonize.engine import executors

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        executor = DaskExecutor(client=client)
        sizes: list[int] = []
        submit = client.submit

        def counting(fn, chunk, **kwargs):
            sizes.append(len(chunk))
            return submit(fn, chunk, **kwargs)

        monkeypatch.setattr(client, "submit", counting)
        results = dict(executor.imap_unordered(math.sqrt, [float(v) for v in range(-1, 399)]))
        assert sorted(results) == list(range(400)) and sum(sizes) == 400
        assert isinstance(results[0], ValueError) and results[10] == 3.0
        assert max(sizes) > 1 and len(sizes) < 200
        sizes.clear()
        monkeypatch.setattr(executors, "CHUNK_SECONDS", 0.0)  # every task counts as slow
        results = dict(executor.imap_unordered(math.sqrt, [float(v) for v in range(20)]))
        assert sizes == [1] * 20 and results[16] == 4.0
