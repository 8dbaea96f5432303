"""The common loader: mixed-dataset samples over one class vocabulary, with partial labels.

>>> ds = HarmonizedDataset(["out/<dataset>.jsonl", "out/<other>.jsonl"], split="train",
...                        classes=["kidney", "kidney tumor", "liver", "liver tumor"],
...                        patch_size=(96, 96, 96))
>>> loader = DataLoader(ds, batch_size=4, sampler=DatasetMixSampler(ds, weights="sqrt"), num_workers=2)

Every sample is a dict (see :meth:`HarmonizedDataset.__getitem__`). Masks are built from each
record's ``labels`` (canonical name -> mask values), so merges cost nothing. ``label_present``
says which classes are annotated for the case, so a loss can ignore the rest.

Classes (parents, partial labels): :mod:`harmonize.loader.classes`.

Channels are ordered by canonical channel name (``registry/channels.yaml``), never by position:
channel ``c`` is the same sequence in every sample. ``channels=[...]`` chooses the list (names or
synonyms); by default it is the union of the records' channels in vocabulary order. A record
without one of them gets zeros there and ``channel_present`` False, so CT and MR datasets batch
together with the default collate; a record's channels outside the list are left out. Datasets
whose channels cannot be aligned (several channels without names) cannot be mixed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import Dataset

from harmonize.labels.channels import (
    channel_count,
    channel_positions,
    record_channels,
    union_channels,
)
from harmonize.labels.vocabulary import Vocabulary, load_vocabulary
from harmonize.loader.assemble import crop_channels, mask_values
from harmonize.loader.batching import ThreadLoader, collate, describe_batch, load_one_batch
from harmonize.loader.cache import (
    CaseArrays,
    VolumeCache,
    cache_key,
    default_cache,
    read_case,
)
from harmonize.loader.classes import ParentRule, RecordClasses, record_classes, resolve_classes
from harmonize.loader.errors import LoaderError
from harmonize.loader.patches import as_patch_size, random_start, start_around
from harmonize.loader.sampling import DatasetMixSampler
from harmonize.manifest.build import expand_manifests, read_manifest
from harmonize.manifest.records import SPLITS, ManifestRecord, require_stage
from harmonize.read.case import missing_file_error, record_files

__all__ = ["DatasetMixSampler", "HarmonizedDataset", "LoaderError", "ParentRule", "RecordClasses",
           "ThreadLoader", "channel_count", "collate", "crop_channels", "describe_batch",
           "load_one_batch", "mask_values", "record_classes", "resolve_classes"]

#: Record stages the loader reads: source records are reoriented to RAS on reading and keep their
#: original intensities; normalized ones are read as written. A mix warns (StageMixWarning).
ACCEPTED_STAGES = ("normalized", "source")
#: nnU-Net's ``oversample_foreground_percent``.
DEFAULT_FOREGROUND_FRACTION = 1 / 3


def read_manifests(manifests: str | Path | Iterable[str | Path]) -> list[tuple[ManifestRecord, Path]]:
    """Records of every manifest with the folder their paths are relative to. Files or folders,
    as ``harmonize validate`` takes them (:func:`~harmonize.manifest.build.expand_manifests`);
    none, or a folder without a manifest, is a :class:`LoaderError`."""
    given = [manifests] if isinstance(manifests, (str, Path)) else list(manifests)
    empty = [p for p in map(Path, given) if p.is_dir() and not expand_manifests([p])]
    if not given or empty:
        raise LoaderError("no manifest given" if not given else "no manifest (<dataset>.jsonl) "
                          "in the folder", file=empty[0] if empty else None,
                          hint="pass <dataset>.jsonl files or the --out folder that holds them")
    out: list[tuple[ManifestRecord, Path]] = []
    for path in expand_manifests(given):
        out.extend((record, path.resolve().parent) for record in read_manifest(path))
    return out


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
        manifests: one or more ``<dataset>.jsonl`` (source-level or normalized), or
            folders of them (every manifest in the folder, as ``harmonize validate``).
        split: keep records of this split (``train``/``val``/``test``); None keeps all.
        classes: canonical names or synonyms; None = union of the manifests' classes (sorted).
        patch_size: int, three ints, or None for whole volumes (validation; use batch_size=1).
        foreground_fraction: share of patches centred on an annotated foreground voxel.
        class_balance: pick the class of a foreground patch uniformly among the annotated classes
            present in the case (rare classes appear), then a voxel of it; False picks a voxel
            of any of them (classes in proportion to their voxels).
        parents: rule deciding when a parent class derived from children is annotated (module doc).
        channels: canonical channel names or synonyms, in the order wanted (None = the union of
            the records' channels in vocabulary order); see the module doc.
        in_channels: deprecated, use ``channels``: pads the channel list with never-present
            channels up to this count (fewer than the list is an error).
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
        channels: Sequence[str] | None = None,
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
        if not entries and split is None:
            raise LoaderError("the manifest(s) hold no record",
                              hint="check the manifest; `harmonize manifest` writes one record "
                                   "per case")
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
        self.datasets = list(dict.fromkeys(r.dataset for r in self.records))
        self._choose_channels(channels, in_channels)
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
        self.indices_by_dataset = {d: [i for i, r in enumerate(self.records) if r.dataset == d]
                                   for d in self.datasets}
        if check_files:
            self.check_files()

    def _choose_channels(self, channels: Sequence[str] | None, in_channels: int | None) -> None:
        """Set ``channels`` (names, in sample order) and per record where its channels go."""
        names = [record_channels(r) for r in self.records]
        pairs = [(r.dataset, n) for r, n in zip(self.records, names)]
        if all(n is not None for n in names) or len(self.datasets) > 1:
            self.channels = union_channels(pairs, channels, error=LoaderError)
            positions = [channel_positions(n or (), self.channels) for n in names]
            unused = [c for c in self.channels if not any(c in (n or ()) for n in names)]
            if unused:
                warnings.warn(f"no record has the channel(s) {unused}: they are zeros in every "
                              "sample", stacklevel=3)
        elif channels is not None:
            raise LoaderError("channels cannot be chosen by name: the records have several "
                              "channels without names", dataset=self.datasets[0],
                              hint="give the dataset's descriptor 'channels:' and regenerate its "
                                   "manifest, or leave channels=None (channels by position)")
        else:  # one dataset without channel names: its own (positional) order
            width = max(channel_count(r) for r in self.records)
            self.channels = [f"channel {c}" for c in range(width)]
            positions = [list(range(channel_count(r))) for r in self.records]
        if in_channels is not None:
            warnings.warn("in_channels is deprecated: pass channels=[...] (canonical channel names "
                          "in the order wanted)", DeprecationWarning, stacklevel=3)
            if in_channels < len(self.channels):
                raise LoaderError(
                    f"the manifests have {len(self.channels)} channels {self.channels}, more than "
                    f"in_channels={in_channels}",
                    hint="pass channels=[...] with the channels wanted, or leave in_channels None")
            self.channels += [f"absent {c}" for c in range(len(self.channels), in_channels)]
        memo: dict[tuple[int, ...], tuple[list[int], torch.Tensor]] = {}
        self.channel_positions: list[list[int]] = []
        self._channel_present: list[torch.Tensor] = []
        for pos in positions:
            if tuple(pos) not in memo:
                present = torch.zeros(len(self.channels), dtype=torch.bool)
                present[[p for p in pos if p >= 0]] = True
                memo[tuple(pos)] = (pos, present)
            self.channel_positions.append(memo[tuple(pos)][0])
            self._channel_present.append(memo[tuple(pos)][1])

    def sample_channel_present(self, index: int) -> torch.Tensor:
        """(C,) bool: which of ``channels`` record ``index`` has."""
        return self._channel_present[index].clone()

    @property
    def in_channels(self) -> int:
        """Channels of every sample's image (``len(channels)``)."""
        return len(self.channels)

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
                self._keys[index] = cache_key(record, root)
            case = self.cache.load(record, root, key=self._keys[index])
        if case.image.shape[0] != len(self.channel_positions[index]):
            raise LoaderError(f"the image has {case.image.shape[0]} channels, the record lists "
                              f"{len(self.channel_positions[index])} ({record.channels})",
                              dataset=record.dataset, case=record.case_id,
                              hint="regenerate the manifest")
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
        ``classes`` (K names), ``channels`` (C canonical channel names), ``index``, ``start`` (3,) patch start in RAS voxels (may be
        negative where padded), ``spacing`` (3,) mm; with ``text_labels``, ``present_classes``."""
        sample = self._sample(key)
        return self.transform(sample) if self.transform is not None else sample

    def get_batch(self, keys: Sequence[int | tuple[int, int]]) -> dict[str, Any]:
        """``collate([self[k] for k in keys])``, with patches written straight into the batch
        arrays (one copy less per sample; used by :class:`ThreadLoader`)."""
        if self.transform is not None or self.patch_size is None:  # whole volumes: shape unknown
            return collate([self[k] for k in keys])
        size = self.patch_size
        image = np.empty((len(keys), len(self.channels), *size), dtype=np.float32)
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
        image = np.empty((len(self.channels), *size), dtype=np.float32) if image_out is None else image_out
        crop_channels(case, start, size, self.pad_value, self.channel_positions[index], image)
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
            "channel_present": self.sample_channel_present(index),
            "dataset": record.dataset,
            "case_id": record.case_id,
            "classes": list(self.classes),
            "channels": list(self.channels),
            "index": index,
            "start": torch.as_tensor(start, dtype=torch.int64),
            "spacing": torch.as_tensor(spacing, dtype=torch.float32),
        }
        if self.text_labels:
            visible = cast(np.ndarray, mask.reshape(len(self.classes), -1).any(axis=1))
            sample["present_classes"] = [n for n, a, v in zip(self.classes, classes.annotated, visible)
                                         if a and v]
        return sample


