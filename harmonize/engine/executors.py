"""Where case work runs: in this process, in a local process pool, or on a Dask cluster.

Every executor offers one operation, :meth:`Executor.imap_unordered`: apply a picklable top-level
function to each item and yield ``(index, result)`` pairs as they finish. A worker that dies or a
function that raises yields the exception *as the result*, so the caller can turn it into an error
record for that one item and go on. Results never depend on the executor: the same function runs on
the same items, only the place differs. :meth:`Executor.abort` stops at once (Ctrl-C, SIGTERM): pool
workers are killed, not waited for. Pool workers die with their parent
(:func:`~harmonize.engine.lifetime.die_with_parent`).

Dask is an optional extra (``pip install 'harmonize-med[dask]'``) and is imported only when asked for.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from harmonize.engine.allocator import keep_freed_memory
from harmonize.engine.lifetime import die_with_parent
from harmonize.engine.threads import limit_library_threads, threads_per_worker, usable_cores
from harmonize.errors import HarmonizeError

DASK_EXTRA = "pip install 'harmonize-med[dask]'"


class ExecutorError(HarmonizeError):
    """An executor cannot be created (unknown name, Dask missing, scheduler unreachable)."""

    kind = "executor"


def default_workers() -> int:
    """The usable cores (:func:`~harmonize.engine.threads.usable_cores`): the default size of the
    local process pool and of a Dask local cluster."""
    return usable_cores()


def start_worker(parent: int, threads: int) -> None:
    """Pool worker initializer: die with ``parent``, use at most ``threads`` library threads and
    glibc's dynamic allocator behaviour (:func:`keep_freed_memory`)."""
    die_with_parent(parent)
    limit_library_threads(threads)
    keep_freed_memory()


class Executor(Protocol):
    """What the pipeline needs from an executor."""

    name: str

    def imap_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]) or the exception it raised)`` in completion order."""
        ...

    def close(self) -> None:
        """Release workers (idempotent)."""
        ...

    def abort(self) -> None:
        """Stop now: drop queued items, end running ones without waiting, release workers."""
        ...


class SerialExecutor:
    """Runs everything in this process, in order (``workers=1``; easiest to debug)."""

    name = "serial"

    def imap_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        for index, item in enumerate(items):
            try:
                yield index, fn(item)
            except Exception as exc:  # noqa: BLE001 - handed to the caller as a result
                yield index, exc

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None


class LocalExecutor:
    """A process pool of ``workers`` processes on this machine (the default executor).

    At most ``2 * workers`` items are in flight, so a large dataset does not queue thousands of
    pickled tasks at once. Each worker's library threads (SimpleITK, BLAS) are capped at
    ``cores // workers`` (:mod:`harmonize.engine.threads`), so workers x threads fit the cores. If a worker process dies (killed for memory, a crash in a C library),
    the pool is restarted and the items that were in flight run again one at a time; the item that
    kills its worker again is yielded with the ``BrokenProcessPool`` error, the others go on.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    def start(self) -> None:
        """Start the worker processes now (before a progress bar thread starts)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, initializer=start_worker,
                initargs=(os.getpid(), threads_per_worker(self.workers)))
            self._pool.submit(int).result()
            self._broken = False

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.start()

    def imap_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        self.start()
        fresh = deque(range(len(items)))
        suspects: deque[int] = deque()  # in flight when a worker died: rerun one at a time
        crashes: Counter[int] = Counter()
        pending: dict[Future, int] = {}
        while fresh or suspects or pending:
            if self._broken and not pending:
                self._restart()
            while not self._broken:
                if suspects:
                    if pending:
                        break
                    index = suspects.popleft()
                elif fresh and len(pending) < 2 * self.workers:
                    index = fresh.popleft()
                else:
                    break
                try:
                    assert self._pool is not None
                    pending[self._pool.submit(fn, items[index])] = index
                except BrokenProcessPool:
                    self._broken = True
                    suspects.appendleft(index)
                except Exception as exc:  # noqa: BLE001 - e.g. an item that cannot be pickled
                    yield index, exc
            if not pending:
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f]):
                index = pending.pop(future)
                try:
                    yield index, future.result()
                except BrokenProcessPool as exc:
                    self._broken = True
                    crashes[index] += 1
                    if crashes[index] > 1:
                        yield index, exc
                    else:
                        suspects.append(index)
                except Exception as exc:  # noqa: BLE001 - handed to the caller as a result
                    yield index, exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Kill the workers (SIGKILL) and wait until they are gone."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:  # Python 3.14 has pool.kill_workers(); earlier, this
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=10)


class _LimitedThreads:
    """``fn`` run on a Dask worker with its library threads capped at its host's share of the
    cores: the worker's usable cores // the Dask threads of all workers on that host
    (``dask_threads[host]``), and glibc's allocator as in a local worker (Dask's nanny switches
    its dynamic mmap threshold off: :mod:`harmonize.engine.allocator`). Picklable."""

    def __init__(self, fn: Callable[[Any], Any], dask_threads: dict[str, int]) -> None:
        self.fn = fn
        self.dask_threads = dask_threads

    def __call__(self, item: Any) -> Any:
        from distributed import get_worker

        host = _host(get_worker().address)
        limit_library_threads(threads_per_worker(self.dask_threads.get(host, 1)))
        keep_freed_memory()
        return self.fn(item)


#: a Dask task that came back sooner than this (from submission) doubles the chunk size
CHUNK_SECONDS = 0.5
#: the most items one Dask task carries
MAX_CHUNK = 32


class _Chunk:
    """``fn`` applied to each item of a list on a Dask worker; an exception is that item's result
    (so one bad item does not fail its neighbours). Picklable."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, chunk: list[Any]) -> list[Any]:
        results: list[Any] = []
        for item in chunk:
            try:
                results.append(self.fn(item))
            except Exception as exc:  # noqa: BLE001 - returned as the item's result
                results.append(exc)
        return results


def _host(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``."""
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


class DaskExecutor:
    """Runs items on a Dask ``distributed`` cluster.

    Pass a running ``client``, or a scheduler ``address`` (``tcp://host:8786``) to connect to; with
    neither, a ``LocalCluster`` of ``workers`` single-threaded processes is started and closed again
    by :meth:`close`. Workers must have ``harmonize-med`` (and any third-party plugin) installed, and
    must see the dataset and output folders at the same paths (a shared file system).

    Submission is bounded: at most ``in_flight`` tasks (default twice the cluster's threads, at
    least 4) are submitted at a time and each result is released as soon as it is yielded, so the
    memory of this process does not grow with the number of items. A task carries one item at
    first; while tasks come back within ``CHUNK_SECONDS`` of their submission the chunk size
    doubles (up to ``MAX_CHUNK``), so thousands of tiny items do not pay Dask's per-task cost
    each, while large items stay one per task. On each Dask worker, a task's library threads
    are capped at ``cores // Dask threads`` of its host.
    """

    name = "dask"

    def __init__(self, address: str | None = None, *, client: Any = None,
                 workers: int | None = None, connect_timeout: float = 10.0,
                 in_flight: int | None = None) -> None:
        distributed = import_distributed()
        self._own: list[Any] = []
        self._in_flight = in_flight
        if client is not None:
            self.client = client
        elif address:
            try:
                self.client = distributed.Client(address, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ExecutorError(
                    f"cannot reach the Dask scheduler at {address}: {exc}",
                    hint="check the address (tcp://host:8786) and that the scheduler is running",
                ) from exc
            self._own.append(self.client)
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers or default_workers(), threads_per_worker=1,
                dashboard_address=None,
            )
            self.client = distributed.Client(cluster)
            self._own.extend([self.client, cluster])

    def _dask_threads(self) -> dict[str, int]:
        """Dask threads (task slots) per host of the cluster."""
        per_host: Counter[str] = Counter()
        for address, info in self.client.scheduler_info().get("workers", {}).items():
            per_host[_host(address)] += int(info.get("nthreads", 1))
        return dict(per_host)

    def imap_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        from distributed import wait as dask_wait

        dask_threads = self._dask_threads()
        task = _Chunk(_LimitedThreads(fn, dask_threads))
        limit = self._in_flight or max(4, 2 * sum(dask_threads.values()))
        pending: dict[Any, tuple[list[int], float]] = {}  # future -> (item indices, submitted)
        size, next_index = 1, 0
        try:
            while True:
                while next_index < len(items) and len(pending) < limit:
                    # never so large that the last chunks leave workers idle
                    take = max(1, min(size, (len(items) - next_index) // limit))
                    chunk = list(range(next_index, min(next_index + take, len(items))))
                    next_index += len(chunk)
                    future = self.client.submit(task, [items[k] for k in chunk], pure=False)
                    pending[future] = (chunk, time.perf_counter())
                if not pending:
                    return
                done = dask_wait(list(pending), return_when="FIRST_COMPLETED").done
                finished: list[tuple[int, Any]] = []
                for future in sorted(done, key=lambda f: pending[f][0][0]):
                    chunk, submitted = pending.pop(future)
                    try:
                        finished.extend(zip(chunk, future.result(), strict=True))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller as a result
                        finished.extend((k, exc) for k in chunk)
                    future.release()
                    if time.perf_counter() - submitted < CHUNK_SECONDS and len(chunk) == size:
                        size = min(2 * size, MAX_CHUNK)
                del done, future  # the client holds a task's result while its Future lives
                yield from finished
        finally:
            for future in pending:
                future.release()

    def close(self) -> None:
        while self._own:
            self._own.pop(0).close()

    def abort(self) -> None:
        self.close()  # closing the client cancels its futures; a local cluster stops its workers


def import_distributed() -> Any:
    """``dask.distributed``, or an :class:`ExecutorError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ExecutorError(
            f"the dask executor needs dask.distributed, which is not installed ({exc})",
            hint=f"install the extra: {DASK_EXTRA}, or use --executor local",
        ) from exc
    return distributed


def make_executor(kind: str | Executor = "local", *, workers: int | None = None,
                  scheduler: str | None = None) -> Executor:
    """An executor by name: ``local`` (process pool; in-process when ``workers == 1``) or
    ``dask`` (``scheduler`` address, or a local cluster). An executor object is returned as is."""
    if not isinstance(kind, str):
        return kind
    if workers is not None and workers < 1:
        raise ExecutorError(f"workers must be at least 1, got {workers}")
    if kind == "local":
        if scheduler:
            raise ExecutorError("--scheduler only applies to --executor dask",
                                hint="add --executor dask or drop --scheduler")
        workers = workers or default_workers()
        return SerialExecutor() if workers == 1 else LocalExecutor(workers)
    if kind == "dask":
        return DaskExecutor(scheduler, workers=workers)
    raise ExecutorError(f"unknown executor {kind!r}", hint="use local or dask")
