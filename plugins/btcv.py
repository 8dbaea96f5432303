"""BTCV "Multi-Atlas Labeling Beyond the Cranial Vault" abdomen: ``img0001.nii.gz`` / ``label0001.nii.gz``.

Released layout (Synapse syn3193805, ``Abdomen/RawData.zip``; DATASETS.md section 7; SAT-DS
``preprocess_BTCV`` and nnU-Net v1 ``Task017_BeyondCranialVaultAbdominalOrganSegmentation.py``)::

    RawData/Training/img/img0001.nii.gz      RawData/Training/label/label0001.nii.gz
    RawData/Testing/img/img0061.nii.gz       (nnU-Net's copy calls the folder Test/img; no labels)

The root may be any folder above ``Training``/``Testing`` (``Abdomen``, ``RawData``, a doubled
``RawData/RawData`` from the zip): the plugin searches below it for ``<split>/img`` folders and
pairs ``img`` with ``label`` in both the folder and the file name. Testing images go to the
official test split with no label; a ``label`` folder next to them (third-party test labels,
e.g. from CLIP-Driven-Universal-Model) is not official and is reported, not used.

Patient id = the 4-digit number (``img0001`` -> ``0001``); case id = the image's file stem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    hookimpl,
    walk_files,
)

IMAGE = re.compile(r"^img(\d{4})\.nii\.gz$")
LABEL = re.compile(r"^label(\d{4})\.nii\.gz$")
TRAIN_FOLDERS = ("Training",)
TEST_FOLDERS = ("Testing", "Test")


class BTCV(DatasetPlugin):
    """BTCV abdomen: 30 labelled training CTs, 20 unlabelled test CTs, 13 organs."""

    id = "btcv"
    demo = False

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        images: list[tuple[Path, str, bool]] = []
        labels: dict[Path, Path] = {}
        for item in walk_files(root):
            if isinstance(item, Skipped):
                yield item
                continue
            role = self._role(item)
            if role == "image":
                number = IMAGE.match(item.name).group(1)  # type: ignore[union-attr]
                images.append((item, number, item.parent.parent.name in TEST_FOLDERS))
            elif role == "label":
                labels[item] = item
            else:
                yield Skipped(
                    item,
                    "not a BTCV file (expected <Training|Testing>/img/imgNNNN.nii.gz or "
                    "Training/label/labelNNNN.nii.gz)",
                    hint="move unrelated files out of the dataset folder",
                )
        if not images:
            raise DiscoveryError(
                "no Training/img/imgNNNN.nii.gz or Testing/img/imgNNNN.nii.gz found below the root",
                dataset=self.dataset_id,
                file=root,
                hint=f"extract Abdomen/RawData.zip and point at it ({self.descriptor.expected_root})",
            )
        for image, number, is_test in images:
            case_id = f"img{number}"
            label = image.parent.parent / "label" / f"label{number}.nii.gz"
            if is_test:
                yield Case(case_id=case_id, patient_id=number, images=(image,), label=None,
                           official_split="test")
                continue
            if labels.pop(label, None) is None:
                yield Skipped(
                    image, f"label/label{number}.nii.gz is missing", case_id=case_id,
                    hint="re-extract RawData.zip (every training image ships with its label)",
                )
                continue
            yield Case(case_id=case_id, patient_id=number, images=(image,), label=label,
                       official_split="train")
        for label in sorted(labels):
            number = LABEL.match(label.name).group(1)  # type: ignore[union-attr]
            official = label.parent.parent.name in TRAIN_FOLDERS
            yield Skipped(
                label,
                f"no img/img{number}.nii.gz pairs with this label" if official
                else "test labels are not part of the official release; not used",
                case_id=f"img{number}",
                hint="re-extract RawData.zip" if official else None,
            )

    @staticmethod
    def _role(path: Path) -> str | None:
        """``image``, ``label`` or ``None`` from the file name and its two parent folders."""
        split = path.parent.parent.name
        if path.parent.name == "img" and split in TRAIN_FOLDERS + TEST_FOLDERS:
            return "image" if IMAGE.match(path.name) else None
        if path.parent.name == "label" and split in TRAIN_FOLDERS + TEST_FOLDERS:
            return "label" if LABEL.match(path.name) else None
        return None

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.btcv import make_btcv

        return make_btcv(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield BTCV()
