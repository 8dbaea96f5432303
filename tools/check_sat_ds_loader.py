"""Run SAT-DS's own ``loader.py`` on a ``harmonize export sat`` folder, line by line.

    python tools/check_sat_ds_loader.py --loader SAT-DS/loader.py --export sat [--limit 3]

For every ``<export>/jsonl/<name>.jsonl`` it calls ``Loader_Wrapper.<name>(line)`` exactly as
SAT-DS's ``checkdataset`` does, from the export folder (paths are relative to it), and prints the
returned image and mask shapes and label names, or the error. Two shims make SAT-DS's 2024 code
import beside current libraries, and change nothing it computes: MONAI >= 1.3 removed
``AddChanneld`` (its replacement is ``EnsureChannelFirstd(channel_dim="no_channel")``), and
``torchvision`` (imported, unused by the loader functions) is stubbed when it is not installed.
Needs monai, einops, opencv-python-headless, pandas, pillow, tqdm. Exit status 1 when a line fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import types
from pathlib import Path


def load_sat_loader(path: Path) -> types.ModuleType:
    import monai.transforms as mt

    if not hasattr(mt, "AddChanneld"):
        mt.AddChanneld = lambda keys: mt.EnsureChannelFirstd(keys=keys, channel_dim="no_channel")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = stub, stub.transforms
    spec = importlib.util.spec_from_file_location("sat_ds_loader", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loader", type=Path, required=True, help="SAT-DS's loader.py")
    parser.add_argument("--export", type=Path, required=True, help="harmonize export sat --out")
    parser.add_argument("--limit", type=int, default=0, help="lines per dataset (0: all)")
    args = parser.parse_args()
    module = load_sat_loader(args.loader.resolve())
    wrapper = module.Loader_Wrapper()
    os.chdir(args.export)
    failed = 0
    for jsonl in sorted(Path("jsonl").glob("*.jsonl")):
        name = jsonl.stem
        lines = [json.loads(t) for t in jsonl.read_text().splitlines() if t.strip()]
        for line in lines[: args.limit or None]:
            try:
                img, mask, labels, modality, *_ = getattr(wrapper, name)(line)
                print(f"{name:22} {line['harmonize']['case_id']:14} img {tuple(img.shape)} "
                      f"mask {tuple(mask.shape)} {modality} {labels}")
            except Exception as exc:  # noqa: BLE001 - report every line
                failed += 1
                print(f"{name:22} FAILED {type(exc).__name__}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
