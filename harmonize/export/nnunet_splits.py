"""``splits_final.json`` for an nnU-Net export: folds nnU-Net accepts for any number of cases.

nnU-Net v2 (``nnUNetTrainer.do_split``) reads ``splits_final.json`` from
``nnUNet_preprocessed/DatasetXXX_Name/`` (its planner copies the raw folder's file there) as a
list of folds ``[{"train": [...], "val": [...]}, ...]`` and trains fold ``f`` on
``splits[f]``; a fold number past the list gets a seeded random 80:20 split. Without the file
nnU-Net makes a 5-fold ``KFold`` over all training cases, which fails for fewer than 5 cases
(``Cannot have number of splits n_splits=5 greater than the number of samples``) and ignores
patients. So the export always writes the file when there is a training case:

* the manifests have labelled ``train`` **and** ``val`` cases: one fold, exactly those
  (``[{"train": train, "val": val}]``; a case without a split counts as train);
* otherwise (every labelled case in one split, e.g. a small dataset): ``k = min(5, patients)``
  folds over patients (a patient's cases, joined across datasets by
  :func:`harmonize.manifest.splits.patient_groups`, are never in a fold's train and val at once),
  patients dealt to folds in the order of a stable hash of their key, so the folds do not depend
  on the order of the manifests;
* one patient only: one fold that trains and validates on the same cases (nnU-Net logs that
  validation cases are in the training set and trains; the validation score is then no
  estimate of anything), with a warning;
* no labelled train/val case: no file (nnU-Net cannot train), with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harmonize.export import Entry
from harmonize.manifest.splits import hash_unit, patient_groups

#: nnU-Net's default number of cross-validation folds.
FOLDS = 5


@dataclass
class Folds:
    """The folds to write (``None``: write no file) and what to tell the user about them."""

    folds: list[dict[str, list[str]]] | None
    source: str  # "manifest" | "patients" | "single" | "none"
    warnings: list[str] = field(default_factory=list)


def nnunet_folds(training: Sequence[Entry]) -> Folds:
    """The folds of ``splits_final.json`` for the exported training cases (``imagesTr``,
    labelled and not test), named by their export keys; see the module doc for the rules."""
    if not training:
        return Folds(None, "none", [
            "no splits_final.json: the export has no labelled train or val case, so nnU-Net "
            "has nothing to train on"])
    train = sorted(e.key for e in training if e.split != "val")
    val = sorted(e.key for e in training if e.split == "val")
    if train and val:
        return Folds([{"train": train, "val": val}], "manifest")
    groups = patient_groups(e.record for e in training)
    members: dict[str, list[str]] = {}
    for entry in training:
        members.setdefault(groups[entry.record.patient_key], []).append(entry.key)
    if len(members) == 1:
        keys = sorted(e.key for e in training)
        return Folds([{"train": keys, "val": keys}], "single", [
            f"splits_final.json: one patient ({len(keys)} case(s)), so its one fold trains and "
            "validates on the same case(s); nnU-Net trains, but its validation score "
            "measures nothing"])
    k = min(FOLDS, len(members))
    order = sorted(members, key=lambda g: (hash_unit(0, g), g))
    val_of = [sorted(key for g in order[i::k] for key in members[g]) for i in range(k)]
    everything = sorted(e.key for e in training)
    folds = []
    for val in val_of:
        held = set(val)
        folds.append({"train": [key for key in everything if key not in held], "val": val})
    return Folds(folds, "patients")
