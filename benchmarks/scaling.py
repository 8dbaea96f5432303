"""End-to-end ``harmonize run`` benchmark: CPU seconds per volume, worker scaling, peak memory.

Fabricates an MSD Task03_Liver-layout dataset (``imagesTr/liver_N.nii.gz`` + ``labelsTr``, the
release's ``dataset.json``) of CT-like volumes (default 512 x 512 x 200 int16 at 0.8 x 0.8 x
2.5 mm, LPS, the phantom of ``benchmarks/preprocess.py``) with uint8 masks (liver 1, tumour 2),
then runs the real command line, each run in a fresh output folder::

    harmonize run -d msd-liver -r ROOT -o OUT --preset PRESET --workers W --no-progress

for every ``W`` in ``--workers`` (default 1 and the usable cores) and every executor in
``--executors`` (``local``: the process pool; ``dask``: ``--executor dask``, a Dask
``LocalCluster`` of W single-threaded worker processes), ``--repeats`` times, in turn (W=1,
W=2, W=1, W=2, ...: paired, so a drift of the machine hits both).

Each figure is given twice, "a / b": end to end (a), and marginal (b): what one more case
costs in a long run, ``(T(N cases) - T(N/2 cases)) / (N - N/2)`` from a second release made of
the first half of the cases (hard links), run right after; the difference removes what does not
grow with the number of cases (interpreter start, imports, pool or cluster start, the last
straggling case) and keeps everything that does (discovery, dispatch, hashing, the case itself).
Reported per row:

* wall seconds per volume and throughput relative to the first row (median of the paired
  ratios); for Dask rows also its overhead: wall time / the local pool's at the same W;
* CPU seconds per volume: user + system time of the whole process tree (``RUSAGE_CHILDREN``);
* peak memory of the largest single process (``ru_maxrss`` of the children: the largest
  worker's high-water mark), in MB and as a multiple of one float32 volume; "working" subtracts
  the peak of the same command repeated at once, which finds every case up to date
  (interpreter, imports, discovery and the workers' resume checks, no case processed).

    python benchmarks/scaling.py                       # 8 full-size cases, presets sat
    python benchmarks/scaling.py --cases 4 --shape 256 256 100 --repeats 1   # quick
    python benchmarks/scaling.py --markdown            # the README table
    python benchmarks/scaling.py --executors local dask --workers 2   # Dask overhead
    python benchmarks/scaling.py --cases 10000 --shape 8 8 4 --executors local dask --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preprocess import fabricate  # noqa: E402 - the same CT phantom as the preprocessing benchmark


def fabricate_dataset(root: Path, cases: int, shape: tuple[int, int, int]) -> Path:
    """An MSD Task03_Liver release of ``cases`` labelled full-size cases under ``root``."""
    import nibabel as nib
    from harmonize.plugins.fabricators.msd import make_msd_task

    from harmonize.testing.volumes import ellipsoid

    folder = make_msd_task(root, task="Task03_Liver", n_train=cases, n_test=0,
                           appledouble=False)
    for index, image_path in enumerate(sorted((folder / "imagesTr").glob("*.nii.gz"))):
        fabricate(image_path, shape, seed=index)
        affine = nib.load(str(image_path)).affine
        label = np.zeros(shape, dtype=np.uint8)
        label[ellipsoid(shape, (0.38, 0.42, 0.45), (0.16, 0.14, 0.35))] = 1
        label[ellipsoid(shape, (0.33, 0.40, 0.45), (0.03, 0.03, 0.05))] = 2
        image = nib.Nifti1Image(label, affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        nib.save(image, str(folder / "labelsTr" / image_path.name))
    return folder


def harmonize_command() -> list[str]:
    """The installed ``harmonize`` next to this interpreter, else ``python -m harmonize``."""
    script = Path(sys.executable).with_name("harmonize")
    return [str(script)] if script.exists() else [sys.executable, "-m", "harmonize"]


def run_once(root: Path, out: Path, preset: str, workers: int, executor: str = "local",
             fresh: bool = True) -> dict:
    """One ``harmonize run`` as a child process; wall, CPU and peak memory of its tree.
    ``fresh``: into an emptied output folder (else a rerun that finds its cases up to date)."""
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    command = [*harmonize_command(), "run", "-d", "msd-liver", "-r", str(root), "-o", str(out),
               "--preset", preset, "--workers", str(workers), "--executor", executor,
               "--no-progress"]
    # Each measurement in its own intermediate process, so RUSAGE_CHILDREN is this run's only.
    probe = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "w = time.perf_counter() - t; u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "print(json.dumps({'rc': r.returncode, 'wall': w, 'cpu': u.ru_utime + u.ru_stime, "
             "'peak_kb': u.ru_maxrss, 'err': r.stderr[-2000:]}))")
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True,
                          text=True, check=True)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"harmonize run failed:\n{result['err']}")
    return result


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def half_release(root: Path, half: Path) -> int:
    """The first half of ``root``'s training cases as a release of its own under ``half``
    (hard links, ``dataset.json`` listing only them); returns the number of cases in it."""
    src = root / "Task03_Liver"
    info = json.loads((src / "dataset.json").read_text(encoding="utf-8"))
    kept = info["training"][: len(info["training"]) // 2]
    dst = half / "Task03_Liver"
    if not (dst / "dataset.json").exists():
        for folder in ("imagesTr", "labelsTr"):
            (dst / folder).mkdir(parents=True, exist_ok=True)
        for entry in kept:
            for key in ("image", "label"):
                name = Path(entry[key])
                os.link(src / name, dst / name)
        info.update(training=kept, numTraining=len(kept))
        (dst / "dataset.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return len(kept)


def measure(args: argparse.Namespace) -> dict:
    shape = tuple(args.shape)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="harmonize-scaling-"))
    root = work / "src"
    if not (root / "Task03_Liver" / "dataset.json").exists():
        print(f"fabricating {args.cases} cases of {shape} in {root}", file=sys.stderr)
        fabricate_dataset(root, args.cases, shape)
    half_cases = half_release(root, work / "half")
    extra = args.cases - half_cases  # cases the full run does beyond the half run
    workers = args.workers or sorted({1, usable_cores()})
    rows_keys = [(e, w) for w in workers for e in args.executors]
    runs: dict[tuple[str, int], list[dict]] = {k: [] for k in rows_keys}
    run_once(root, work / "warm", args.preset, workers[0])  # warm the page cache and bytecode
    for repeat in range(args.repeats):
        for executor, w in rows_keys:
            print(f"run {repeat + 1}/{args.repeats}: --executor {executor} --workers {w}",
                  file=sys.stderr)
            start = time.perf_counter()
            out = work / f"out-{executor}-{w}"
            result = run_once(root, out, args.preset, w, executor)
            rerun = run_once(root, out, args.preset, w, executor, fresh=False)
            half = run_once(work / "half", work / f"half-{executor}-{w}", args.preset, w, executor)
            result.update(marginal_wall=(result["wall"] - half["wall"]) / extra,
                          marginal_cpu=(result["cpu"] - half["cpu"]) / extra,
                          rerun_peak_kb=rerun["peak_kb"])
            runs[(executor, w)].append(result)
            print(f"  {time.perf_counter() - start:.1f} s", file=sys.stderr)
    float32_mb = float(np.prod(shape)) * 4 / 2**20
    base = runs[rows_keys[0]]
    rows = []
    for executor, w in rows_keys:
        mine = runs[(executor, w)]
        paired = list(zip(base, mine, strict=True))
        local = runs.get(("local", w))
        overhead = marginal_overhead = None
        if executor != "local" and local:
            pairs = list(zip(mine, local, strict=True))
            overhead = statistics.median(r["wall"] / lo["wall"] for r, lo in pairs)
            marginal_overhead = statistics.median(r["marginal_wall"] / lo["marginal_wall"]
                                                  for r, lo in pairs)
        rows.append({
            "executor": executor,
            "workers": w,
            "wall_s_per_volume": statistics.median(r["wall"] for r in mine) / args.cases,
            "marginal_wall_s_per_volume": statistics.median(r["marginal_wall"] for r in mine),
            "cpu_s_per_volume": statistics.median(r["cpu"] for r in mine) / args.cases,
            "marginal_cpu_s_per_volume": statistics.median(r["marginal_cpu"] for r in mine),
            "throughput_vs_first": statistics.median(b["wall"] / r["wall"] for b, r in paired),
            "marginal_throughput_vs_first": statistics.median(
                b["marginal_wall"] / r["marginal_wall"] for b, r in paired),
            "overhead_vs_local": overhead,
            "marginal_overhead_vs_local": marginal_overhead,
            "peak_mb": statistics.median(r["peak_kb"] for r in mine) / 1024,
            "peak_vs_float32": statistics.median(r["peak_kb"] for r in mine) / 1024 / float32_mb,
            "working_peak_vs_float32": statistics.median(r["peak_kb"] - r["rerun_peak_kb"]
                                                         for r in mine) / 1024 / float32_mb,
        })
    return {"shape": list(shape), "cases": args.cases, "half_cases": half_cases,
            "preset": args.preset, "repeats": args.repeats, "usable_cores": usable_cores(),
            "float32_volume_mb": float32_mb, "rows": rows}


def markdown(report: dict) -> str:
    """The README table: each figure end to end, then marginal (start-up and discovery removed)."""
    def pair(a: float | None, b: float | None, fmt: str) -> str:
        return "-" if a is None or b is None else f"{a:{fmt}} / {b:{fmt}}"

    lines = [f"`harmonize run --preset {report['preset']}`, {report['cases']} cases of "
             f"{'x'.join(map(str, report['shape']))} with masks, {report['usable_cores']} cores, "
             f"median of {report['repeats']} paired runs; a / b = end to end / marginal",
             "",
             "| executor | workers | wall s / volume | CPU s / volume | throughput vs first row "
             "| overhead vs local pool | peak MB | peak / float32 volume (total / working) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(
            f"| {r['executor']} | {r['workers']} | "
            f"{pair(r['wall_s_per_volume'], r['marginal_wall_s_per_volume'], '.3f')} | "
            f"{pair(r['cpu_s_per_volume'], r['marginal_cpu_s_per_volume'], '.3f')} | "
            f"{pair(r['throughput_vs_first'], r['marginal_throughput_vs_first'], '.2f')}x | "
            f"{pair(r['overhead_vs_local'], r['marginal_overhead_vs_local'], '.2f')}"
            f"{'x' if r['overhead_vs_local'] else ''} | {r['peak_mb']:.0f} | "
            f"{pair(r['peak_vs_float32'], r['working_peak_vs_float32'], '.2f')}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200))
    parser.add_argument("--preset", default="sat")
    parser.add_argument("--workers", type=int, nargs="+", help="default: 1 and the usable cores")
    parser.add_argument("--executors", nargs="+", default=["local"], choices=["local", "dask"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", help="keeps the fabricated dataset between calls")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument("--markdown", action="store_true", help="print only the README table")
    args = parser.parse_args(argv)
    report = measure(args)
    print(markdown(report))
    if not args.markdown:
        print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
