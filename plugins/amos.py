"""AMOS22: one ``amos22/`` release holding CT and MR scans, split into two datasets by case id.

Released layout (Zenodo 7262581; DATASETS.md section 10; nnU-Net Dataset218/219)::

    amos22/dataset.json                                 labels + training/validation/test lists
    amos22/imagesTr/amos_0001.nii.gz   amos22/labelsTr/amos_0001.nii.gz
    amos22/imagesVa/amos_0008.nii.gz   amos22/labelsVa/amos_0008.nii.gz
    amos22/imagesTs/amos_0002.nii.gz   (no labels)
    labeled_data_meta_0000_0599.csv    next to amos22/: sex, age, scanner, site per amos_id

Case ids up to 500 are CT, above 500 MR (SAT-DS splits on ``id <= 500``; nnU-Net's CT task takes
ids <= 410/409/500 from Tr/Va/Ts). ``amos-ct`` and ``amos-mr`` read the same folder and each takes
its own ids; the other modality's scans are reported once per folder as skipped. Official
Tr/Va/Ts become train/val/test; test scans have no labels. ``dataset.json``'s label names must
match the descriptor's ``values`` (a mismatch means a different release and is an error). One scan
per patient: the patient id is the case id.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    hookimpl,
    is_hidden,
    normalize_name,
)

CASE_FILE = re.compile(r"^amos_(\d{4})\.nii\.gz$")
#: (images folder, labels folder, official split, labels required)
FOLDERS = (
    ("imagesTr", "labelsTr", "train", True),
    ("imagesVa", "labelsVa", "val", True),
    ("imagesTs", "labelsTs", "test", False),
)
DATASET_JSON = "dataset.json"
METADATA_CSV = "labeled_data_meta_0000_0599.csv"
_JSON_LISTS = {"training": "train", "validation": "val", "test": "test"}


class AMOS(DatasetPlugin):
    """The CT or MR half of AMOS22; subclasses say which case numbers are theirs."""

    takes: ClassVar[Callable[[int], bool]]
    other_id: ClassVar[str]
    demo = False

    def data_root(self, root: Path) -> Path:
        """``root`` itself when it holds imagesTr/imagesVa/imagesTs, else its ``amos22`` folder."""
        root = self.check_root(root)
        if any((root / folder).is_dir() for folder, *_ in FOLDERS):
            return root
        if (root / "amos22").is_dir():
            return root / "amos22"
        raise DiscoveryError(
            "no imagesTr, imagesVa or imagesTs folder found",
            dataset=self.dataset_id, file=root,
            hint=f"point --root at the extracted amos22 folder ({self.descriptor.expected_root})",
        )

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        data = self.data_root(root)
        listed = self._check_dataset_json(data)
        metadata = self._scan_metadata(data)
        found = 0
        for images_dir, labels_dir, split, label_required in FOLDERS:
            folder = data / images_dir
            if not folder.is_dir():
                continue
            others = 0
            for image in sorted(folder.iterdir()):
                match = CASE_FILE.match(image.name)
                if is_hidden(image):
                    yield Skipped(image, "hidden or AppleDouble file, not data")
                    continue
                if match is None:
                    yield Skipped(image, "not an AMOS image (expected amos_XXXX.nii.gz)",
                                  hint="move unrelated files out of the dataset folder")
                    continue
                number = int(match.group(1))
                if not type(self).takes(number):
                    others += 1
                    continue
                found += 1
                listed.pop(image.name, None)
                case = self._case(image, data / labels_dir, split, label_required,
                                  metadata.get(number))
                if case is not None:
                    yield case
            if others:
                yield Skipped(
                    folder, f"{others} scan(s) of the other modality in {images_dir} "
                    f"(read them with --dataset {self.other_id})",
                )
        for name, split in sorted(listed.items()):
            yield Skipped(
                data / name, f"listed in {DATASET_JSON} ({split}) but not on disk",
                case_id=name.removesuffix(".nii.gz"),
                hint="the download is incomplete; re-extract amos22.zip",
            )
        if found == 0:
            raise DiscoveryError(
                f"no {self.descriptor.modality} scans (amos_XXXX.nii.gz) found",
                dataset=self.dataset_id, file=data,
                hint=f"point --root at the extracted amos22 folder ({self.descriptor.expected_root})",
            )

    def _case(
        self, image: Path, labels: Path, split: str, label_required: bool,
        scan: dict[str, str] | None,
    ) -> Case | Skipped:
        case_id = image.name.removesuffix(".nii.gz")
        label_file = labels / image.name
        label: Path | None = label_file
        if not label_file.is_file():
            if label_required:
                return Skipped(
                    image, f"no label {labels.name}/{image.name}", case_id=case_id,
                    hint="re-extract amos22.zip (labels of Tr and Va are in the post-challenge "
                    "release, Zenodo 7262581)",
                )
            label = None
        return Case(
            case_id=case_id,
            patient_id=case_id,
            images=(image,),
            label=label,
            official_split=split,
            metadata={"scan": scan} if scan else {},
        )

    def _check_dataset_json(self, data: Path) -> dict[str, str]:
        """Check dataset.json's labels against the descriptor; return its image files of this
        modality (file name -> official split) so missing ones can be reported."""
        path = data / DATASET_JSON
        if not path.is_file():
            return {}
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DiscoveryError(f"cannot read {DATASET_JSON}: {exc}", dataset=self.dataset_id,
                                 file=path, hint="re-extract amos22.zip") from exc
        self._check_labels(doc.get("labels"), path)
        listed: dict[str, str] = {}
        for key, split in _JSON_LISTS.items():
            for entry in doc.get(key) or ():
                name = Path(entry["image"] if isinstance(entry, dict) else str(entry)).name
                match = CASE_FILE.match(name)
                if match and type(self).takes(int(match.group(1))):
                    listed[name] = split
        return listed

    def _check_labels(self, labels: Any, path: Path) -> None:
        if not isinstance(labels, dict):
            raise DiscoveryError(f"{DATASET_JSON} has no 'labels' mapping", dataset=self.dataset_id,
                                 file=path, hint="re-extract amos22.zip")
        if labels and all(isinstance(v, int) for v in labels.values()):  # nnU-Net v2 style
            labels = {v: k for k, v in labels.items()}
        try:
            release = {int(k): normalize_name(str(v)) for k, v in labels.items()}
        except ValueError as exc:
            raise DiscoveryError(f"{DATASET_JSON} labels have a non-integer value: {exc}",
                                 dataset=self.dataset_id, file=path) from exc
        expected = {k: normalize_name(v) for k, v in self.descriptor.values.items()}
        if release != expected:
            diff = sorted(
                f"{k}: {release.get(k)!r} (descriptor: {expected.get(k)!r})"
                for k in set(release) | set(expected) if release.get(k) != expected.get(k)
            )
            raise DiscoveryError(
                f"{DATASET_JSON} label names differ from the descriptor: {'; '.join(diff)}",
                dataset=self.dataset_id, file=path,
                hint="this is not the AMOS22 release the descriptor describes; "
                "update registry/datasets/" + self.dataset_id + ".yaml if the release changed",
            )

    def _scan_metadata(self, data: Path) -> dict[int, dict[str, str]]:
        """Rows of labeled_data_meta_0000_0599.csv (in or next to amos22/) by amos id."""
        for folder in (data, data.parent):
            path = folder / METADATA_CSV
            if not path.is_file():
                continue
            try:
                with open(path, newline="", encoding="utf-8-sig") as handle:
                    rows = list(csv.DictReader(handle))
                return {
                    int(row["amos_id"]): {k: v for k, v in row.items() if k and k != "amos_id" and v}
                    for row in rows if (row.get("amos_id") or "").strip()
                }
            except (OSError, UnicodeDecodeError, csv.Error, KeyError, ValueError) as exc:
                raise DiscoveryError(
                    f"cannot read the scan metadata table: {type(exc).__name__}: {exc}",
                    dataset=self.dataset_id, file=path,
                    hint="re-download it from Zenodo 7262581 or remove it (it only adds metadata)",
                ) from exc
        return {}

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.amos import make_amos

        return make_amos(root, n_ct=n_cases, n_mr=n_cases, seed=seed)


def _is_ct(number: int) -> bool:
    return number <= 500


def _is_mr(number: int) -> bool:
    return number > 500


class AMOSCT(AMOS):
    id = "amos-ct"
    takes: ClassVar[Callable[[int], bool]] = staticmethod(_is_ct)
    other_id = "amos-mr"


class AMOSMR(AMOS):
    id = "amos-mr"
    takes: ClassVar[Callable[[int], bool]] = staticmethod(_is_mr)
    other_id = "amos-ct"


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield AMOSCT()
    yield AMOSMR()
