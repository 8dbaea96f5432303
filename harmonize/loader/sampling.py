"""Per-dataset sampling weights and a seeded, shardable sampler that mixes datasets.

Weights: ``uniform`` (every dataset equally often), ``size`` (in proportion to its cases, i.e.
every case equally often), ``sqrt`` (in proportion to the square root of its cases, a middle
way) or an explicit ``{dataset: weight}`` dict. Within a dataset cases are drawn uniformly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from harmonize.errors import HarmonizeError

WEIGHT_MODES = ("uniform", "size", "sqrt")


class SamplingError(HarmonizeError):
    """Sampling weights or sharding arguments are invalid."""

    kind = "loader"


def dataset_probabilities(
    counts: Mapping[str, int], weights: str | Mapping[str, float] = "sqrt"
) -> dict[str, float]:
    """Probability of drawing each dataset, given its number of cases and the weighting."""
    if isinstance(weights, str):
        if weights not in WEIGHT_MODES:
            raise SamplingError(f"weights must be one of {WEIGHT_MODES} or a dict, got {weights!r}")
        raw = {d: 1.0 if weights == "uniform" else float(n) if weights == "size" else math.sqrt(n)
               for d, n in counts.items()}
    else:
        unknown = sorted(set(weights) - set(counts))
        missing = sorted(set(counts) - set(weights))
        if unknown or missing:
            raise SamplingError(
                f"weights name unknown dataset(s) {unknown} and miss {missing}",
                hint=f"give a weight for each of: {', '.join(counts)}",
            )
        raw = {d: float(weights[d]) for d in counts}
        if any(not math.isfinite(w) or w < 0 for w in raw.values()):
            raise SamplingError(f"weights must be finite and >= 0, got {dict(weights)}")
    total = sum(raw.values())
    if total <= 0:
        raise SamplingError("all dataset weights are zero", hint="give at least one dataset a weight > 0")
    return {d: w / total for d, w in raw.items()}


def _groups(source: Any) -> dict[str, list[int]]:
    if hasattr(source, "indices_by_dataset"):
        return {d: list(ix) for d, ix in source.indices_by_dataset.items()}
    if isinstance(source, Mapping):
        return {d: list(ix) for d, ix in source.items()}
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(source):
        groups.setdefault(str(name), []).append(index)
    return groups


class DatasetMixSampler(Sampler):
    """Draw ``(index, seed)`` keys with replacement, datasets mixed by ``weights``.

    ``source`` is a :class:`~harmonize.loader.dataset.HarmonizedDataset`, a ``{dataset: [indices]}``
    mapping or a sequence giving each index's dataset (e.g. for TorchIO subjects; use
    ``with_seeds=False`` there to yield plain indices). The draws of an epoch depend only on
    ``(seed, epoch)``: call :meth:`set_epoch` each epoch. With ``world_size`` > 1 every rank gets
    ``ceil(num_samples / world_size)`` draws, rank ``r`` taking draws ``r, r + W, ...`` of one
    shared sequence (DistributedSampler-style); rank and world size default to
    ``torch.distributed``'s when it is initialised.
    """

    def __init__(
        self,
        source: Any,
        weights: str | Mapping[str, float] = "sqrt",
        *,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        with_seeds: bool = True,
    ) -> None:
        self.groups = {d: ix for d, ix in _groups(source).items() if ix}
        if not self.groups:
            raise SamplingError("nothing to sample: no dataset has a case")
        self.probabilities = dataset_probabilities({d: len(ix) for d, ix in self.groups.items()}, weights)
        total = sum(len(ix) for ix in self.groups.values())
        self.num_samples = int(num_samples) if num_samples is not None else total
        if self.num_samples < 1:
            raise SamplingError(f"num_samples must be >= 1, got {num_samples}")
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.world_size = int(world_size if world_size is not None else
                              torch.distributed.get_world_size() if distributed else 1)
        self.rank = int(rank if rank is not None else torch.distributed.get_rank() if distributed else 0)
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise SamplingError(f"rank {self.rank} is not in [0, world_size={self.world_size})")
        self.seed = int(seed)
        self.epoch = 0
        self.with_seeds = with_seeds

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.world_size)

    def draws(self) -> list[tuple[int, int]]:
        """The whole epoch's ``(index, seed)`` sequence shared by all ranks (``len * world_size``)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        names = list(self.groups)
        total = len(self) * self.world_size
        which = rng.choice(len(names), size=total, p=[self.probabilities[n] for n in names])
        picks = rng.random(total)
        seeds = rng.integers(0, 2**63 - 1, size=total, dtype=np.int64)
        out = []
        for d, u, s in zip(which, picks, seeds):
            members: Sequence[int] = self.groups[names[d]]
            out.append((int(members[min(int(u * len(members)), len(members) - 1)]), int(s)))
        return out

    def __iter__(self) -> Iterator[Any]:
        for index, seed in self.draws()[self.rank::self.world_size]:
            yield (index, seed) if self.with_seeds else index
