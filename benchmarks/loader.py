"""Loader benchmark: random 3D patches per second and peak memory, side by side, 2 workers each.

Fabricates normalized volumes (CT-like phantom in [0, 1], float32 .nii.gz, uint8 masks) from 3
datasets in a temporary folder, then measures, each in its own subprocess:

  a  harmonize HarmonizedDataset from the fast cache (.npy, built by build_cache), batches made
     by ThreadLoader (2 threads in the training process)
  p  the same through torch DataLoader with 2 worker processes
  z  (p) with ``num_workers=0``: batches made in the training process, nothing handed over
     between processes (what the worker processes' shared-memory handoff costs in (p))
  s  (p) with torch's ``file_system`` sharing strategy
     (``torch.multiprocessing.set_sharing_strategy("file_system")``): batches cross from the
     workers through named shared-memory files instead of file descriptors sent per tensor
  b  harmonize HarmonizedDataset from the .nii.gz files (no cache), DataLoader with 2 processes
  f  harmonize HarmonizedDataset with ``cache=`` a fresh folder: no prebuilt cache, each volume
     is read once and cached on first touch (inside the measured run), DataLoader, 2 processes
  q  harmonize's TorchIO bridge (``to_torchio_subjects``) through the same ``tio.Queue`` and
     ``UniformSampler`` as (c), volumes from the prebuilt fast cache
  r  the same bridge through the same Queue, from the .nii.gz files (no cache)
  c  TorchIO SubjectsDataset + Queue + UniformSampler from the .nii.gz files
  d  MONAI PersistentDataset (LoadImaged, EnsureChannelFirstd, FgBgToIndicesd cached on disk) +
     RandCropByPosNegLabeld, if MONAI is installed; its cache is warmed by an unmeasured pass

Throughput is steady-state: patches delivered to the training loop after the first batch,
divided by the time since the first batch; the time to the first batch (worker start-up, first
volume reads, queue filling) is reported apart. Memory is the peak, over the run, of the summed
proportional set size (PSS, /proc/PID/smaps_rollup) of the subprocess and its workers, so pages
shared between forked workers count once: "PSS" counts every mapped page, "anonymous" only
anonymous pages (memory-mapped cache files are file-backed page cache, which the kernel can drop
at any time; they count in PSS, not in anonymous).

    python benchmarks/loader.py                      # 40 volumes of 256x256x160, patch 96
    python benchmarks/loader.py --quick              # 9 volumes of 128x128x80, patch 64
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

DATASETS = {  # name: labels (canonical name -> mask values; shapes from make_normalized_dataset)
    "bench-liver": {"liver": [3, 4], "liver tumor": [4]},
    "bench-kidney": {"left kidney": [1], "right kidney": [2]},
    "bench-spleen": {"spleen": [3]},
}
METHODS = {"a": "harmonize ThreadLoader, fast cache", "p": "harmonize DataLoader, fast cache",
           "z": "harmonize DataLoader, fast cache, no worker processes",
           "s": "harmonize DataLoader, fast cache, file_system sharing",
           "b": "harmonize DataLoader, .nii.gz", "f": "harmonize DataLoader, cache on first touch",
           "q": "harmonize bridge in tio.Queue, fast cache",
           "r": "harmonize bridge in tio.Queue, .nii.gz",
           "c": "TorchIO Queue, .nii.gz", "d": "MONAI PersistentDataset"}


def fabricate(out: Path, volumes: int, shape: tuple[int, int, int]) -> list[Path]:
    from harmonize.testing.normalized import make_normalized_dataset

    manifests = []
    per = [volumes // len(DATASETS) + (i < volumes % len(DATASETS)) for i in range(len(DATASETS))]
    for seed, ((name, labels), n) in enumerate(zip(DATASETS.items(), per)):
        manifests.append(make_normalized_dataset(out, name, n_cases=n, shape=shape, labels=labels,
                                                 splits=["train"] * n, seed=seed))
    return manifests


def cases(manifests: list[Path]) -> list[dict[str, str]]:
    from harmonize.manifest.build import read_manifest

    return [{"image": str(m.parent / r.image), "label": str(m.parent / r.mask), "dataset": r.dataset}
            for m in manifests for r in read_manifest(m)]


def run_method(method: str, args: argparse.Namespace) -> dict[str, float]:
    """Build the method's loader and time ``args.patches`` patches (runs in a subprocess)."""
    import torch

    torch.set_num_threads(1)
    data = Path(args.data)
    manifests = sorted(data.glob("bench-*.jsonl"))
    patch = (args.patch,) * 3
    n = args.slow_patches if method == "b" else args.patches
    start = time.perf_counter()
    if method == "s":
        import torch.multiprocessing

        torch.multiprocessing.set_sharing_strategy("file_system")
    if method in ("a", "p", "z", "s", "b", "f"):
        from harmonize.loader.dataset import DatasetMixSampler, HarmonizedDataset, ThreadLoader

        cache = {"b": False, "f": data / f"cache-first-touch-{time.time_ns()}"}.get(
            method, data / "cache")
        ds = HarmonizedDataset(manifests, patch_size=patch, cache=cache)
        sampler = DatasetMixSampler(ds, weights="sqrt", num_samples=n)
        if method == "a":
            loader = ThreadLoader(ds, batch_size=args.batch, sampler=sampler, num_workers=args.workers)
        else:
            loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, sampler=sampler,
                                                 num_workers=0 if method == "z" else args.workers)
        key = "image"
    elif method in ("c", "q", "r"):
        import torchio as tio

        if method == "c":
            subjects = [tio.Subject(image=tio.ScalarImage(c["image"]),
                                    label=tio.LabelMap(c["label"])) for c in cases(manifests)]
        else:
            from harmonize.loader.torchio_bridge import to_torchio_subjects

            subjects = to_torchio_subjects(manifests,
                                           cache=data / "cache" if method == "q" else False)
        queue = tio.Queue(tio.SubjectsDataset(subjects), max_length=args.queue_length,
                          samples_per_volume=args.samples_per_volume, sampler=tio.UniformSampler(patch),
                          num_workers=args.workers)
        loader = torch.utils.data.DataLoader(queue, batch_size=args.batch, num_workers=0)
        key = "image"
    else:
        from monai import transforms as mt
        from monai.data import DataLoader, PersistentDataset

        keys = ["image", "label"]
        transform = mt.Compose([
            mt.LoadImaged(keys=keys, image_only=True), mt.EnsureChannelFirstd(keys=keys),
            mt.FgBgToIndicesd(keys="label", fg_postfix="_fg", bg_postfix="_bg"),
            mt.RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=patch, pos=1, neg=1,
                                      num_samples=args.batch, fg_indices_key="label_fg",
                                      bg_indices_key="label_bg"),
        ])
        ds = PersistentDataset([{k: c[k] for k in keys} for c in cases(manifests)], transform=transform,
                               cache_dir=data / "monai-cache")
        loader = DataLoader(ds, batch_size=1, num_workers=args.workers, shuffle=True)
        key = "image"
        if args.warm:  # fill the PersistentDataset cache: every case once, unmeasured
            for _ in DataLoader(ds, batch_size=1, num_workers=args.workers):
                pass
            return {"patches": 0, "seconds": time.perf_counter() - start}
    done = first = 0
    first_at = start
    while done < n:
        for batch in loader:
            images = batch[key]
            done += (images["data"] if isinstance(images, dict) else images).shape[0]
            if not first:
                first, first_at = done, time.perf_counter()
            if done >= n:
                break
    end = time.perf_counter()
    return {"patches": done, "seconds": end - start, "first_batch_s": first_at - start,
            "steady_patches_per_s": (done - first) / max(end - first_at, 1e-9)}


def rollup(pid: int) -> dict[str, int]:
    """Proportional set size of a process, all pages and anonymous pages only (bytes)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Pss", "Pss_Anon"):
            out["pss" if name == "Pss" else "anon"] = int(rest.split()[0]) * 1024
    return out


def measure(method: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one method in a subprocess and sample its process tree's memory every 50 ms."""
    cmd = [sys.executable, __file__, "--run", method, "--data", str(args.data), "--patch", str(args.patch),
           "--patches", str(args.patches), "--slow-patches", str(args.slow_patches),
           "--batch", str(args.batch), "--workers", str(args.workers),
           "--samples-per-volume", str(args.samples_per_volume), "--queue-length", str(args.queue_length),
           *(["--warm"] if getattr(args, "warm", False) else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = {"pss": 0, "anon": 0}
    parent = psutil.Process(proc.pid)

    def watch() -> None:
        while proc.poll() is None:
            total = {"pss": 0, "anon": 0}
            try:
                for p in [parent, *parent.children(recursive=True)]:
                    for part, value in rollup(p.pid).items():
                        total[part] += value
            except (psutil.Error, OSError):
                pass
            peak["pss"], peak["anon"] = max(peak["pss"], total["pss"]), max(peak["anon"], total["anon"])
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"method {method} failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "patches_per_s": result.get("steady_patches_per_s", 0.0),
            "peak_pss_mb": peak["pss"] / 2**20, "peak_anon_mb": peak["anon"] / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=40)
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 160))
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--patches", type=int, default=400, help="patches timed, but for b")
    parser.add_argument("--slow-patches", type=int, default=48, help="patches timed for b")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples-per-volume", type=int, default=8, help="TorchIO Queue")
    parser.add_argument("--queue-length", type=int, default=64, help="TorchIO Queue max_length")
    parser.add_argument("--methods", default="apzsbfqrcd")
    parser.add_argument("--quick", action="store_true", help="9 volumes of 128x128x80, patch 64")
    parser.add_argument("--data", type=Path, help="reuse/keep fabricated data in this folder")
    parser.add_argument("--run", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_method(args.run, args)))
        return
    if args.quick:
        args.volumes, args.shape, args.patch, args.patches, args.slow_patches = 9, (128, 128, 80), 64, 160, 24
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="harmonize-bench-")
        args.data = Path(tmp.name)
    try:
        report(args)
    finally:
        if tmp is not None:
            tmp.cleanup()


def report(args: argparse.Namespace) -> None:
    from harmonize.loader.cache import build_cache

    t0 = time.perf_counter()
    manifests = sorted(args.data.glob("bench-*.jsonl")) or fabricate(args.data, args.volumes, tuple(args.shape))
    print(f"data: {args.volumes} volumes {tuple(args.shape)} float32 from {len(DATASETS)} datasets in "
          f"{args.data} ({time.perf_counter() - t0:.0f} s); patch {args.patch}^3, batch {args.batch}, "
          f"{args.workers} workers, {psutil.cpu_count()} CPUs", flush=True)
    results = {}
    cache_ready = False
    for method in args.methods:
        if method == "d":
            try:
                import monai  # noqa: F401
            except ImportError:
                print("d: MONAI not installed, skipped", flush=True)
                continue
            measure_warm = measure("d", argparse.Namespace(**{**vars(args), "warm": True}))
            print(f"d: PersistentDataset cache warmed ({measure_warm['seconds']:.1f} s)", flush=True)
        if method in "apzsq" and not cache_ready:
            t = time.perf_counter()
            built = build_cache(manifests, args.data / "cache", workers=args.workers)
            print(f"{method}: cache built in {time.perf_counter() - t:.1f} s ({built.counts})", flush=True)
            cache_ready = True
        results[method] = measure(method, args)
        r = results[method]
        print(f"{method}: {r['patches']} patches in {r['seconds']:.1f} s", flush=True)
    print()
    print("| method | patches/s | first batch (s) | peak PSS (MB) | peak anonymous PSS (MB) | vs TorchIO |")
    print("|---|---:|---:|---:|---:|---:|")
    base = results.get("c", {}).get("patches_per_s")
    for method, r in results.items():
        ratio = f"{r['patches_per_s'] / base:.1f}x" if base else "-"
        print(f"| ({method}) {METHODS[method]} | {r['patches_per_s']:.1f} | {r['first_batch_s']:.1f} | "
              f"{r['peak_pss_mb']:.0f} | "
              f"{r['peak_anon_mb']:.0f} | {ratio} |")
    if not math.isnan(base or math.nan):
        print(f"\nsettings: TorchIO samples_per_volume={args.samples_per_volume}, "
              f"max_length={args.queue_length}; MONAI num_samples={args.batch}, pos=neg=1")


if __name__ == "__main__":
    main()
