"""What a plugin's discovery yields: :class:`Case` for every case, :class:`Skipped` for the rest.

Every field the core reads from a plugin is a typed, validated field here (ids, paths, channel
names, official split, CT window, same-patient links); ``metadata`` is free data the core never
reads. Ids pass :func:`harmonize.gate.check_identifier` before they name a file or folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harmonize.errors import DiscoveryError
from harmonize.gate import check_identifier as check_identifier  # re-exported: plugin API

SPLITS = ("train", "val", "test")


def check_ct_window(value: Any, *, case: str | None = None) -> tuple[float, float] | None:
    """``None``, or ``value`` as ``(low, high)`` floats: two finite numbers with ``low < high``."""
    if value is None:
        return None
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  for v in value))
    if not ok or value[0] >= value[1]:
        raise DiscoveryError(
            f"ct_window must be (low, high) in HU with low < high, got {value!r}",
            case=case, hint="fix the plugin's discover() or the dataset's window file",
        )
    return (float(value[0]), float(value[1]))


def check_patient_links(value: Any, *, case: str | None = None) -> tuple[str, ...]:
    """``value`` as a tuple of unique ``dataset:patient_id`` keys (a bare string is an error)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DiscoveryError(
            f"same_patient_as must be a list of 'dataset:patient_id' keys, got {value!r}",
            case=case, hint="e.g. same_patient_as=('other-dataset:patient-12',)",
        )
    for key in value:
        dataset, sep, patient = key.partition(":") if isinstance(key, str) else ("", "", "")
        if not sep or not dataset.strip() or not patient.strip():
            raise DiscoveryError(
                f"same_patient_as entry {key!r} is not a 'dataset:patient_id' key",
                case=case, hint="qualify the other patient id with its dataset id",
            )
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class Case:
    """One case as found in a dataset's released layout.

    ``images`` holds one path per channel (a 4D file or a DICOM folder counts as one path);
    ``label`` is ``None`` for unlabelled cases (e.g. a hidden test set). ``official_split`` is one of
    ``train``/``val``/``test`` or ``None`` when the dataset has no official split for this case.
    ``annotated`` overrides the descriptor's class list for this case (``None`` = all classes if
    the case has a label, none otherwise).

    Typed fields the core reads (validated here, so a bad value fails at discovery):

    * ``ct_window``: a per-series CT window ``(low, high)`` in HU (``low < high``, finite) that wins
      over the descriptor's ``ct_window``; ``None`` = use the run's or dataset's window.
    * ``rescale``: ``(slope, intercept)`` turning this case's stored image values into physical
      ones (slope > 0, finite); wins over the descriptor's ``rescale``; ``None`` = the
      descriptor's (see :func:`case_rescale`).
    * ``same_patient_as``: ``dataset:patient_id`` keys of the same person in other datasets; the
      splits keep linked patients together and ``harmonize duplicates`` reports them.

    ``metadata`` is free, JSON-serialisable data the core never reads; it is copied to the record.
    """

    case_id: str
    patient_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    official_split: str | None = None
    channel_names: tuple[str, ...] | None = None
    annotated: tuple[str, ...] | None = None
    labels: Mapping[str, Sequence[int]] | None = None
    ct_window: tuple[float, float] | None = None
    rescale: tuple[float, float] | None = None
    same_patient_as: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(Path(p) for p in self.images))
        object.__setattr__(self, "ct_window", check_ct_window(self.ct_window, case=self.case_id))
        if self.rescale is not None:
            slope, intercept = self.rescale
            if not (math.isfinite(slope) and math.isfinite(intercept) and slope > 0):
                raise DiscoveryError(f"rescale must be (slope > 0, intercept), finite, got "
                                     f"{self.rescale!r}", case=self.case_id)
            object.__setattr__(self, "rescale", (float(slope), float(intercept)))
        object.__setattr__(self, "same_patient_as",
                           check_patient_links(self.same_patient_as, case=self.case_id))
        if self.label is not None:
            object.__setattr__(self, "label", Path(self.label))
        if not self.images:
            raise DiscoveryError(f"case {self.case_id!r} has no image", case=self.case_id)
        if self.official_split not in (None, *SPLITS):
            raise DiscoveryError(
                f"official_split must be one of {SPLITS} or None, got {self.official_split!r}",
                case=self.case_id,
            )
        if self.channel_names is not None and len(self.channel_names) not in (1, len(self.images)):
            # One multi-channel file may carry several channel names.
            if len(self.images) != 1:
                raise DiscoveryError(
                    f"{len(self.channel_names)} channel names for {len(self.images)} images",
                    case=self.case_id,
                )

    def files(self) -> list[Path]:
        """Every source file or folder of this case, images first."""
        return [*self.images, *([self.label] if self.label is not None else [])]


def case_rescale(case: Case, descriptor_rescale: tuple[float, float] | None
                 ) -> tuple[float, float] | None:
    """The ``(slope, intercept)`` a case's image files need: the case's own, else its dataset
    descriptor's ``descriptor_rescale``; ``None`` when the files are in physical units."""
    return case.rescale if case.rescale is not None else descriptor_rescale


@dataclass(frozen=True)
class Skipped:
    """Something discovery saw and did not turn into a case, with the reason and a next step."""

    path: Path
    reason: str
    case_id: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "case": self.case_id,
            "reason": self.reason,
            "hint": self.hint,
        }
