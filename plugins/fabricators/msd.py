"""Fabricate Medical Segmentation Decathlon task folders in their released layout (plugins/msd.py).

Each task is written as the tar files extract::

    TaskXX_Name/dataset.json
    TaskXX_Name/imagesTr/<prefix>_<id>.nii.gz   (4D for Task01 and Task05)
    TaskXX_Name/labelsTr/<prefix>_<id>.nii.gz   (3D, same file name)
    TaskXX_Name/imagesTs/<prefix>_<id>.nii.gz   (no labels)
    ._<file> next to every file                 (macOS AppleDouble, not NIfTI)

``dataset.json`` carries the release's keys (including the ``relase`` misspelling), string label keys
and the real label and modality names (label and modality names of all tasks, and the whole header of
Task04, Task05 and Task07, were checked against copies of the release files; the other headers'
description and reference strings are from memory and may differ). Training ids are real ids of each task
(zero padding differs per task, ids are not contiguous); test ids are real where known (Task01,
Task02, Task03, Task04, Task05, Task07) and otherwise numbers that do not occur in the training list.

Arrays are stored x -> patient left, y -> posterior, z -> superior with a negative x/y affine
("LPS" orientation code), as DICOM-converted files are; the second training case of every task is
stored feet-first (z flipped) and Task05 is slightly oblique, so readers must use the affine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmonize.testing import ct_phantom, ellipsoid, grid, write_nifti

#: Header of a macOS AppleDouble file: magic 0x00051607, version 2, filler "Mac OS X".
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 58

# (value, centre, radii, only inside this value or None); fractions of each array axis
Shape = tuple[int, tuple[float, float, float], tuple[float, float, float], int | None]


@dataclass(frozen=True)
class TaskSpec:
    """What the fabricator needs to know about one MSD task."""

    folder: str
    prefix: str
    width: int  # zero padding of the id: liver_0 (0), prostate_00 (2), lung_001 (3)
    header: dict  # dataset.json keys before numTraining, in the release's order
    train_ids: tuple[int, ...]
    test_ids: tuple[int, ...]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    shapes: tuple[Shape, ...]
    # per label value: CT HU, or MR multiplier per channel
    intensity: dict[int, tuple[float, ...]]
    lungs: bool = False
    oblique_deg: float = 0.0

    @property
    def ct(self) -> bool:
        return self.header["modality"] == {"0": "CT"}

    @property
    def channels(self) -> list[str]:
        return [self.header["modality"][k] for k in sorted(self.header["modality"], key=int)]


def _header(name: str, description: str, reference: str, release: str, size: str,
            modality: dict[str, str], labels: dict[str, str]) -> dict:
    return {
        "name": name, "description": description, "reference": reference,
        "licence": "CC-BY-SA 4.0", "relase": release, "tensorImageSize": size,
        "modality": modality, "labels": labels,
    }


_MSKCC = "Memorial Sloan Kettering Cancer Center"
TASKS: dict[str, TaskSpec] = {spec.folder: spec for spec in (
    TaskSpec(
        "Task01_BrainTumour", "BRATS", 3,
        _header("BRATS", "Gliomas segmentation tumour and oedema in on brain images",
                "https://www.med.upenn.edu/sbia/brats2017.html", "2.0 04/05/2018", "4D",
                {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
                {"0": "background", "1": "edema", "2": "non-enhancing tumor",
                 "3": "enhancing tumour"}),
        (1, 2, 3, 4, 5), (485, 557), (30, 30, 20), (1.0, 1.0, 1.0),
        ((1, (0.40, 0.45, 0.55), (0.22, 0.20, 0.25), None),
         (3, (0.40, 0.45, 0.55), (0.12, 0.11, 0.14), None),
         (2, (0.40, 0.45, 0.55), (0.07, 0.06, 0.08), None)),
        # FLAIR, T1w, t1gd, T2w: edema bright on FLAIR/T2, enhancing rim bright on t1gd
        {1: (1.8, 0.9, 1.0, 1.7), 2: (1.2, 0.6, 0.7, 1.9), 3: (1.4, 0.8, 2.5, 1.3)},
    ),
    TaskSpec(
        "Task02_Heart", "la", 3,
        _header("LeftAtrium", "Left atrium segmentation", "King’s College London",
                "1.0 04/05/2018", "3D", {"0": "MRI"}, {"0": "background", "1": "left atrium"}),
        (3, 4, 5, 7, 9), (1, 2), (32, 32, 22), (1.25, 1.25, 1.37),
        ((1, (0.55, 0.60, 0.50), (0.18, 0.15, 0.22), None),),
        {1: (1.6,)},
    ),
    TaskSpec(
        "Task03_Liver", "liver", 0,
        _header("Liver", "Liver and tumor segmentation", "IRCAD Hôpitaux Universitaires",
                "1.0 04/05/2018", "3D", {"0": "CT"},
                {"0": "background", "1": "liver", "2": "cancer"}),
        (0, 1, 2, 3, 4), (132, 133), (40, 36, 24), (0.74, 0.74, 2.5),
        ((1, (0.30, 0.45, 0.55), (0.20, 0.22, 0.30), None),
         (2, (0.28, 0.42, 0.58), (0.07, 0.07, 0.10), 1)),
        {1: (110.0,), 2: (55.0,)},
    ),
    TaskSpec(
        "Task04_Hippocampus", "hippocampus", 3,
        _header("Hippocampus", "Left and right hippocampus segmentation",
                " Vanderbilt University Medical Center", "1.0 04/05/2018", "3D",
                {"0": "MRI"}, {"0": "background", "1": "Anterior", "2": "Posterior"}),
        (1, 3, 4, 6, 7), (267, 2), (18, 25, 18), (1.0, 1.0, 1.0),
        ((1, (0.50, 0.30, 0.50), (0.22, 0.18, 0.22), None),
         (2, (0.50, 0.62, 0.50), (0.18, 0.20, 0.18), None)),
        {1: (1.3,), 2: (1.2,)},
    ),
    TaskSpec(
        "Task05_Prostate", "prostate", 2,
        _header("PROSTATE", "Prostate transitional zone and peripheral zone segmentation",
                "Radboud University, Nijmegen Medical Centre", "1.0 04/05/2018", "4D",
                {"0": "T2", "1": "ADC"}, {"0": "background", "1": "PZ", "2": "TZ"}),
        (0, 1, 2, 4, 6), (8, 22), (32, 32, 12), (0.625, 0.625, 3.6),
        ((1, (0.50, 0.58, 0.50), (0.20, 0.16, 0.30), None),
         (2, (0.50, 0.50, 0.50), (0.13, 0.11, 0.25), None)),
        # T2, ADC: PZ bright on T2, TZ darker; ADC the other way round
        {1: (1.7, 1.4), 2: (1.1, 0.8)},
        oblique_deg=8.0,
    ),
    TaskSpec(
        "Task06_Lung", "lung", 3,
        _header("Lung", "Lung and cancer segmentation", "The Cancer Imaging Archive",
                "1.0 04/05/2018", "3D", {"0": "CT"}, {"0": "background", "1": "cancer"}),
        (1, 3, 4, 5, 6), (2, 7), (40, 36, 24), (0.78, 0.78, 1.25),
        ((1, (0.33, 0.40, 0.60), (0.06, 0.07, 0.09), None),),
        {1: (35.0,)},
        lungs=True,
    ),
    TaskSpec(
        "Task07_Pancreas", "pancreas", 3,
        _header("Pancreas", "Pancreas and cancer segmentation", _MSKCC + " ",
                "1.0 04/05/2018", "3D", {"0": "CT"},
                {"0": "background", "1": "pancreas", "2": "cancer"}),
        (1, 4, 5, 6, 10), (44, 2), (40, 36, 24), (0.8, 0.8, 2.5),
        ((1, (0.52, 0.50, 0.50), (0.22, 0.06, 0.12), None),
         (2, (0.44, 0.50, 0.50), (0.06, 0.05, 0.07), 1)),
        {1: (100.0,), 2: (60.0,)},
    ),
    TaskSpec(
        "Task08_HepaticVessel", "hepaticvessel", 3,
        _header("HepaticVessel", "Hepatic Vessel segmentation", _MSKCC,
                "1.0 04/05/2018", "3D", {"0": "CT"},
                {"0": "background", "1": "Vessel", "2": "Tumour"}),
        (1, 2, 4, 5, 7), (3, 6), (40, 36, 24), (0.8, 0.8, 5.0),
        ((1, (0.30, 0.45, 0.55), (0.03, 0.03, 0.40), None),
         (1, (0.30, 0.45, 0.55), (0.18, 0.03, 0.03), None),
         (2, (0.22, 0.52, 0.45), (0.07, 0.07, 0.12), None)),
        {1: (180.0,), 2: (60.0,)},
    ),
    TaskSpec(
        "Task09_Spleen", "spleen", 0,
        _header("Spleen", "Spleen Segmentation", _MSKCC, "1.0 04/05/2018", "3D",
                {"0": "CT"}, {"0": "background", "1": "spleen"}),
        (2, 3, 6, 8, 9), (1, 4), (40, 36, 24), (0.79, 0.79, 5.0),
        ((1, (0.74, 0.58, 0.60), (0.09, 0.12, 0.20), None),),
        {1: (120.0,)},
    ),
    TaskSpec(
        "Task10_Colon", "colon", 3,
        _header("Colon", "Colon cancer segmentation", _MSKCC, "1.0 04/05/2018", "3D",
                {"0": "CT"}, {"0": "background", "1": "colon cancer primaries"}),
        (1, 5, 6, 7, 8), (2, 3), (40, 36, 24), (0.78, 0.78, 5.0),
        ((1, (0.66, 0.40, 0.35), (0.07, 0.06, 0.09), None),),
        {1: (70.0,)},
    ),
)}


def case_name(spec: TaskSpec, number: int) -> str:
    """``liver_0``, ``prostate_08``, ``lung_001``: the task's own zero padding."""
    return f"{spec.prefix}_{number:0{spec.width}d}" if spec.width else f"{spec.prefix}_{number}"


def _ids(known: Sequence[int], count: int, avoid: set[int]) -> list[int]:
    ids = [n for n in known if n not in avoid][:count]
    candidate = max([*known, *avoid, 0]) + 1
    while len(ids) < count:  # more cases than known ids: unused numbers above the known ones
        if candidate not in avoid:
            ids.append(candidate)
        candidate += 1
    return ids


def mr_phantom(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """An MR-like float32 volume: dark background, a bright ellipsoid body, smooth bias, noise."""
    coords = grid(shape)
    body = ellipsoid(shape, (0.5, 0.5, 0.5), (0.46, 0.44, 0.48))
    bias = 1.0 + 0.15 * (coords[0] - 0.5) + 0.1 * (coords[2] - 0.5)
    volume = np.where(body, 300.0 * bias, 8.0).astype(np.float32)
    volume += np.abs(rng.normal(0.0, 6.0, size=tuple(shape))).astype(np.float32)
    return volume


def task_arrays(spec: TaskSpec, shape: tuple[int, int, int],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image (3D, or 4D with channels last) and uint8 label arrays of one case."""
    jitter = rng.uniform(-0.03, 0.03, size=3)
    label = np.zeros(shape, dtype=np.uint8)
    for value, centre, radii, inside in spec.shapes:
        mask = ellipsoid(shape, tuple(c + j for c, j in zip(centre, jitter)), radii)
        if inside is not None:
            mask &= label == inside
        label[mask] = value
    if spec.ct:
        image = ct_phantom(shape, rng, axial_axes=(0, 1))
        if spec.lungs:
            for x in (0.30, 0.70):
                image[ellipsoid(shape, (x, 0.45, 0.5), (0.17, 0.25, 0.45))] = -850
        for value, (hu,) in spec.intensity.items():
            image[label == value] = int(hu)
        return image, label
    channels = []
    for channel in range(len(spec.channels)):
        base = mr_phantom(shape, rng)
        for value, factors in spec.intensity.items():
            base[label == value] *= factors[channel]
        channels.append(base)
    image = channels[0] if len(channels) == 1 else np.stack(channels, axis=-1)
    return image.astype(np.float32), label


def case_affine(spec: TaskSpec, shape: tuple[int, int, int], origin: Sequence[float],
                *, feet_first: bool) -> np.ndarray:
    """Voxel -> RAS affine: x to patient left, y to posterior, z to superior (or inferior)."""
    sx, sy, sz = spec.spacing
    affine = np.diag([-sx, -sy, -sz if feet_first else sz, 1.0])
    if spec.oblique_deg:
        t = np.deg2rad(spec.oblique_deg)
        rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])
        affine[:3, :3] = rot @ affine[:3, :3]
    affine[:3, 3] = origin
    if feet_first:  # the first stored slice is the most superior one
        affine[2, 3] += (shape[2] - 1) * sz
    return affine


def _dataset_json(spec: TaskSpec, train: list[str], test: list[str]) -> str:
    """dataset.json laid out like the release: a pretty header, one-line lists."""
    lines = ["{ "]
    for key, value in spec.header.items():
        if isinstance(value, dict):
            inner = ", \n".join(f'   "{k}": {json.dumps(v, ensure_ascii=False)}' for k, v in value.items())
            lines.append(f'"{key}": {{ \n{inner}\n }}, ')
        else:
            lines.append(f'"{key}": {json.dumps(value, ensure_ascii=False)},')
    lines.append(f'"numTraining": {len(train)}, ')
    lines.append(f'"numTest": {len(test)},')
    training = ",".join(
        json.dumps({"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"})
        for n in train
    ).replace(" ", "")
    lines.append(f'"training":[{training}], ')
    lines.append(f'"test": [{",".join(json.dumps(f"./imagesTs/{n}.nii.gz") for n in test)}]')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _appledouble(path: Path) -> None:
    (path.parent / f"._{path.name}").write_bytes(APPLEDOUBLE)


def make_msd_task(
    root: Path,
    *,
    task: str = "Task03_Liver",
    n_train: int = 3,
    n_test: int = 1,
    seed: int = 0,
    appledouble: bool = True,
) -> Path:
    """Write ``root/<task>/`` with ``n_train`` labelled and ``n_test`` unlabelled cases; return
    the task folder.

    Cases differ in slice count and origin; the second training case is stored feet-first.
    ``appledouble`` adds a ``._<name>`` AppleDouble file next to every file, as the macOS-built
    tar archives have.
    """
    if task not in TASKS:
        raise KeyError(f"unknown MSD task {task!r}; known: {', '.join(TASKS)}")
    spec = TASKS[task]
    folder = Path(root) / spec.folder
    rng = np.random.default_rng(seed)
    train = [case_name(spec, n) for n in _ids(spec.train_ids, n_train, set())]
    test = [case_name(spec, n) for n in _ids(spec.test_ids, n_test, set(spec.train_ids))]
    written: list[Path] = []
    for index, name in enumerate(train + test):
        shape = (spec.shape[0], spec.shape[1], spec.shape[2] + 2 * (index % 3))
        image, label = task_arrays(spec, shape, rng)
        origin = (float(rng.uniform(150, 250)) * spec.spacing[0] / 0.8,
                  float(rng.uniform(150, 250)) * spec.spacing[1] / 0.8,
                  float(rng.uniform(-400, -100)) if spec.ct else float(rng.uniform(-60, 0)))
        feet_first = index == 1
        affine = case_affine(spec, shape, origin, feet_first=feet_first)
        if feet_first:
            image, label = image[:, :, ::-1, ...].copy(), label[:, :, ::-1].copy()
        subset = "Tr" if name in train else "Ts"
        written.append(write_nifti(folder / f"images{subset}" / f"{name}.nii.gz", image, affine))
        if subset == "Tr":
            written.append(write_nifti(folder / "labelsTr" / f"{name}.nii.gz", label, affine))
    info = folder / "dataset.json"
    info.write_text(_dataset_json(spec, train, test), encoding="utf-8")
    if appledouble:
        for path in [info, *written]:
            _appledouble(path)
    return folder
