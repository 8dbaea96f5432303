"""NSCLC-Radiomics (TCIA/IDC) through its DICOM-SEG series: one CT + one SEG per patient.

Why Python and not a YAML layout: which folder is the scan and which file is its segmentation
is in the headers, not in the names; :mod:`harmonize.plugins._dicom_seg_pairs` pairs each SEG
with the CT series it references. Layouts accepted under the root: ``nsclc_radiomics/LUNG1-XXX/...``
(IDC), ``NSCLC-Radiomics/LUNG1-XXX/...`` (NBIA, possibly inside ``manifest-*``), or the patient
folders directly. Case id = patient id (``LUNG1-001``). RTSTRUCT and other series are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmonize.plugins._dicom_seg_pairs import SegPairsDataset

from harmonize.plugin import DatasetPlugin, hookimpl


class NsclcRadiomicsSeg(SegPairsDataset):
    """NSCLC-Radiomics (Lung1): 422 CTs with lungs, heart, esophagus, cord and GTV as DICOM-SEG."""

    id = "nsclc-radiomics-seg"
    demo = False  # its fabricator needs highdicom (the dicom extra), not in the demo's install
    patient_pattern = re.compile(r"^LUNG1-\d{3}$")
    patient_text = "LUNG1-XXX"
    collection_folders = ("nsclc_radiomics", "NSCLC-Radiomics")

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.nsclc_seg import make_nsclc_seg

        return make_nsclc_seg(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield NsclcRadiomicsSeg()
