"""BraTS 2021 and BraTS 2023 adult glioma: one folder per case, four MR sequences + a label map.

Released layouts (DATASETS.md section 8; nnU-Net Dataset137_BraTS21.py, SAT-DS processor.py)::

    RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021/BraTS2021_00000/
        BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz
    RSNA_ASNR_MICCAI_BraTS2021_ValidationData/BraTS2021_00001/...   (no _seg)
    ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData/BraTS-GLI-00000-000/
        BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz
    ASNR-MICCAI-BraTS2023-GLI-Challenge-ValidationData/...            (no -seg)

``root`` may be a folder of case folders or a folder holding such folders (training and
validation side by side). The four sequences become the case's channels in one fixed order for
both releases, T1, T1ce, T2, FLAIR (the descriptor's ``channels``). Training cases are official
``train``; cases in a ``...Validation...`` folder are official ``val`` (unlabelled as released: no
label map); a training case without its label map is skipped. Label values outside the release's
set (a 3 in BraTS 2021, a 4 in BraTS 2023) are caught by the core against the descriptor's
``values``.
Patient ids: BraTS 2021 has only the case folder name; BraTS 2023 names are
``BraTS-GLI-<patient>-<time point>`` (118 patients have ``-000`` and ``-001``; BraTS 2024 uses
``-100``/``-101`` the same way) and the descriptor's ``patient_id`` regex keeps the patient, the
time point goes to the record's metadata. BraTS21-17_Mapping.csv, when next to the cases, adds
each case's ids in earlier BraTS releases and its site to the metadata.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    hookimpl,
    is_hidden,
)

_SEARCH_DEPTH = 2  # how deep below root to look for folders of case folders


class BraTS(DatasetPlugin):
    """One BraTS release; subclasses set the case-folder pattern and the file suffixes."""

    case_pattern: ClassVar[re.Pattern[str]]
    separator: ClassVar[str]
    #: file suffixes in channel order T1, T1ce, T2, FLAIR
    sequences: ClassVar[tuple[str, str, str, str]]
    #: the release's id-mapping table and its case-id column, read for metadata when present
    mapping_file: ClassVar[str | None] = None
    mapping_key: ClassVar[str] = ""
    other_release: ClassVar[tuple[re.Pattern[str], str] | None] = None

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        folders = case_parents(root, self.case_pattern)
        if not folders:
            raise DiscoveryError(
                f"no case folders matching {self.case_pattern.pattern} found",
                dataset=self.dataset_id,
                file=root,
                hint=self._wrong_root_hint(root),
            )
        mapping = self._mapping(root, folders)
        for folder in folders:
            validation = "validation" in folder.name.lower()
            for entry in sorted(folder.iterdir()):
                if is_hidden(entry):
                    yield Skipped(entry, "hidden or AppleDouble file, not data")
                elif entry.is_dir() and self.case_pattern.match(entry.name):
                    yield self._case(entry, validation, mapping.get(entry.name))
                elif self.mapping_file and entry.name == self.mapping_file:
                    continue  # read above, attached to each case's metadata
                else:
                    yield Skipped(
                        entry,
                        f"not a case folder (expected {self.case_pattern.pattern})",
                        hint="nothing to do for a release's side file; "
                        "otherwise move it out of the dataset folder",
                    )

    def _case(self, folder: Path, validation: bool, mapping: dict[str, str] | None) -> Case | Skipped:
        case_id = folder.name
        images = tuple(folder / f"{case_id}{self.separator}{s}.nii.gz" for s in self.sequences)
        missing = [p.name for p in images if not p.is_file()]
        if missing:
            return Skipped(
                folder, f"missing sequence file(s) {missing}", case_id=case_id,
                hint="re-extract the case; all four sequences are needed",
            )
        seg = folder / f"{case_id}{self.separator}seg.nii.gz"
        label: Path | None = seg
        if not seg.is_file():
            if not validation:
                return Skipped(
                    folder, f"{seg.name} is missing from a training case", case_id=case_id,
                    hint="re-extract the training archive; unlabelled cases are only taken "
                    "from a ...ValidationData folder",
                )
            label = None
        patient_id = self._patient_id(case_id, folder)
        metadata: dict[str, object] = {
            "sequences": dict(zip(self.descriptor.channels or (), self.sequences))
        }
        if patient_id != case_id and case_id.startswith(patient_id):
            metadata["timepoint"] = case_id[len(patient_id):].lstrip("-_")
        if mapping:
            metadata["release_mapping"] = mapping
        return Case(
            case_id=case_id,
            patient_id=patient_id,
            images=images,
            label=label,
            official_split="val" if validation else "train",
            channel_names=self.descriptor.channels,
            metadata=metadata,
        )

    def _patient_id(self, case_id: str, folder: Path) -> str:
        pattern = self.descriptor.patient_id
        if not pattern:
            return case_id
        found = re.search(pattern, case_id)
        if found is None:
            raise DiscoveryError(
                f"case id {case_id!r} does not match the descriptor's patient_id {pattern!r}",
                dataset=self.dataset_id, case=case_id, file=folder,
                hint="fix patient_id in the dataset's descriptor",
            )
        return found.group("id")

    def _mapping(self, root: Path, folders: list[Path]) -> dict[str, dict[str, str]]:
        """Rows of the release's id-mapping table (if shipped next to the cases), by case id."""
        if not self.mapping_file:
            return {}
        key = self.mapping_key
        for folder in dict.fromkeys([root, *folders, *(f.parent for f in folders)]):
            path = folder / self.mapping_file
            if not path.is_file():
                continue
            try:
                with open(path, newline="", encoding="utf-8-sig") as handle:
                    rows = list(csv.DictReader(handle))
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                raise DiscoveryError(
                    f"cannot read the id mapping table: {exc}", dataset=self.dataset_id, file=path,
                    hint="re-download it or remove it (it only adds metadata)",
                ) from exc
            if rows and key not in rows[0]:
                raise DiscoveryError(
                    f"the id mapping table has no {key!r} column", dataset=self.dataset_id,
                    file=path, hint="re-download it or remove it (it only adds metadata)",
                )
            return {
                row[key]: {k: v for k, v in row.items() if k != key and k and v and v != "NA"}
                for row in rows if row.get(key)
            }
        return {}

    def _wrong_root_hint(self, root: Path) -> str:
        hint = f"point --root at the extracted release ({self.descriptor.expected_root})"
        if self.other_release is not None:
            pattern, other_id = self.other_release
            if case_parents(root, pattern):
                hint = f"these look like {other_id} cases: use --dataset {other_id}"
        return hint

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.brats import make_brats

        return make_brats(root, release=self.id, n_cases=n_cases, seed=seed)


def case_parents(root: Path, pattern: re.Pattern[str]) -> list[Path]:
    """``root`` if it holds folders matching ``pattern``, else the nearest folders below it
    (depth <= 2) that do, e.g. the training and validation folders side by side."""
    frontier = [root]
    for _ in range(_SEARCH_DEPTH + 1):
        found: list[Path] = []
        nxt: list[Path] = []
        for folder in frontier:
            subdirs = [p for p in sorted(folder.iterdir()) if p.is_dir() and not is_hidden(p)]
            if any(pattern.match(p.name) for p in subdirs):
                found.append(folder)
            else:
                nxt.extend(subdirs)
        if found:
            return found
        frontier = nxt
    return []


_BRATS2021 = re.compile(r"^BraTS2021_\d{5}$")
_BRATS2023_GLI = re.compile(r"^BraTS-GLI-\d{5}-\d{3}$")


class BraTS2021(BraTS):
    id = "brats2021"
    case_pattern = _BRATS2021
    separator = "_"
    sequences = ("t1", "t1ce", "t2", "flair")
    mapping_file = "BraTS21-17_Mapping.csv"
    mapping_key = "BraTS2021"
    other_release = (_BRATS2023_GLI, "brats2023-gli")


class BraTS2023GLI(BraTS):
    id = "brats2023-gli"
    case_pattern = _BRATS2023_GLI
    separator = "-"
    sequences = ("t1n", "t1c", "t2w", "t2f")
    other_release = (_BRATS2021, "brats2021")
    demo = False


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield BraTS2021()
    yield BraTS2023GLI()
