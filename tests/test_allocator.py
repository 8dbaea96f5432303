"""keep_freed_memory: a worker started with Dask's MALLOC_TRIM_THRESHOLD_ gets the heap reuse
of glibc's default dynamic threshold back. The oracle is the kernel's own count of minor page
faults (``ru_minflt``) while the same 16 MiB buffer is allocated, written and freed 20 times."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import numpy as np
from harmonize.engine.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "fix" else None
np.ones(2 * 2**20).sum()  # 16 MiB of float64, allocated, written and freed once first
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(2 * 2**20).sum()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


def _faults(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


#: at least one fault per 2 MiB page of each 16 MiB buffer, also where the kernel backs large
#: mappings with transparent huge pages (4 KiB pages give 4096 per buffer)
FRESH_MAPPING_FAULTS = 20 * 8


def test_dask_trim_threshold_costs_page_faults_and_keep_freed_memory_removes_them():
    _, dask_like = _faults("plain", MALLOC_TRIM_THRESHOLD_="65536")
    applied, fixed = _faults("fix", MALLOC_TRIM_THRESHOLD_="65536")
    assert dask_like >= FRESH_MAPPING_FAULTS, "each buffer should be a fresh mmap (Dask setting)"
    assert applied == "True"
    assert fixed <= dask_like // 10, (fixed, dask_like)


def test_without_tuning_variables_glibc_is_left_alone():
    _, dask_like = _faults("plain", MALLOC_TRIM_THRESHOLD_="65536")
    applied, faults = _faults("fix")
    assert applied == "False"
    assert faults <= dask_like // 10, (faults, dask_like)  # the dynamic threshold reuses the heap
