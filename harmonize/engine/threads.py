"""How many cores a run may use, and how they are shared between workers and library threads.

A worker process runs multi-threaded libraries: SimpleITK's resampler starts one thread per core
by default and numpy's BLAS (OpenBLAS, MKL) its own pool. Left alone, ``W`` workers on ``C``
cores run ``W * C`` threads that fight over ``C`` cores. :func:`threads_per_worker` gives each
worker ``max(1, C // W)`` threads and :func:`limit_library_threads` applies that in the worker,
so processes x threads never exceed the cores.

:func:`usable_cores` counts the cores this process may run on (its CPU affinity, which also
reflects ``taskset`` and container CPU sets), not the machine's.
"""

from __future__ import annotations

import os

#: Environment variable that overrides :func:`usable_cores` (e.g. a batch system's allocation).
CORES_ENV = "HARMONIZE_CORES"


def usable_cores() -> int:
    """Cores this process may run on: ``$HARMONIZE_CORES`` if set, else the CPU affinity mask
    (``os.sched_getaffinity``), else ``os.cpu_count()``; at least 1."""
    forced = os.environ.get(CORES_ENV, "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Library threads each of ``workers`` processes may use: ``max(1, cores // workers)``."""
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def limit_library_threads(threads: int) -> None:
    """Cap SimpleITK's default thread count and numpy's BLAS/OpenMP pools at ``threads`` in this
    process (for the rest of its life: call it in a worker's initializer)."""
    import SimpleITK as sitk
    from threadpoolctl import threadpool_limits

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
    threadpool_limits(limits=int(threads))
