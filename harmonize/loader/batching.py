"""Batching samples: :func:`collate`, :class:`ThreadLoader` (threads instead of worker processes),
:func:`describe_batch` and :func:`load_one_batch`."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harmonize.loader.errors import LoaderError


def collate(samples: Sequence[Mapping[str, Any]], *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Batch samples: tensors stacked, ``classes`` and ``channels`` once, other values as lists
    (ragged lists kept).

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
        elif key in ("classes", "channels"):
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
    channels = batch.get("channels")
    if channels:
        if isinstance(channels[0], (tuple, list)):  # default_collate transposes lists
            channels = [c[0] for c in channels]
        lines.append("channels: " + ", ".join(f"{c}={name}" for c, name in enumerate(channels)))
    voxels = mask.flatten(2).sum(dim=2)
    width = max(len(f"{d}/{c}") for d, c in zip(batch["dataset"], batch["case_id"]))
    for b, (dataset, case) in enumerate(zip(batch["dataset"], batch["case_id"])):
        present = "".join("1" if v else "0" for v in batch["label_present"][b].tolist())
        channels = "".join("1" if v else "0" for v in batch["channel_present"][b].tolist())
        lines.append(f"  {f'{dataset}/{case}':<{width}}  label_present {present}  "
                     f"channels {channels}  voxels {voxels[b].tolist()}")
    return "\n".join(lines)


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
    from harmonize.loader.dataset import HarmonizedDataset  # the dataset batches with collate

    kwargs.setdefault("allow_padding", True)
    dataset = HarmonizedDataset(manifests, patch_size=patch_size, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    keys = []
    for b in range(batch_size):
        members = dataset.indices_by_dataset[dataset.datasets[b % len(dataset.datasets)]]
        keys.append((int(members[rng.integers(len(members))]), int(rng.integers(2**63))))
    return collate([dataset[key] for key in keys])
