"""HCC-TACE-Seg (TCIA) through its DICOM-SEG series: multi-phase CT per study, one SEG per
patient on one of the phases (see :mod:`harmonize.plugins._dicom_seg_pairs` for the pairing;
the descriptor ``registry/datasets/hcc-tace-seg.yaml`` for classes and sources)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmonize.plugins._dicom_seg_pairs import SegPairsDataset

from harmonize.plugin import DatasetPlugin, hookimpl


class HccTaceSeg(SegPairsDataset):
    """HCC-TACE-Seg: liver, tumour mass, portal vein and abdominal aorta as DICOM-SEG."""

    id = "hcc-tace-seg"
    demo = False  # its fabricator needs highdicom (the dicom extra)
    patient_pattern = re.compile(r"^HCC_\d{3}$")
    patient_text = "HCC_XXX"
    collection_folders = ("hcc_tace_seg", "HCC-TACE-Seg")

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.extra_seg import make_hcc_tace_seg

        return make_hcc_tace_seg(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield HccTaceSeg()
