"""The common loader: mixed-dataset samples over one class vocabulary, with partial labels.

>>> ds = HarmonizedDataset(["out/kits23.jsonl", "out/msd-liver.jsonl"], split="train",
...                        classes=["kidney", "kidney tumor", "liver", "liver tumor"],
...                        patch_size=(96, 96, 96))
>>> loader = DataLoader(ds, batch_size=4, sampler=DatasetMixSampler(ds, weights="sqrt"), num_workers=2)

Every sample is a dict (see :meth:`HarmonizedDataset.__getitem__`). Masks are built from each
record's ``labels`` (canonical name -> mask values), so merges cost nothing. ``label_present``
says which classes are annotated for the case, so a loss can ignore the rest.

Parent classes: asking for ``kidney`` from a dataset that labels only ``left kidney`` and ``right
kidney`` gives the union of the values of every labelled descendant. It counts as annotated when
the class itself is annotated, or (rule ``"sides"``, default) when both its ``left``/``right``
children are (recursively). Other children are parts, not a cover (``liver tumor`` and ``hepatic
vessel`` are not the liver), so they never make a parent annotated unless ``parents="children"``
is asked for, which also accepts a parent whose every direct child is annotated (right for level
hierarchies such as vertebrae, wrong for organ-and-lesion ones).

Channels: datasets with fewer channels than the widest one (1-channel CT next to 4-channel MR) are
zero-padded at the end to the same count, with ``channel_present`` flags, so the default collate
batches them; ``in_channels`` fixes the count instead.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import Dataset

from harmonize.errors import HarmonizeError, LabelError
from harmonize.labels.vocabulary import Vocabulary, load_vocabulary
from harmonize.loader.cache import (
    CaseArrays,
    VolumeCache,
    cache_key,
    default_cache,
    read_case,
)
from harmonize.loader.patches import as_patch_size, random_start, start_around
from harmonize.loader.sampling import DatasetMixSampler
from harmonize.manifest.build import read_manifest
from harmonize.manifest.records import SPLITS, ManifestRecord, require_stage
from harmonize.read.case import missing_file_error, record_files

__all__ = ["DatasetMixSampler", "HarmonizedDataset", "LoaderError", "ThreadLoader", "collate",
           "describe_batch", "load_one_batch"]

ParentRule = Literal["sides", "children"]
#: Record stages the loader reads: source records are reoriented to RAS on reading and keep their
#: original intensities; normalized ones are read as written. A mix warns (StageMixWarning).
ACCEPTED_STAGES = ("normalized", "source")
#: nnU-Net's ``oversample_foreground_percent``.
DEFAULT_FOREGROUND_FRACTION = 1 / 3


class LoaderError(HarmonizeError):
    """The loader was asked for something the manifests cannot give (classes, patch, channels)."""

    kind = "loader"


@dataclass(frozen=True)
class RecordClasses:
    """Per requested class: the record's mask values and whether the class is annotated."""

    values: tuple[tuple[int, ...], ...]
    annotated: tuple[bool, ...]


def read_manifests(manifests: str | Path | Iterable[str | Path]) -> list[tuple[ManifestRecord, Path]]:
    """Records of every manifest with the folder their paths are relative to."""
    paths = [manifests] if isinstance(manifests, (str, Path)) else list(manifests)
    if not paths:
        raise LoaderError("no manifest given", hint="pass one or more <dataset>.jsonl files")
    out: list[tuple[ManifestRecord, Path]] = []
    for path in paths:
        path = Path(path)
        out.extend((record, path.resolve().parent) for record in read_manifest(path))
    return out


def _canonical_labels(record: ManifestRecord, vocabulary: Vocabulary) -> tuple[dict[str, set[int]], set[str]]:
    labels = {vocabulary.resolve(n, dataset=record.dataset): set(v) for n, v in record.labels.items()}
    annotated = {vocabulary.resolve(n, dataset=record.dataset) for n in record.annotated}
    return labels, annotated & set(labels)


def _covered(name: str, annotated: set[str], vocabulary: Vocabulary, rule: ParentRule) -> bool:
    if name in annotated:
        return True
    children = vocabulary.children(name)
    if not children:
        return False
    sides = (f"left {name}", f"right {name}")
    if all(s in children for s in sides) and all(_covered(s, annotated, vocabulary, rule) for s in sides):
        return True
    return rule == "children" and all(_covered(c, annotated, vocabulary, rule) for c in children)


def record_classes(
    record: ManifestRecord, classes: Sequence[str], vocabulary: Vocabulary, parents: ParentRule = "sides"
) -> RecordClasses:
    """Mask values and annotated flags of ``classes`` (canonical names) for one record."""
    labels, annotated = _canonical_labels(record, vocabulary)
    values, present = [], []
    for name in classes:
        members = {name, *vocabulary.descendants(name)}
        values.append(tuple(sorted({v for n in members & set(labels) for v in labels[n]})))
        present.append(_covered(name, annotated, vocabulary, parents))
    return RecordClasses(tuple(values), tuple(present))


def resolve_classes(
    classes: Sequence[str] | None, records: Sequence[ManifestRecord], vocabulary: Vocabulary
) -> list[str]:
    """Canonical names asked for (synonyms resolved), or the sorted union of the manifests' classes."""
    labelled = sorted({vocabulary.resolve(n, dataset=r.dataset) for r in records for n in r.labels})
    if classes is None:
        if not labelled:
            raise LabelError("the manifests label no class at all",
                             hint="pass classes=... or use manifests of labelled datasets")
        return labelled
    if isinstance(classes, str) or not list(classes):
        raise LabelError(f"classes must be a non-empty list of names, got {classes!r}",
                         hint=f"use None for every class, or names from: {', '.join(labelled)}")
    out: list[str] = []
    for name in classes:
        canonical = vocabulary.resolve(name)
        if canonical in out:
            raise LabelError(f"class {name!r} is asked for twice (as {canonical!r})",
                             hint="list each class once")
        members = {canonical, *vocabulary.descendants(canonical)}
        if not members & set(labelled):
            raise LabelError(
                f"no manifest labels {canonical!r} or any of its sub-structures",
                hint=f"the manifests label: {', '.join(labelled)}",
            )
        out.append(canonical)
    return out


def channel_count(record: ManifestRecord) -> int:
    """Channels of a record's image, from ``channels``, the image list or a 4D shape."""
    if record.channels:
        return len(record.channels)
    if isinstance(record.image, list):
        return len(record.image)
    return int(record.shape[3]) if len(record.shape) == 4 else 1


def ras_shape(record: ManifestRecord) -> tuple[int, int, int]:
    """Spatial shape of the record's volume once reoriented to RAS (from its affine or code)."""
    if record.affine is not None:
        ornt = nib.orientations.io_orientation(np.asarray(record.affine, dtype=float))
    else:
        ornt = nib.orientations.axcodes2ornt(tuple(record.orientation))
    out = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        out[int(target)] = int(record.shape[axis])
    return out[0], out[1], out[2]


class HarmonizedDataset(Dataset):
    """Map-style dataset over the records of one or more manifests.

    Keys are record indices, or ``(index, seed)`` pairs as yielded by
    :class:`~harmonize.loader.sampling.DatasetMixSampler` (a seed fixes the patch, whichever worker draws
    it). For a bare index the patch is seeded by ``(seed, epoch, index)``; see :meth:`set_epoch`.

    Args:
        manifests: one or more ``<dataset>.jsonl`` (source-level or normalized).
        split: keep records of this split (``train``/``val``/``test``); None keeps all.
        classes: canonical names or synonyms; None = union of the manifests' classes (sorted).
        patch_size: int, three ints, or None for whole volumes (validation; use batch_size=1).
        foreground_fraction: share of patches centred on an annotated foreground voxel.
        class_balance: pick the class of a foreground patch uniformly among the annotated classes
            present in the case (rare classes appear), then a voxel of it; False picks a voxel
            of any of them (classes in proportion to their voxels).
        parents: rule deciding when a parent class derived from children is annotated (module doc).
        in_channels: fixed channel count (None = the largest in the manifests); fewer are
            zero-padded at the end, more are an error.
        pad_value: image value outside volumes smaller than the patch (masks pad with 0).
        allow_padding: accept a patch larger than every volume along some axis.
        cache: False, True (``cache/`` next to each manifest), a folder or a VolumeCache.
        text_labels: add ``present_classes`` (annotated classes with voxels in the sample).
        transform: callable applied to each sample dict last.
        check_files: check at construction that every referenced file exists.
    """

    def __init__(
        self,
        manifests: str | Path | Iterable[str | Path],
        *,
        split: str | None = None,
        classes: Sequence[str] | None = None,
        patch_size: int | Sequence[int] | None = (96, 96, 96),
        foreground_fraction: float = DEFAULT_FOREGROUND_FRACTION,
        class_balance: bool = True,
        parents: ParentRule = "sides",
        in_channels: int | None = None,
        pad_value: float = 0.0,
        allow_padding: bool = False,
        cache: bool | str | Path | VolumeCache | None = False,
        text_labels: bool = False,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        seed: int = 0,
        vocabulary: Vocabulary | None = None,
        check_files: bool = True,
    ) -> None:
        if split is not None and split not in SPLITS:
            raise LoaderError(f"split must be one of {SPLITS} or None, got {split!r}")
        if not 0.0 <= foreground_fraction <= 1.0:
            raise LoaderError(f"foreground_fraction must be in [0, 1], got {foreground_fraction}")
        if parents not in ("sides", "children"):
            raise LoaderError(f"parents must be 'sides' or 'children', got {parents!r}")
        self.vocabulary = vocabulary or load_vocabulary()
        entries = read_manifests(manifests)
        kept: dict[tuple[str, Path], int] = {}
        for record, root in entries:
            key = (record.dataset, root)
            kept[key] = kept.get(key, 0) + (split is None or record.split == split)
        for (dataset, root), count in kept.items():
            if count == 0:
                warnings.warn(f"no record of {dataset} ({root}) has split {split!r}; it takes no part",
                              stacklevel=2)
        entries = [(r, root) for r, root in entries if split is None or r.split == split]
        if not entries:
            raise LoaderError(f"no record with split {split!r} in the manifests",
                              hint="check the split name, or pass split=None")
        self.records = [r for r, _ in entries]
        self.roots = [root for _, root in entries]
        #: "source" or "normalized" (None for a mix, which warns: intensities then disagree)
        self.stage = require_stage(self.records, ACCEPTED_STAGES, consumer="the loader",
                                   mix="warn")
        self.split = split
        self.classes = resolve_classes(classes, self.records, self.vocabulary)
        memo: dict[str, RecordClasses] = {}
        self.record_classes: list[RecordClasses] = []
        for record in self.records:
            sig = json.dumps([record.dataset, record.labels, record.annotated], sort_keys=True)
            if sig not in memo:
                memo[sig] = record_classes(record, self.classes, self.vocabulary, parents)
            self.record_classes.append(memo[sig])
        self.channels = self._channel_count(in_channels)
        try:
            self.patch_size = as_patch_size(patch_size)
        except ValueError as exc:
            raise LoaderError(str(exc), hint="patch_size is in voxels, RAS order (X, Y, Z)") from None
        if self.patch_size is not None and not allow_padding:
            self._check_patch_fits()
        self.foreground_fraction = float(foreground_fraction)
        self.class_balance = class_balance
        self.parents = parents
        self.pad_value = float(pad_value)
        self.cache = default_cache(cache)
        self._keys: list[str | None] = [None] * len(self.records)
        self.text_labels = text_labels
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.datasets = list(dict.fromkeys(r.dataset for r in self.records))
        self.indices_by_dataset = {d: [i for i, r in enumerate(self.records) if r.dataset == d]
                                   for d in self.datasets}
        if check_files:
            self.check_files()

    def _channel_count(self, in_channels: int | None) -> int:
        counts = [channel_count(r) for r in self.records]
        if in_channels is None:
            return max(counts)
        for record, count in zip(self.records, counts):
            if count > in_channels:
                raise LoaderError(
                    f"the image has {count} channels, more than in_channels={in_channels}",
                    dataset=record.dataset, case=record.case_id,
                    hint="raise in_channels or leave it None (pad to the widest dataset)",
                )
        return int(in_channels)

    def _check_patch_fits(self) -> None:
        assert self.patch_size is not None
        shapes = [ras_shape(r) for r in self.records]
        if all(any(p > s for p, s in zip(self.patch_size, shape)) for shape in shapes):
            largest = max(shapes, key=lambda s: int(np.prod(s)))
            raise LoaderError(
                f"patch_size {self.patch_size} is larger than every volume along some axis "
                f"(RAS shapes from {min(shapes)} to {max(shapes)}, largest volume {largest})",
                hint="pass a smaller patch_size (voxels, RAS order X, Y, Z), or allow_padding=True "
                     "to pad every sample",
            )

    def check_files(self) -> None:
        """Raise a ReadError naming the record and the path of the first missing file."""
        missing = []
        for record, root in zip(self.records, self.roots):
            images, mask = record_files(record, root)
            for path, what in [*((p, "image") for p in images), *([(mask, "mask")] if mask else [])]:
                if not path.exists():
                    missing.append((record, path, root, what))
        if missing:
            record, path, root, what = missing[0]
            error = missing_file_error(record, path, root, what)
            if len(missing) > 1:
                error = type(error)(f"{error.message} ({len(missing)} files are missing in all)",
                                    dataset=error.dataset, case=error.case, file=error.file,
                                    hint=error.hint)
            raise error

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the patches drawn for bare integer keys (call before each epoch)."""
        self.epoch = int(epoch)

    def load_case(self, index: int) -> CaseArrays:
        """Whole RAS arrays of a record, from the cache when one is set, else from its files."""
        record, root = self.records[index], self.roots[index]
        if self.cache is None:
            case = read_case(record, root)
        else:
            if self._keys[index] is None:
                self._keys[index] = cache_key(record)
            case = self.cache.load(record, root, key=self._keys[index])
        if case.image.shape[0] > self.channels:
            raise LoaderError(f"the image has {case.image.shape[0]} channels, more than {self.channels}",
                              dataset=record.dataset, case=record.case_id,
                              hint="fix the record's channels or raise in_channels")
        return case

    def _patch_start(self, case: CaseArrays, classes: RecordClasses, rng: np.random.Generator) -> np.ndarray:
        assert self.patch_size is not None
        shape = case.image.shape[1:]
        if rng.random() < self.foreground_fraction and case.label is not None:
            index = case.foreground
            assert index is not None
            candidates = [k for k, (vals, ann) in enumerate(zip(classes.values, classes.annotated))
                          if ann and index.has_any(vals)]
            if candidates:
                if self.class_balance:
                    values: Iterable[int] = classes.values[candidates[rng.integers(len(candidates))]]
                else:
                    values = {v for k in candidates for v in classes.values[k]}
                location = index.sample(values, rng)
                assert location is not None  # candidates hold voxels
                return start_around(location, shape, self.patch_size, rng)
        return random_start(shape, self.patch_size, rng)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """One sample: ``image`` (C, X, Y, Z) float32, ``mask`` (K, X, Y, Z) uint8 multi-hot,
        ``label_present`` (K,) bool, ``channel_present`` (C,) bool, ``dataset``, ``case_id``,
        ``classes`` (K names), ``index``, ``start`` (3,) patch start in RAS voxels (may be
        negative where padded), ``spacing`` (3,) mm; with ``text_labels``, ``present_classes``."""
        sample = self._sample(key)
        return self.transform(sample) if self.transform is not None else sample

    def get_batch(self, keys: Sequence[int | tuple[int, int]]) -> dict[str, Any]:
        """``collate([self[k] for k in keys])``, with patches written straight into the batch
        arrays (one copy less per sample; used by :class:`ThreadLoader`)."""
        if self.transform is not None or self.patch_size is None:  # whole volumes: shape unknown
            return collate([self[k] for k in keys])
        size = self.patch_size
        image = np.empty((len(keys), self.channels, *size), dtype=np.float32)
        mask = np.empty((len(keys), len(self.classes), *size), dtype=np.uint8)
        batch = collate([self._sample(k, image[b], mask[b]) for b, k in enumerate(keys)], skip=("image", "mask"))
        batch["image"], batch["mask"] = torch.from_numpy(image), torch.from_numpy(mask)
        return batch

    def _sample(self, key: int | tuple[int, int], image_out: np.ndarray | None = None,
                mask_out: np.ndarray | None = None) -> dict[str, Any]:
        if isinstance(key, tuple):
            index, seed = int(key[0]), int(key[1])
        else:
            index, seed = int(key), None
        rng = np.random.default_rng(seed if seed is not None else [self.seed, self.epoch, index])
        record, classes = self.records[index], self.record_classes[index]
        case = self.load_case(index)
        shape = case.image.shape[1:]
        if self.patch_size is None:
            start, size = np.zeros(3, dtype=np.int64), tuple(int(s) for s in shape)
        else:
            start, size = self._patch_start(case, classes, rng), self.patch_size
        channels = case.image.shape[0]
        image = np.empty((self.channels, *size), dtype=np.float32) if image_out is None else image_out
        case.crop_image(start, size, self.pad_value, out=image[:channels])
        image[channels:] = 0
        mask = np.zeros((len(self.classes), *size), dtype=np.uint8) if mask_out is None else mask_out
        if mask_out is not None:
            mask[...] = 0
        label = case.crop_label(start, size)
        if label is not None:
            mask_values(label, classes.values, out=mask)
        spacing = np.sqrt((np.asarray(case.affine)[:3, :3] ** 2).sum(axis=0))
        sample: dict[str, Any] = {
            "image": torch.from_numpy(image),
            "mask": torch.from_numpy(mask),
            "label_present": torch.tensor(classes.annotated, dtype=torch.bool),
            "channel_present": torch.arange(self.channels) < channels,
            "dataset": record.dataset,
            "case_id": record.case_id,
            "classes": list(self.classes),
            "index": index,
            "start": torch.as_tensor(start, dtype=torch.int64),
            "spacing": torch.as_tensor(spacing, dtype=torch.float32),
        }
        if self.text_labels:
            visible = cast(np.ndarray, mask.reshape(len(self.classes), -1).any(axis=1))
            sample["present_classes"] = [n for n, a, v in zip(self.classes, classes.annotated, visible)
                                         if a and v]
        return sample


def mask_values(label: np.ndarray, values: Sequence[Sequence[int]], *, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (K, *label.shape) with 1 where ``label`` holds one of ``values[k]``."""
    high = int(label.max()) if label.size else 0
    for k, vals in enumerate(values):
        vals = [v for v in vals if v <= high]
        if not vals:
            continue
        target = out[k].view(bool)
        if len(vals) <= 8:  # comparisons are ~20x faster than a lookup table on uint8 maps
            np.equal(label, vals[0], out=target)
            for v in vals[1:]:
                target |= label == v
        else:
            lut = np.zeros(high + 1, dtype=np.uint8)
            lut[list(vals)] = 1
            np.take(lut, label, out=out[k], mode="clip")  # label <= high: clip never changes it
    return out


def collate(samples: Sequence[Mapping[str, Any]], *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Batch samples: tensors stacked, ``classes`` once, other values as lists (ragged lists kept).

    Use as ``collate_fn`` with ``text_labels=True``; without it the default collate works too.
    Keys in ``skip`` are left out.
    """
    batch: dict[str, Any] = {}
    for key in samples[0]:
        if key in skip:
            continue
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):  # numpy: one thread, no intra-op contention
            batch[key] = torch.from_numpy(np.stack([v.numpy() for v in values]))
        elif key == "classes":
            batch[key] = list(values[0])
        elif isinstance(values[0], int):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


class ThreadLoader:
    """Batches of a dataset assembled by ``num_workers`` threads of this process.

    An alternative to ``DataLoader(num_workers=N)`` for :class:`HarmonizedDataset` with a cache:
    cache reads (``pread``) and numpy work release the GIL, so threads run in parallel, and no
    batch is handed over through shared memory (which costs a page fault per 4 KiB, often more
    than reading the patch). Yields, in order, what ``DataLoader(dataset, batch_size,
    sampler=sampler, collate_fn=collate_fn)`` yields. At most ``num_workers * prefetch`` batches
    are in flight. Reading ``.nii.gz`` files (no cache) is faster with worker processes.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        *,
        sampler: Iterable[Any] | None = None,
        num_workers: int = 2,
        prefetch: int = 2,
        drop_last: bool = False,
        collate_fn: Callable[[list[Any]], Any] = collate,
    ) -> None:
        if batch_size < 1 or num_workers < 1 or prefetch < 1:
            raise LoaderError("batch_size, num_workers and prefetch must be >= 1")
        self.dataset, self.batch_size, self.sampler = dataset, batch_size, sampler
        self.num_workers, self.prefetch, self.drop_last = num_workers, prefetch, drop_last
        self.collate_fn = collate_fn

    def __len__(self) -> int:
        n = len(self.sampler if self.sampler is not None else self.dataset)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self) -> Iterator[list[Any]]:
        keys = iter(self.sampler if self.sampler is not None else range(len(self.dataset)))  # type: ignore[arg-type]
        while batch := list(itertools.islice(keys, self.batch_size)):
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def _make(self, keys: list[Any]) -> Any:
        if self.collate_fn is collate and hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(keys)
        return self.collate_fn([self.dataset[k] for k in keys])

    def __iter__(self) -> Iterator[Any]:
        batches = self._batches()
        pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="harmonize-loader")
        pending: deque[Future[Any]] = deque()
        try:
            for keys in itertools.islice(batches, self.num_workers * self.prefetch):
                pending.append(pool.submit(self._make, keys))
            while pending:
                result = pending.popleft().result()
                more = next(batches, None)
                if more is not None:
                    pending.append(pool.submit(self._make, more))
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def load_one_batch(
    manifests: str | Path | Iterable[str | Path],
    *,
    batch_size: int = 4,
    patch_size: int | Sequence[int] | None = (32, 32, 32),
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """One mixed batch: datasets taken in turn, a random case of each, collated with :func:`collate`.

    ``kwargs`` go to :class:`HarmonizedDataset` (``allow_padding`` defaults to True here).
    """
    kwargs.setdefault("allow_padding", True)
    dataset = HarmonizedDataset(manifests, patch_size=patch_size, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    keys = []
    for b in range(batch_size):
        members = dataset.indices_by_dataset[dataset.datasets[b % len(dataset.datasets)]]
        keys.append((int(members[rng.integers(len(members))]), int(rng.integers(2**63))))
    return collate([dataset[key] for key in keys])


def describe_batch(batch: Mapping[str, Any]) -> str:
    """Readable summary: shapes, classes, and per sample its dataset, case and label_present."""
    classes = batch["classes"]
    if classes and isinstance(classes[0], (tuple, list)):  # default_collate transposes lists
        classes = [c[0] for c in classes]
    image, mask = batch["image"], batch["mask"]
    lines = [
        f"image {tuple(image.shape)} {str(image.dtype).replace('torch.', '')}, "
        f"mask {tuple(mask.shape)} {str(mask.dtype).replace('torch.', '')}",
        "classes: " + ", ".join(f"{k}={name}" for k, name in enumerate(classes)),
    ]
    voxels = mask.flatten(2).sum(dim=2)
    width = max(len(f"{d}/{c}") for d, c in zip(batch["dataset"], batch["case_id"]))
    for b, (dataset, case) in enumerate(zip(batch["dataset"], batch["case_id"])):
        present = "".join("1" if v else "0" for v in batch["label_present"][b].tolist())
        channels = "".join("1" if v else "0" for v in batch["channel_present"][b].tolist())
        lines.append(f"  {f'{dataset}/{case}':<{width}}  label_present {present}  "
                     f"channels {channels}  voxels {voxels[b].tolist()}")
    return "\n".join(lines)
