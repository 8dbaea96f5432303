"""SAT-DS's dataset table (``registry/sat-ds.yaml``): names, label lists, modality strings, and
how SAT-DS's ``loader.py`` reads each dataset's mask.

SAT-DS (zhaoziheng/SAT-DS) describes each of its 72 datasets by a JSONL file whose lines share
one ``label`` list, and reads each dataset with its own ``Loader_Wrapper.<name>`` method. The
table keeps, per dataset, the ``label`` list and modality strings verbatim (source commit in the
file's header) and, for datasets ``harmonize export sat`` writes in SAT-DS's own layout, the mask
layout that method expects (:class:`MaskLayout`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from harmonize.errors import DescriptorError
from harmonize.yamlio import load_yaml

__all__ = ["MaskLayout", "SatDataset", "load_sat_ds"]


@dataclass(frozen=True)
class MaskLayout:
    """How ``Loader_Wrapper.<name>`` reads a mask: ``values``: ``label[i]`` is mask value ``i + 1``
    for the first ``count`` names; ``channels``: the mask file's array is ``(C, X, Y, Z)`` with
    channel ``i`` = ``label[i]``, for the first ``count`` names. Later names are derived in code."""

    layout: Literal["values", "channels"]
    count: int


@dataclass(frozen=True)
class SatDataset:
    """One SAT-DS dataset: ``label`` and ``modality`` strings as its JSONL has them;
    ``channels`` maps a canonical channel name to the modality string of its lines (datasets
    whose lines differ per sequence); ``suffixed`` lists canonical channels read from one 4D
    file through ``<file>/<channel>`` pseudo-paths (channel index = position); ``only`` lists
    the canonical channels SAT-DS has lines for when it leaves others out (the PET of a
    PET/CT case)."""

    name: str
    label: tuple[str, ...]
    modality: tuple[str, ...]
    mask: MaskLayout | None = None
    channels: dict[str, str] = field(default_factory=dict)
    suffixed: tuple[str, ...] = ()
    only: tuple[str, ...] = ()

    def modality_of(self, channel: str | None) -> str:
        """The SAT-DS modality string of a line showing ``channel`` (canonical name)."""
        if channel is not None and channel in self.channels:
            return self.channels[channel]
        if len(self.modality) == 1:
            return self.modality[0]
        raise DescriptorError(f"SAT-DS dataset {self.name} has modality strings "
                              f"{list(self.modality)}; none is known for channel {channel!r}",
                              hint="add the channel to its `channels` in registry/sat-ds.yaml")


def load_sat_ds(path: Path | None = None) -> dict[str, SatDataset]:
    """SAT-DS's datasets by name, from ``path`` or the bundled ``registry/sat-ds.yaml``."""
    return _bundled() if path is None else _parse(Path(path))


@cache
def _bundled() -> dict[str, SatDataset]:
    return _parse(Path(str(resources.files("harmonize.registry").joinpath("sat-ds.yaml"))))


def _parse(path: Path) -> dict[str, SatDataset]:
    data = load_yaml(path.read_text(encoding="utf-8"))
    table = {}
    for name, entry in data.items():
        try:
            mask = MaskLayout(**entry["mask"]) if "mask" in entry else None
            if mask is not None and (mask.layout not in ("values", "channels")
                                     or not 0 < mask.count <= len(entry["label"])):
                raise ValueError(f"bad mask {entry['mask']}")
            image = entry.get("image") or {}
            table[name] = SatDataset(
                name=name, label=tuple(entry["label"]), modality=tuple(entry["modality"]),
                mask=mask, channels=dict(entry.get("channels") or {}),
                suffixed=tuple(image.get("order", ())) if image.get("layout") == "suffixed"
                else (),
                only=tuple(image.get("order", ())) if image.get("layout") == "only" else ())
        except (KeyError, TypeError, ValueError) as exc:
            raise DescriptorError(f"SAT-DS table entry {name!r} is malformed: {exc}", file=path,
                                  hint="each entry needs label, modality and optionally "
                                  "mask {layout, count}, channels, image {layout: suffixed or "
                                  "only, order}") from None
    return table
