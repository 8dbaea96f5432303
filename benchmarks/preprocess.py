"""Preprocessing benchmark: harmonize vs MONAI vs TorchIO vs the plain I/O floor.

Fabricates CT-like volumes (default 512 x 512 x 200 int16, 0.8 x 0.8 x 2.5 mm, LPS affine: body
ellipse in air, organs, spine, mild noise - compressible like real CT), writes them as .nii.gz
with nibabel, then runs every variant on the same files, each in its own subprocess so that its
peak memory is its own:

* ``harmonize``: read_volume -> normalize_case (RAS, [spacing], CT window -200..300 -> [0, 1])
  -> write_volume
* ``monai``: LoadImaged -> EnsureChannelFirstd -> Orientationd("RAS") -> [Spacingd] ->
  ScaleIntensityRanged(-200, 300 -> 0, 1, clip) -> SaveImage (float32 .nii.gz)
* ``torchio``: ScalarImage -> ToCanonical -> [Resample] -> Clamp(-200, 300) ->
  RescaleIntensity((0, 1), in_min_max=(-200, 300)) -> save (.nii.gz)
* ``floor``: nibabel load + save of the same volume (int16 in, int16 out), no processing
* ``harmonize-io``: harmonize's own I/O floor: ``read_volume`` + ``write_volume`` of the untouched
  int16 volume (ISA-L gzip both ways), no processing

Like for like (same output dtype, gzip library and level as the peer; always run):

* ``harmonize-like-monai``: the harmonize pipeline, output stored as float32 through the stdlib
  zlib gzip at level 1 (nibabel's default, which MONAI's ``SaveImage`` uses)
* ``harmonize-like-torchio``: the harmonize pipeline, output float32 written by
  ``SimpleITK.WriteImage(..., useCompression=True)`` (what TorchIO's ``save`` calls)

Levers (``--levers``): ``harmonize-float32`` (float32 output, ISA-L), ``harmonize-zlib`` (int16
output, stdlib zlib): what each of the two storage choices is worth on its own.

Seconds per volume are the median over the volumes, measured inside the worker around
read -> process -> write (interpreter start and imports excluded; one untimed warm-up volume).
Peak memory is the worker's high-water RSS (``VmHWM``, imports included); "working" subtracts the
RSS after imports.

    python benchmarks/preprocess.py                      # full size, 2 volumes
    python benchmarks/preprocess.py --shape 128 128 50   # quick smoke run
    python benchmarks/preprocess.py --json results.json --levers

MONAI and TorchIO must be importable (``pip install monai torchio``); missing ones are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WINDOW = (-200.0, 300.0)
RESAMPLED = (1.5, 1.5, 3.0)
VARIANTS = ("harmonize", "monai", "torchio", "floor", "harmonize-io", "harmonize-like-monai",
            "harmonize-like-torchio")
LEVERS = ("harmonize-float32", "harmonize-zlib")
#: like-for-like variant of harmonize per peer
LIKE = {"monai": "harmonize-like-monai", "torchio": "harmonize-like-torchio"}


# ------------------------------------------------------------------------------ fabrication


def fabricate(path: Path, shape: tuple[int, int, int], seed: int) -> None:
    """A CT-like int16 phantom (HU) stored LPS at 0.8 x 0.8 x 2.5 mm, written by nibabel."""
    import nibabel as nib

    from harmonize.testing.volumes import ct_phantom, ellipsoid

    rng = np.random.default_rng(seed)
    volume = ct_phantom(shape, rng)
    organs = [  # (center, radii, HU) as fractions of the axes; liver, kidneys, lungs, fat rim
        ((0.38, 0.42, 0.45), (0.16, 0.14, 0.35), 60),
        ((0.62, 0.62, 0.5), (0.05, 0.07, 0.18), 160),
        ((0.38, 0.62, 0.5), (0.05, 0.07, 0.18), 160),
        ((0.35, 0.35, 0.8), (0.12, 0.12, 0.2), -850),
        ((0.65, 0.35, 0.8), (0.12, 0.12, 0.2), -850),
    ]
    for center, radii, hu in organs:
        mask = ellipsoid(shape, center, radii)
        volume[mask] = hu
    noise = rng.normal(0.0, 12.0, size=shape).astype(np.float32)
    body = volume > -900
    volume = np.where(body, volume + noise, volume).astype(np.int16)
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    affine[:3, 3] = [204.4, 204.4, -250.0]
    image = nib.Nifti1Image(volume, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))


# ---------------------------------------------------------------------------------- workers


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _worker(variant: str, spacing: tuple[float, float, float] | None, inputs: list[Path],
            outdir: Path) -> dict:
    """Import the variant's libraries, then process every input; return timings and memory."""
    outdir.mkdir(parents=True, exist_ok=True)
    process = _make_process(variant, spacing, outdir)
    baseline = _rss_mb()
    process(inputs[0])  # warm-up (lazy imports, thread pools)
    times = []
    for path in inputs:
        start = time.perf_counter()
        process(path)
        times.append(time.perf_counter() - start)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the parent
    peak = _status_mb("VmHWM")
    sizes = [p.stat().st_size for p in outdir.iterdir() if p.is_file()]
    return {"variant": variant, "spacing": list(spacing) if spacing else "native",
            "seconds": times, "median_s": statistics.median(times), "peak_mb": peak,
            "baseline_mb": baseline, "output_mb": statistics.median(sizes) / 2**20}


def _make_process(variant: str, spacing, outdir: Path):
    if variant.startswith("harmonize"):
        import gzip

        import SimpleITK as sitk  # imported by resampling; count it in the baseline

        import harmonize.read.nifti_writer as writer
        from harmonize.engine.normalize import Settings, normalize_case
        from harmonize.read.nifti_writer import write_volume
        from harmonize.read.volume import Volume, read_volume

        if variant in ("harmonize-zlib", "harmonize-like-monai"):
            writer._gzip_impl = gzip  # type: ignore[assignment]  # stdlib zlib, as nibabel
        settings = Settings(spacing=spacing, ct_window=WINDOW)

        def process(path: Path) -> None:
            if variant == "harmonize-io":  # harmonize's own I/O floor: no processing at all
                write_volume(read_volume(path), outdir / path.name)
                return
            case = normalize_case(read_volume(path), None, modality="CT", settings=settings)
            image = case.image
            if variant == "harmonize-like-torchio":  # float32 through TorchIO's writer call
                data = np.asarray(image.data, dtype=np.float32)
                itk = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
                spacing_ = np.sqrt((image.affine[:3, :3] ** 2).sum(axis=0))
                lps = np.diag([-1.0, -1.0, 1.0])
                itk.SetSpacing([float(v) for v in spacing_])
                itk.SetOrigin([float(v) for v in lps @ image.affine[:3, 3]])
                itk.SetDirection([float(v) for v in (lps @ image.affine[:3, :3] / spacing_).ravel()])
                sitk.WriteImage(itk, str(outdir / path.name), True)
                return
            if variant in ("harmonize-float32", "harmonize-like-monai"):
                image = Volume(np.asarray(image.data, dtype=np.float32), image.affine)
            write_volume(image, outdir / path.name, compresslevel=1)

        return process
    if variant == "monai":
        import monai.transforms as mt

        steps = [mt.LoadImaged(keys=["image"]), mt.EnsureChannelFirstd(keys=["image"]),
                 mt.Orientationd(keys=["image"], axcodes="RAS")]
        if spacing is not None:
            steps.append(mt.Spacingd(keys=["image"], pixdim=spacing, mode="bilinear"))
        steps.append(mt.ScaleIntensityRanged(keys=["image"], a_min=WINDOW[0], a_max=WINDOW[1],
                                             b_min=0.0, b_max=1.0, clip=True))
        chain = mt.Compose(steps)
        saver = mt.SaveImage(output_dir=str(outdir), output_postfix="", output_ext=".nii.gz",
                             separate_folder=False, resample=False, print_log=False,
                             output_dtype=np.float32)

        def process(path: Path) -> None:
            saver(chain({"image": str(path)})["image"])

        return process
    if variant == "torchio":
        import torchio as tio

        steps = [tio.ToCanonical()]
        if spacing is not None:
            steps.append(tio.Resample(spacing))
        steps += [tio.Clamp(*WINDOW), tio.RescaleIntensity(out_min_max=(0, 1),
                                                           in_min_max=WINDOW)]
        chain = tio.Compose(steps)

        def process(path: Path) -> None:
            chain(tio.ScalarImage(path)).save(outdir / path.name)

        return process
    if variant == "floor":
        import nibabel as nib

        def process(path: Path) -> None:
            image = nib.load(str(path))
            data = np.asanyarray(image.dataobj)
            nib.save(nib.Nifti1Image(data, image.affine, image.header), str(outdir / path.name))

        return process
    raise SystemExit(f"unknown variant {variant}")


# ---------------------------------------------------------------------------------- driver


def _available(variant: str) -> bool:
    module = {"monai": "monai", "torchio": "torchio"}.get(variant)
    if module is None:
        return True
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def run(args: argparse.Namespace) -> dict:
    shape = tuple(args.shape)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="harmonize-bench-"))
    inputs_dir = work / "inputs"
    inputs_dir.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i in range(args.volumes):
        path = inputs_dir / f"ct_{i:03d}.nii.gz"
        if not path.exists():
            print(f"fabricating {path} {shape}", file=sys.stderr)
            fabricate(path, shape, seed=i)
        inputs.append(path)
    variants = list(args.variants) + [v for v in LEVERS if args.levers and v not in args.variants]
    results = []
    for spacing in (None, RESAMPLED):
        for variant in variants:
            if not _available(variant):
                print(f"skipping {variant}: not installed", file=sys.stderr)
                continue
            outdir = work / "out" / variant / ("native" if spacing is None else "resampled")
            command = [sys.executable, __file__, "--worker", variant, "--workdir", str(outdir),
                       "--inputs", *map(str, inputs)]
            if spacing is not None:
                command += ["--spacing", *map(str, spacing)]
            if variant in ("floor", "harmonize-io") and spacing is not None:
                continue  # the floor does no processing: one measurement serves both rows
            print("running", variant, "native" if spacing is None else spacing, file=sys.stderr)
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                raise SystemExit(f"{variant} failed")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    float32_mb = int(np.prod(shape)) * 4 / 2**20
    return {"shape": list(shape), "volumes": len(inputs), "window": list(WINDOW),
            "resampled_spacing": list(RESAMPLED), "float32_volume_mb": float32_mb,
            "input_mb": statistics.median(p.stat().st_size for p in inputs) / 2**20,
            "cpu_count": os.cpu_count(), "results": results}


def table(report: dict) -> str:
    """Two Markdown tables (as shipped; like for like) with harmonize's ratios to each peer."""
    by = {}
    for r in report["results"]:
        mode = "native" if r["spacing"] == "native" else "x".join(f"{v:g}" for v in r["spacing"])
        by[(r["variant"], mode)] = r
    modes = ["native", "x".join(f"{v:g}" for v in RESAMPLED)]
    header = ["| variant | spacing | s / volume | peak MB | working MB | output MB | "
              "peer / harmonize |", "|---|---|---|---|---|---|---|"]

    def row(variant: str, mode: str, ours: str) -> str:
        r = by.get((variant, mode)) or by.get((variant, "native"))
        if r is None:
            return ""
        ref = by.get((ours, mode))
        ratio = f"{r['median_s'] / ref['median_s']:.2f}x" if ref else "-"
        return (f"| {variant} | {mode if (variant, mode) in by else 'native (no processing)'} | "
                f"{r['median_s']:.2f} | {r['peak_mb']:.0f} | {r['peak_mb'] - r['baseline_mb']:.0f} "
                f"| {r['output_mb']:.1f} | {ratio} |")

    lines = ["As shipped (each tool's own output type and gzip; ratios against `harmonize`):", ""]
    lines += header
    for mode in modes:
        for variant in ("harmonize", "monai", "torchio", "floor", "harmonize-io",
                        "harmonize-float32", "harmonize-zlib"):
            if variant in ("floor", "harmonize-io") and mode != "native":
                continue
            text = row(variant, mode, "harmonize")
            if text:
                lines.append(text)
    lines += ["", "Like for like (float32 output, the peer's gzip library and level; ratios "
              "against the matching harmonize variant):", ""]
    lines += header
    for mode in modes:
        for peer, like in LIKE.items():
            for variant in (like, peer):
                text = row(variant, mode, like)
                if text:
                    lines.append(text)
    lines.append("")
    floor = by.get(("harmonize-io", "native"))
    for mode in modes:
        ours = by.get(("harmonize", mode))
        if not ours:
            continue
        parts = []
        for peer, like in LIKE.items():
            if (peer, mode) in by:
                shipped = by[(peer, mode)]["median_s"] / ours["median_s"]
                text = f"{shipped:.2f}x faster than {peer} as shipped"
                if (like, mode) in by:
                    text += (f", {by[(peer, mode)]['median_s'] / by[(like, mode)]['median_s']:.2f}x"
                             " like for like")
                parts.append(text)
        if floor:
            parts.append(f"{ours['median_s'] / floor['median_s']:.2f}x harmonize's own I/O floor")
        parts.append(f"peak {ours['peak_mb'] / report['float32_volume_mb']:.2f}x the float32 "
                     "volume")
        lines.append(f"- harmonize at {mode}: " + "; ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200))
    parser.add_argument("--volumes", type=int, default=2, help="volumes per variant (timed)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--levers", action="store_true", help="also run the lever variants")
    parser.add_argument("--workdir", help="where inputs and outputs go (default: a temp dir)")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--spacing", type=float, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spacing = tuple(args.spacing) if args.spacing else None
        result = _worker(args.worker, spacing, [Path(p) for p in args.inputs],
                         Path(args.workdir))
        print(json.dumps(result))
        return
    report = run(args)
    text = table(report)
    print(text)
    print()
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
