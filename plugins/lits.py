"""LiTS (Liver Tumor Segmentation Challenge, ISBI/MICCAI 2017): uncompressed ``volume-N.nii`` files.

Released layout (CodaLab competition 17094; DATASETS.md section 5; nnU-Net v1
``Task029_LiverTumorSegmentationChallenge.py`` reads the same names)::

    Training Batch 1/volume-0.nii, segmentation-0.nii ... volume-27.nii      (Training_Batch1.zip)
    Training Batch 2/volume-28.nii, segmentation-28.nii ... volume-130.nii   (Training_Batch2.zip)
    <test folder>/test-volume-0.nii ... test-volume-69.nii                    (no labels)

Numbers are not zero-padded and the files are not gzipped. How the zips end up on disk varies
(two batch folders, one merged folder such as ``LITS-Challenge-Train-Data``, extra parent folders
from the zip paths), so the plugin searches every folder below the root and pairs
``volume-N`` with ``segmentation-N`` by number (same folder first). A gzipped copy
(``volume-N.nii.gz``) is accepted too.

Case id = patient id = the file stem (``volume-7``, ``test-volume-7``): the 70 test volumes come
from other patients than the 131 training volumes, so the bare number ``N`` would not be unique.
One scan per patient is assumed (not documented by the challenge). Test volumes go to the official
test split with no label.
"""

from __future__ import annotations

import re
from collections import defaultdict
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

VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
SEGMENTATION = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$")
TEST_VOLUME = re.compile(r"^test-volume-(\d+)\.nii(\.gz)?$")


class LiTS(DatasetPlugin):
    """LiTS training volumes (labelled) and test volumes (official test, unlabelled)."""

    id = "lits"
    demo = False

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        volumes: list[tuple[int, Path]] = []
        tests: list[tuple[int, Path]] = []
        segmentations: dict[int, list[Path]] = defaultdict(list)
        for item in walk_files(root):
            if isinstance(item, Skipped):
                yield item
                continue
            if match := VOLUME.match(item.name):
                volumes.append((int(match.group(1)), item))
            elif match := SEGMENTATION.match(item.name):
                segmentations[int(match.group(1))].append(item)
            elif match := TEST_VOLUME.match(item.name):
                tests.append((int(match.group(1)), item))
            else:
                yield Skipped(
                    item,
                    "not a LiTS file (expected volume-N.nii, segmentation-N.nii or test-volume-N.nii)",
                    hint="move unrelated files out of the dataset folder",
                )
        if not (volumes or tests):
            raise DiscoveryError(
                "no volume-N.nii or test-volume-N.nii files found below the root",
                dataset=self.dataset_id,
                file=root,
                hint=f"extract the LiTS zips into one folder ({self.descriptor.expected_root})",
            )
        used: set[Path] = set()
        for number, image in volumes:
            label = self._pick_label(image, segmentations.get(number, []))
            if isinstance(label, Skipped):
                yield label
                continue
            used.add(label)
            yield Case(case_id=f"volume-{number}", patient_id=f"volume-{number}",
                       images=(image,), label=label)
        for number, image in tests:
            yield Case(case_id=f"test-volume-{number}", patient_id=f"test-volume-{number}",
                       images=(image,), label=None, official_split="test")
        for number, paths in sorted(segmentations.items()):
            for path in paths:
                if path not in used:
                    yield Skipped(
                        path, f"no volume-{number}.nii pairs with this segmentation",
                        case_id=f"volume-{number}",
                        hint="re-extract the training zip; a label without its volume is not used",
                    )

    @staticmethod
    def _pick_label(image: Path, candidates: list[Path]) -> Path | Skipped:
        """The segmentation of ``image``: the one in the same folder, else the only one found."""
        number = VOLUME.match(image.name).group(1)  # type: ignore[union-attr]
        case_id = f"volume-{int(number)}"
        same_folder = [p for p in candidates if p.parent == image.parent]
        if len(same_folder) == 1:
            return same_folder[0]
        if not same_folder and len(candidates) == 1:
            return candidates[0]
        if not candidates:
            return Skipped(
                image, f"segmentation-{int(number)}.nii is missing", case_id=case_id,
                hint="re-extract the training zip (each volume ships with its segmentation)",
            )
        return Skipped(
            image,
            f"{len(candidates)} segmentation-{int(number)} files found "
            f"({', '.join(p.parent.name for p in candidates)}) and none is unambiguous",
            case_id=case_id, hint="keep one copy of the training data below the root",
        )

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.lits import make_lits

        return make_lits(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield LiTS()
