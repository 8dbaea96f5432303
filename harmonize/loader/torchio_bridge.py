"""TorchIO bridge: manifest records as lazily loaded ``tio.Subject`` objects.

>>> subjects = to_torchio_subjects(["out/<dataset>.jsonl", "out/mr.jsonl"], split="train",
...                                classes=["kidney", "kidney tumor"])
>>> sampler = tio.LabelSampler(64, "mask", label_probabilities={0: 1, 1: 1})  # one per class
>>> queue = tio.Queue(tio.SubjectsDataset(subjects, transform=tio.RandomFlip()), max_length=64,
...                   samples_per_volume=8, sampler=sampler, num_workers=2)

``mask`` has one channel per class: TorchIO's ``LabelSampler`` without ``label_probabilities``
looks at channel 0 only (and fails on a subject whose first class is empty), so give it one
entry per channel index as above; it still needs a labelled voxel in every subject, so use
``UniformSampler`` where some subjects have none of the classes.

Each subject has ``image`` (``ScalarImage``, C channels ordered by canonical name as in
:class:`~harmonize.loader.dataset.HarmonizedDataset`) and ``mask`` (``LabelMap``, K channels multi-hot over
the requested classes) on the RAS grid, plus ``label_present`` (K bools), ``channel_present``
(C bools), ``dataset``, ``case_id``, ``classes`` and ``index``. Nothing is read until TorchIO
loads the subject (in its workers); with ``cache=...`` reads come from the fast cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harmonize.loader.dataset import HarmonizedDataset, LoaderError, mask_values

try:
    import torchio as tio
except ImportError as exc:  # pragma: no cover - exercised only without the torch extra
    raise ImportError("the TorchIO bridge needs torchio: pip install 'harmonize-med[torch]'") from exc


class CaseReader:
    """TorchIO ``reader``: returns the record's padded image or its multi-hot mask, and the RAS affine.

    The path TorchIO passes is ignored (the record decides what to read). Shared, not copied, by
    ``copy.deepcopy`` (TorchIO deep-copies subjects on every access).
    """

    def __init__(self, dataset: HarmonizedDataset, index: int, part: str) -> None:
        if part not in ("image", "mask"):
            raise ValueError(f"part must be 'image' or 'mask', got {part!r}")
        self.dataset, self.index, self.part = dataset, index, part

    def __deepcopy__(self, memo: dict[int, Any]) -> CaseReader:
        return self

    def __call__(self, path: Any) -> tuple[np.ndarray, np.ndarray]:
        ds, i = self.dataset, self.index
        record = ds.records[i]
        case = ds.load_case(i)  # the cache's arrays, or the record's files read and checked
        affine = case.affine
        image, label = case.image, case.label
        if ds.cache is not None:  # whole arrays read with pread, nothing left mapped
            whole = (0, 0, 0), case.image.shape[1:]
            image = case.crop_image(*whole) if self.part == "image" else case.image
            label = case.crop_label(*whole) if self.part == "mask" else None
        if self.part == "image":
            positions = ds.channel_positions[i]
            if image.shape[0] != len(positions):
                raise LoaderError(f"the image has {image.shape[0]} channels, the record lists "
                                  f"{len(positions)}", dataset=record.dataset, case=record.case_id)
            fresh = ds.cache is not None  # read with pread: a new array, ours to hand over
            if fresh and list(positions) == list(range(len(ds.channels))):
                return np.asarray(image, dtype=np.float32), np.asarray(affine)  # no 2nd copy
            out = np.zeros((len(ds.channels), *image.shape[1:]), dtype=np.float32)
            for k, p in enumerate(positions):  # by canonical channel name, as HarmonizedDataset
                if p >= 0:
                    out[p] = image[k]
            return out, np.asarray(affine)
        mask = np.zeros((len(ds.classes), *image.shape[1:]), dtype=np.uint8)
        if label is not None:
            mask_values(np.asarray(label), ds.record_classes[i].values, out=mask)
        return mask, np.asarray(affine)


class _OneFileLoad:
    """``load()`` for an image read by :class:`CaseReader`: the reader's tensor becomes the
    image's data as it is. TorchIO's ``Image.load`` passes every tensor through ``torch.cat``,
    a full copy even for one file (27 % of the bridge's time in ``tio.Queue``, cProfile)."""

    _loaded: bool

    def load(self) -> None:
        if self._loaded:
            return
        tensor, affine = self.read_and_check(self.path)  # type: ignore[attr-defined]
        self.set_data(tensor)  # type: ignore[attr-defined]
        self.affine = affine


class CaseImage(_OneFileLoad, tio.ScalarImage):
    """The bridge's ``image``: a ``tio.ScalarImage`` loaded without TorchIO's extra copy."""


class CaseMask(_OneFileLoad, tio.LabelMap):
    """The bridge's ``mask``: a ``tio.LabelMap`` loaded without TorchIO's extra copy."""


def to_torchio_subjects(
    source: HarmonizedDataset | str | Path | Iterable[str | Path], **dataset_kwargs: Any
) -> list[tio.Subject]:
    """One lazily loaded ``tio.Subject`` per record.

    ``source`` is a :class:`HarmonizedDataset` (its classes, channels, split and cache are used)
    or manifest path(s), in which case ``dataset_kwargs`` (``split``, ``classes``, ``cache``,
    ``channels``, ...) build one with whole volumes (``patch_size=None``). The list follows the
    dataset's record order, so ``DatasetMixSampler([s["dataset"] for s in subjects],
    with_seeds=False)`` can drive ``tio.Queue(subject_sampler=...)``.
    """
    if isinstance(source, HarmonizedDataset):
        if dataset_kwargs:
            raise TypeError("pass dataset options to HarmonizedDataset, not with a dataset")
        dataset = source
    else:
        dataset_kwargs.setdefault("patch_size", None)
        dataset = HarmonizedDataset(source, **dataset_kwargs)
    subjects = []
    for i, record in enumerate(dataset.records):
        path = Path(dataset.roots[i]) / (record.image if isinstance(record.image, str) else record.image[0])
        present = torch.tensor(dataset.record_classes[i].annotated, dtype=torch.bool)
        subjects.append(tio.Subject(
            image=CaseImage(path, reader=CaseReader(dataset, i, "image"), verify_path=False),
            mask=CaseMask(path, reader=CaseReader(dataset, i, "mask"), verify_path=False),
            label_present=present,
            channel_present=dataset.sample_channel_present(i),
            dataset=record.dataset,
            case_id=record.case_id,
            classes=list(dataset.classes),
            index=i,
        ))
    return subjects
