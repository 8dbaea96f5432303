"""Fabricate engine-style outputs: RAS-canonical normalized NIfTI volumes and their manifest.

For loader tests and benchmarks that need what ``harmonize run`` writes
(``<out>/<dataset>/<case_id>/image.nii.gz`` + ``mask.nii.gz`` and ``<out>/<dataset>.jsonl``)
without running the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harmonize.files import sha256_path
from harmonize.manifest.build import relative_path, write_manifest
from harmonize.manifest.records import ManifestRecord
from harmonize.manifest.splits import assign_splits
from harmonize.testing.volumes import ct_phantom, ellipsoid, write_nifti

#: Default structures: (centre, radii) as fractions of each RAS axis. Low x is the patient's left.
SHAPES = {
    1: ((0.30, 0.45, 0.45), (0.10, 0.12, 0.20)),
    2: ((0.70, 0.45, 0.45), (0.10, 0.12, 0.20)),
    3: ((0.62, 0.62, 0.60), (0.22, 0.20, 0.25)),
    4: ((0.30, 0.45, 0.50), (0.04, 0.04, 0.05)),
}


def make_normalized_dataset(
    out: Path,
    dataset: str,
    *,
    n_cases: int = 4,
    shape: Sequence[int] = (32, 32, 24),
    spacing: Sequence[float] = (1.5, 1.5, 3.0),
    modality: str = "CT",
    channels: Sequence[str] = ("CT",),
    four_d: bool = True,
    labels: Mapping[str, Sequence[int]] | None = None,
    annotated: Mapping[int, Sequence[str]] | None = None,
    splits: Sequence[str | None] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``n_cases`` RAS cases of ``dataset`` under ``out`` and ``out/<dataset>.jsonl``.

    Images are float32 (CT: a body-in-air phantom windowed to [0, 1]; MR: z-scored noise), one 4D file with channels last when
    ``four_d`` and several channels, else one file per channel. Masks are uint8 with one
    ellipsoid per label value (see :data:`SHAPES`; values without a shape stay empty).
    ``labels`` maps canonical names to values (default left/right kidney 1/2); ``annotated``
    restricts a case (by number) to some names; ``splits`` sets each case's split (default: the
    patient-level hash split). Case ``i`` gets ``i`` extra slices, so shapes differ.
    """
    out = Path(out)
    labels = dict(labels or {"left kidney": [1], "right kidney": [2]})
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_cases):
        case_id = f"{dataset}_{i:03d}"
        folder = out / dataset / case_id
        grid = (int(shape[0]), int(shape[1]), int(shape[2]) + i)
        affine = np.diag([*(float(s) for s in spacing), 1.0])
        affine[:3, 3] = (-100.0, -120.0, -50.0 + 3 * i)
        mask = np.zeros(grid, dtype=np.uint8)
        for value in sorted({v for vs in labels.values() for v in vs}):
            if value in SHAPES:
                centre, radii = SHAPES[value]
                shifted = [c + float(rng.uniform(-0.03, 0.03)) for c in centre]
                mask[ellipsoid(grid, shifted, radii)] = value
        images = []
        for c, _ in enumerate(channels):
            if modality == "CT":  # body in air, HU windowed to -200..300 and scaled to [0, 1]
                hu = ct_phantom(grid, rng).astype(np.float32) + 40.0 * (mask > 0)
                data = np.clip((hu + 200.0) / 500.0, 0.0, 1.0)
            else:
                data = 0.2 + 0.15 * mask + 0.1 * c + rng.normal(0.0, 0.05, size=grid)
                data = (data - data.mean()) / data.std()
            images.append(data.astype(np.float32))
        if four_d and len(channels) > 1:
            image_paths = [write_nifti(folder / "image.nii.gz", np.stack(images, axis=-1), affine)]
        elif len(channels) > 1:
            image_paths = [write_nifti(folder / f"image_{c:04d}.nii.gz", data, affine)
                           for c, data in enumerate(images)]
        else:
            image_paths = [write_nifti(folder / "image.nii.gz", images[0], affine)]
        mask_path = write_nifti(folder / "mask.nii.gz", mask, affine)
        names = list(annotated[i]) if annotated and i in annotated else list(labels)
        case_labels = {n: list(labels[n]) for n in names}
        rel_images = [relative_path(p, out) for p in image_paths]
        records.append(ManifestRecord(
            dataset=dataset, case_id=case_id, patient_id=f"p{i:03d}", modality=modality,
            image=rel_images[0] if len(rel_images) == 1 else rel_images,
            mask=relative_path(mask_path, out), label=names, labels=case_labels, annotated=names,
            official_split=None, split=None,
            shape=[*grid, len(channels)] if four_d and len(channels) > 1 else list(grid),
            spacing=[float(s) for s in spacing], orientation="RAS",
            source={"images": [{"path": f"source/{case_id}_{c}.nii.gz", "sha256": sha256_path(p)}
                               for c, p in enumerate(image_paths)],
                    "label": {"path": f"source/{case_id}_seg.nii.gz", "sha256": sha256_path(mask_path)}},
            stage="normalized",
            channels=list(channels), affine=affine.tolist(),
            extra={"normalization": {"ct_window": [-200, 300]} if modality == "CT"
                   else {"percentiles": [0.5, 99.5], "zscore": True}},
        ))
    if splits is None:
        assign_splits(records, seed=seed)
    else:
        for record, split in zip(records, splits):
            record.split = split
    path = out / f"{dataset}.jsonl"
    write_manifest(path, records)
    return path
