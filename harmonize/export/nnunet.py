"""nnU-Net v2 raw dataset export (``nnUNet_raw/DatasetXXX_Name``).

Follows nnU-Net's ``documentation/dataset_format.md``:

* ``imagesTr/<case>_0000.nii.gz`` ... one file per channel (a 4D image is split into channels),
  ``labelsTr/<case>.nii.gz`` for the train and val cases that have a mask;
* ``imagesTs/`` for test cases and for every case without a mask (``labelsTs/`` holds the masks
  of labelled test cases, for evaluation; nnU-Net itself does not read it);
* ``dataset.json`` with ``channel_names``: the canonical channel names (``registry/channels.yaml``)
  in canonical order, and ``_000c`` is that channel for every case whatever its file order
  (``CT`` gives nnU-Net's CT normalization, other names its z-score). nnU-Net cannot mark a
  channel missing, so datasets with different channels are refused, naming both, unless
  ``channels`` picks channels every dataset has (CT and MR datasets go to separate exports);
  ``labels``, ``numTraining``, ``file_ending``;
* ``splits_final.json``: folds nnU-Net accepts for any number of training cases
  (:mod:`harmonize.export.nnunet_splits`: the manifests' train/val as fold 0, else up to 5
  patient-level folds); nnU-Net's planner copies it to ``nnUNet_preprocessed/DatasetXXX_Name/``.

Labels must be consecutive integers: mask values are remapped through
:class:`harmonize.export.LabelScheme` (values 0/1/2/4 -> 0/1/2/3; several datasets share a label
when their classes share a name) and every label file is rewritten on its image's grid.
``regions=True`` adds the record's merged classes as nnU-Net region tuples (e.g. kidney
(1, 2, 3), kidney mass (2, 3) for values 1 kidney, 2 tumor, 3 cyst) with a ``regions_class_order`` that decodes every label exactly.

Images keep their stored orientation and grid, in the units nnU-Net normalizes from: a
record's recorded intensity mapping (``harmonize run``'s CT window, MR/PET percentile z-score)
is undone per channel (:func:`harmonize.export.source_intensity`), so CT is in HU (clipped to
the run's window: :func:`intensity_notes` warns) and other channels in their source units
(clipped to the run's percentiles; zero background is zero again, so nnU-Net's crop to nonzero
and its masked z-score work as on the release). Undone values that are integers (within 1e-3,
e.g. int16 HU windowed into float32) are written as int16, others as float32. A source
record's single-channel ``.nii.gz`` is copied byte for byte; anything else is converted.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize import __version__, jsonio
from harmonize.errors import ErrorRecord
from harmonize.export import (
    Entry,
    ExportError,
    LabelScheme,
    load_entries,
    read_image,
    read_mask,
    remap_values,
    run_cases,
)
from harmonize.export.nnunet_splits import nnunet_folds
from harmonize.export.nnunet_units import in_source_units, intensity_notes, mapped
from harmonize.files import atomic_path, write_text_atomic
from harmonize.labels.channels import export_plan
from harmonize.read.nifti_writer import write_volume
from harmonize.read.volume import Volume

FILE_ENDING = ".nii.gz"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def dataset_folder(dataset_id: int, name: str) -> str:
    """``DatasetXXX_Name`` (nnU-Net's folder name; ids 1..999)."""
    if not 1 <= int(dataset_id) <= 999:
        raise ExportError(f"nnU-Net dataset ids run from 1 to 999, got {dataset_id}",
                          hint="pass --dataset-id with a free id, e.g. 501")
    if not _NAME.match(name):
        raise ExportError(f"dataset name {name!r} may only use letters, digits, _ and -",
                          hint="pass --name like Kidney_CT or Abdomen_CT")
    return f"Dataset{int(dataset_id):03d}_{name}"


def channel_plan(entries: Sequence[Entry], channels: Sequence[str] | None = None
                 ) -> tuple[list[str], list[list[int]]]:
    """The exported channels (canonical order, or ``channels`` as asked) and per entry, for each
    of them, the record's own channel index. nnU-Net needs every channel in every case: a dataset
    without one is an :class:`ExportError` naming it and a dataset that has it."""
    return export_plan([e.record for e in entries], channels, error=ExportError)


def channel_names(entries: Sequence[Entry], channels: Sequence[str] | None = None) -> dict[str, str]:
    """``channel_names`` for dataset.json: the canonical channel names (:func:`channel_plan`).
    ``CT`` selects nnU-Net's CT normalization; every other name gets its per-image z-score."""
    names, _ = channel_plan(entries, channels)
    return {str(c): name for c, name in enumerate(names)}


def region_labels(scheme: LabelScheme) -> tuple[dict[str, Any], list[int]]:
    """nnU-Net ``labels`` with region tuples, and the ``regions_class_order`` that decodes them.

    Regions are every class (largest first), plus a single-label region for any label the
    classes alone would not decode. A region paints, in order, the one label it holds that no
    later region holds (else its smallest label, overwritten later).
    """
    regions = sorted(((name, tuple(v)) for name, v in scheme.regions.items() if v),
                     key=lambda item: -len(item[1]))
    regions = _with_decodable_singles(regions, scheme)
    order = []
    for i, (_, region) in enumerate(regions):
        later = {v for _, r in regions[i + 1:] for v in r}
        own = sorted(set(region) - later)
        order.append(own[0] if own else min(region))
    labels: dict[str, Any] = {"background": 0}
    for name, region in regions:
        labels[name] = list(region) if len(region) > 1 else region[0]
    return labels, order


def _decoded(regions: list[tuple[str, tuple[int, ...]]], label: int) -> int:
    """The label nnU-Net's region decoding gives a voxel of ``label`` (0 if no region holds it)."""
    result = 0
    for i, (_, region) in enumerate(regions):
        if label in region:
            later = {v for _, r in regions[i + 1:] for v in r}
            own = sorted(set(region) - later)
            result = own[0] if own else min(region)
    return result


def _with_decodable_singles(regions: list[tuple[str, tuple[int, ...]]],
                            scheme: LabelScheme) -> list[tuple[str, tuple[int, ...]]]:
    regions = list(regions)
    used = {name for name, _ in regions}
    for label, name in enumerate(scheme.names, start=1):
        if _decoded(regions, label) != label:
            single = name if name not in used else f"{name} (label {label})"
            regions = [r for r in regions if r[1] != (label,)] + [(single, (label,))]
            used.add(single)
    return regions


def plain_labels(scheme: LabelScheme) -> dict[str, int]:
    """nnU-Net ``labels`` without regions: :meth:`LabelScheme.table`."""
    return scheme.table()


# ----------------------------------------------------------------------------------- one case


@dataclass(frozen=True)
class NnunetTask:
    entry: Entry
    folder: Path
    images_dir: str
    labels_dir: str | None
    mapping: dict[int, int]
    label_dtype: str
    #: for each exported channel (``_0000``, ``_0001``, ...), the record's own channel index
    channel_order: tuple[int, ...] = (0,)


def write_case(task: NnunetTask) -> list[str]:
    """Write one case's channel files (and label); return the written paths (relative).

    On failure the case's files written so far are removed (an image without its label would
    break nnU-Net's case count) and the error is raised.
    """
    written: list[Path] = []
    try:
        return _write_case(task, written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _write_case(task: NnunetTask, written: list[Path]) -> list[str]:
    entry, folder = task.entry, task.folder
    paths = entry.image_paths()
    image_dir = folder / task.images_dir
    image: Volume | None = None
    if len(paths) == 1 and paths[0].name.lower().endswith(FILE_ENDING) and len(
            entry.record.shape) == 3 and task.channel_order == (0,) and not mapped(entry) \
            and entry.files_as_read:
        target = image_dir / f"{entry.key}_0000{FILE_ENDING}"
        with atomic_path(target) as tmp:
            shutil.copyfile(paths[0], tmp)
        written.append(target)
    else:
        image = read_image(entry)
        data = image.data
        channels = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
        for c, own in enumerate(task.channel_order):  # canonical order, not the file's
            target = image_dir / f"{entry.key}_{c:04d}{FILE_ENDING}"
            values = in_source_units(channels[own], entry, own if data.ndim == 4 else None)
            write_volume(Volume(values, image.affine, "image"), target)
            written.append(target)
    if task.labels_dir is not None:
        mask = read_mask(entry)
        assert mask is not None
        data = remap_values(mask.data, task.mapping, entry=entry, file=entry.mask_path(),
                            dtype=np.dtype(task.label_dtype))
        target = folder / task.labels_dir / f"{entry.key}{FILE_ENDING}"
        write_volume(Volume(data, mask.affine, "label"), target)
        written.append(target)
    return [p.relative_to(folder).as_posix() for p in written]


# ----------------------------------------------------------------------------------- the export


@dataclass
class NnunetExport:
    """What was written: the dataset folder, dataset.json, case lists and failures."""

    folder: Path
    dataset_json: dict[str, Any] = field(default_factory=dict)
    training: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    splits: list[dict[str, list[str]]] | None = None
    errors: list[ErrorRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def placement(entry: Entry) -> tuple[str, str | None]:
    """Where a case goes: (images folder, labels folder or None)."""
    if entry.record.mask is None:
        return "imagesTs", None
    if entry.split == "test":
        return "imagesTs", "labelsTs"
    return "imagesTr", "labelsTr"


def export_nnunet(
    manifests: Sequence[Path] | Path,
    out: Path,
    *,
    dataset_id: int,
    name: str,
    regions: bool = False,
    channels: Sequence[str] | None = None,
    workers: int | None = 1,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> NnunetExport:
    """Write ``out/DatasetXXX_Name`` from the manifests (see the module doc); ``channels``
    chooses the exported channels (names or synonyms; default every channel, canonical order)."""

    folder = Path(out) / dataset_folder(dataset_id, name)
    entries = load_entries(manifests)
    names, orders = channel_plan(entries, channels)
    scheme = LabelScheme.from_entries(entries)
    notes, intensity_warnings = intensity_notes(entries, names, orders)
    result = NnunetExport(folder=folder, warnings=unannotated_warnings(entries, scheme)
                          + intensity_warnings)
    if folder.exists():
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            if (folder / sub).is_dir():
                shutil.rmtree(folder / sub)  # a stale case must not stay in the dataset
    dtype = "uint8" if len(scheme.names) <= 255 else "uint16"
    tasks = []
    for entry, own in zip(entries, orders):
        images_dir, labels_dir = placement(entry)
        tasks.append(NnunetTask(entry, folder, images_dir, labels_dir,
                                dict(scheme.mapping(entry)), dtype, tuple(own)))
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    done = {task.entry.key for task, _ in run_cases(write_case, tasks, workers=workers,
                                                     progress=progress, errors=result.errors)}
    ok = [t for t in tasks if t.entry.key in done]
    result.training = sorted(t.entry.key for t in ok if t.images_dir == "imagesTr")
    result.test = sorted(t.entry.key for t in ok if t.images_dir == "imagesTs")
    if regions:
        labels, order = region_labels(scheme)
    else:
        labels, order = plain_labels(scheme), None
    result.dataset_json = dataset_json(entries, {str(c): n for c, n in enumerate(names)}, labels,
                                       order, scheme, len(result.training))
    result.dataset_json["harmonize"]["intensity"] = notes
    write_text_atomic(folder / "dataset.json", jsonio.dumps(result.dataset_json, indent=1) + "\n")
    folds = nnunet_folds([t.entry for t in ok if t.images_dir == "imagesTr"])
    result.warnings.extend(folds.warnings)
    splits_file = folder / "splits_final.json"
    if folds.folds is not None:
        result.splits = folds.folds
        write_text_atomic(splits_file, jsonio.dumps(result.splits, indent=1) + "\n")
    else:
        splits_file.unlink(missing_ok=True)
    return result


def unannotated_warnings(entries: Sequence[Entry], scheme: LabelScheme) -> list[str]:
    """One warning per dataset whose labelled cases do not annotate every exported class:
    nnU-Net trains such voxels as background (it has no notion of partial annotation)."""
    missing: dict[str, set[str]] = {}
    for entry in entries:
        if entry.record.mask is not None:
            absent = set(scheme.names) - set(entry.record.annotated)
            if absent:
                missing.setdefault(entry.dataset, set()).update(absent)
    return [f"{dataset}: cases do not annotate {sorted(names)}; nnU-Net will learn those classes "
            "as background there (export datasets with the same classes together)"
            for dataset, names in sorted(missing.items())] + shared_voxel_warnings(scheme)


def shared_voxel_warnings(scheme: LabelScheme) -> list[str]:
    """One warning per class whose voxels overlapping structures share are exported as another
    class (one label per voxel; the manifest and the loader keep both)."""
    return [f"{name}: voxels it shares with {', '.join(repr(t) for t in takers)} are exported as "
            f"{'that class' if len(takers) == 1 else 'those classes'} (one label per voxel)"
            for name, takers in sorted(scheme.shared.items())]


def dataset_json(entries: Sequence[Entry], channels: dict[str, str], labels: dict[str, Any],
                 order: list[int] | None, scheme: LabelScheme, num_training: int) -> dict[str, Any]:
    """dataset.json: nnU-Net's required keys first, then where the labels came from."""
    datasets = sorted({e.dataset for e in entries})
    doc: dict[str, Any] = {
        "channel_names": channels,
        "labels": labels,
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
    }
    if order is not None:
        doc["regions_class_order"] = order
    mapping: dict[str, dict[str, int]] = {}
    for entry in entries:
        for value, label in scheme.mapping(entry).items():
            mapping.setdefault(entry.dataset, {})[str(value)] = label
    doc.update({
        "name": "+".join(datasets),
        "description": f"exported by harmonize {__version__} from {len(entries)} manifest "
                       f"record(s) of {', '.join(datasets)}",
        "reference": "see the source datasets' citations (`harmonize plugins --format json`)",
        "licence": "see the source datasets' licences (`harmonize plugins --format json`)",
        "harmonize": {
            "version": __version__,
            "manifests": sorted({e.manifest.as_posix() for e in entries}),
            "label_of_mask_value": mapping,
            "classes": {name: values for name, values in scheme.regions.items()},
        },
    })
    return doc
