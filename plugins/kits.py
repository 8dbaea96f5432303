"""KiTS19, KiTS21 and KiTS23: ``case_XXXXX/imaging.nii.gz`` with one label map per case.

Released layouts (see registry/datasets/kits*.yaml and DATASETS.md section 1)::

    kits23/dataset/kits23.json, case_00000/{imaging,segmentation}.nii.gz, case_00000/instances/
    kits21/kits21/data/case_00000/{imaging,aggregated_MAJ_seg}.nii.gz (+ _AND_, _OR_, raw/)
    kits19/data/case_00000/{imaging,segmentation}.nii.gz; test cases 210-299 have no segmentation

The root may be the repository clone or its data folder. One image per patient: the case folder
name is the patient id. Arrays are stored (slices, H, W) with an affine mapping axis 0 to z; the
core reorients to RAS, so the plugin does nothing about it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    hookimpl,
    is_hidden,
)

CASE_FOLDER = re.compile(r"^case_(\d{5})$")


class KiTS(DatasetPlugin):
    """One KiTS release; subclasses set the file names and data folders of their release."""

    label_file = "segmentation.nii.gz"
    data_folders: tuple[str, ...] = ()
    clinical_file: str | None = None
    #: case numbers released without labels (the official test set), if any
    unlabelled_test: range = range(0)
    download_hint = "download the imaging with the release's download script"

    def data_root(self, root: Path) -> Path:
        """The folder holding the case folders: ``root`` itself or a known data folder in it."""
        root = self.check_root(root)
        if any(CASE_FOLDER.match(p.name) for p in root.iterdir()):
            return root
        for folder in self.data_folders:
            if (root / folder).is_dir():
                return root / folder
        return root

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        data = self.data_root(root)
        clinical = self._clinical(data)
        found = 0
        for entry in sorted(data.iterdir()):
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
                continue
            if self.clinical_file and entry.name == self.clinical_file:
                continue  # read above, attached to each case's metadata
            match = CASE_FOLDER.match(entry.name)
            if not entry.is_dir() or match is None:
                yield Skipped(
                    entry,
                    "not a case folder (expected case_XXXXX with five digits)",
                    hint="move unrelated files out of the dataset folder",
                )
                continue
            found += 1
            case = self._case(entry, int(match.group(1)), clinical.get(entry.name))
            if case is not None:
                yield case
        if found == 0:
            raise DiscoveryError(
                "no case_XXXXX folders found",
                dataset=self.dataset_id,
                file=data,
                hint=f"point --root at the folder laid out as {self.descriptor.expected_root}",
            )

    def _case(self, folder: Path, number: int, clinical: dict | None) -> Case | Skipped:
        image = folder / "imaging.nii.gz"
        label: Path | None = folder / self.label_file
        if not image.is_file():
            return Skipped(
                folder, "imaging.nii.gz is missing (images are downloaded separately)",
                case_id=folder.name, hint=self.download_hint,
            )
        official = None
        if label is not None and not label.is_file():
            if number in self.unlabelled_test:
                label, official = None, "test"
            else:
                return Skipped(
                    folder, f"{self.label_file} is missing", case_id=folder.name,
                    hint="restore the segmentation from the release (git checkout) or remove the folder",
                )
        metadata = {"clinical": {k: v for k, v in clinical.items() if k != "case_id"}} if clinical else {}
        return Case(
            case_id=folder.name,
            patient_id=folder.name,
            images=(image,),
            label=label,
            official_split=official,
            metadata=metadata,
        )

    def _clinical(self, data: Path) -> dict[str, dict]:
        if not self.clinical_file:
            return {}
        path = data / self.clinical_file
        if not path.is_file():
            return {}
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DiscoveryError(
                f"cannot read clinical metadata: {exc}", dataset=self.dataset_id, file=path,
                hint="restore the file from the release (git checkout)",
            ) from exc
        return {row["case_id"]: row for row in rows if isinstance(row, dict) and "case_id" in row}

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.kits import make_kits

        return make_kits(root, release=self.id, n_cases=n_cases, seed=seed)


class KiTS23(KiTS):
    id = "kits23"
    data_folders = ("dataset",)
    clinical_file = "kits23.json"
    download_hint = "run `kits23_download_data` in the kits23 clone"


class KiTS21(KiTS):
    id = "kits21"
    label_file = "aggregated_MAJ_seg.nii.gz"
    data_folders = ("kits21/data", "data")
    clinical_file = "kits.json"
    download_hint = "run `python kits21/data/get_imaging.py` in the kits21 clone"
    demo = False


class KiTS19(KiTS):
    id = "kits19"
    data_folders = ("data",)
    clinical_file = "kits.json"
    unlabelled_test = range(210, 300)
    download_hint = "run `python -m starter_code.get_imaging` in the kits19 clone"
    demo = False


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield KiTS23()
    yield KiTS21()
    yield KiTS19()
