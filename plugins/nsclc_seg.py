"""NSCLC-Radiomics (TCIA/IDC) through its DICOM-SEG series: one CT + one SEG per patient.

Why Python and not a YAML layout: the CT and SEG series folders are named by UIDs
(``CT_<SeriesInstanceUID>``, ``SEG_<SeriesInstanceUID>`` in IDC's default download layout;
``<n>-<description>`` folders in TCIA's NBIA download), so which folder is the scan and which
file is its segmentation is in the headers, not in the names. Discovery reads the first header
of every series folder below a patient folder and pairs each SEG with the CT series its
ReferencedSeriesSequence names. Everything else is the core's: the case's ``label`` is the SEG
file and its image the CT folder, so the core reading layer reads the SEG
(:mod:`harmonize.read.dicom_seg`: by code, then by label, overlaps kept); this plugin does not
override ``read_label``.

Layouts accepted under the root: ``nsclc_radiomics/LUNG1-XXX/...`` (IDC),
``NSCLC-Radiomics/LUNG1-XXX/...`` (NBIA, possibly inside ``manifest-*``), or the patient
folders directly. Case id = patient id (``LUNG1-001``); a patient with several SEG/CT pairs
gets ``LUNG1-001_2``...; a patient without SEG, or a SEG whose CT series is missing, is skipped
with the reason. RTSTRUCT and other series are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    hookimpl,
    is_hidden,
    read_dicom_header,
)

PATIENT = re.compile(r"^LUNG1-\d{3}$")
COLLECTION_FOLDERS = ("nsclc_radiomics", "NSCLC-Radiomics")
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _first_header(folder: Path) -> Any | None:
    """The header of the first readable DICOM file in ``folder`` (not its subfolders)."""
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not is_hidden(p)):
        header, _ = read_dicom_header(path)
        if header is not None:
            return header, path
    return None


class NsclcRadiomicsSeg(DatasetPlugin):
    """NSCLC-Radiomics (Lung1): 422 CTs with lungs, heart, esophagus, cord and GTV as DICOM-SEG."""

    id = "nsclc-radiomics-seg"
    demo = False  # its fabricator needs highdicom (the dicom extra), not in the demo's install

    def patients(self, root: Path) -> Path:
        """The folder holding the ``LUNG1-XXX`` patient folders."""
        root = self.check_root(root)
        candidates = [root, *(root / name for name in COLLECTION_FOLDERS),
                      *(m / name for m in sorted(root.glob("manifest-*"))
                        for name in COLLECTION_FOLDERS)]
        for folder in candidates:
            if folder.is_dir() and any(PATIENT.match(p.name) for p in folder.iterdir()):
                return folder
        raise DiscoveryError("no LUNG1-XXX patient folders", dataset=self.dataset_id, file=root,
                             hint=f"point --root at {self.descriptor.expected_root}")

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        for patient in sorted(self.patients(root).iterdir()):
            if is_hidden(patient) or not patient.is_dir() or not PATIENT.match(patient.name):
                yield Skipped(patient, "not a LUNG1-XXX patient folder",
                              hint="move unrelated files out of the collection folder")
                continue
            yield from self._patient(patient)

    def _patient(self, patient: Path) -> Iterator[Case | Skipped]:
        cts: dict[str, Path] = {}
        segs: list[tuple[Path, str | None]] = []
        folders = sorted({p.parent for p in patient.rglob("*") if p.is_file()
                          and not is_hidden(p)})
        for folder in folders:
            found = _first_header(folder)
            if found is None:
                continue
            header, path = found
            if str(header.get("SOPClassUID", "")) == SEG_SOP_CLASS:
                refs = header.get("ReferencedSeriesSequence") or []
                segs.append((path, str(refs[0].SeriesInstanceUID) if refs else None))
            elif str(header.get("Modality", "")) == "CT":
                cts[str(header.get("SeriesInstanceUID", ""))] = folder
        if not segs:
            yield Skipped(patient, "no DICOM-SEG series for this patient", case_id=patient.name,
                          hint="download the patient's SEG series (Modality SEG) too")
            return
        for n, (seg, ref) in enumerate(segs, start=1):
            case_id = patient.name if n == 1 else f"{patient.name}_{n}"
            if ref is None or ref not in cts:
                yield Skipped(seg, f"the CT series it segments ({ref or 'not named'}) is not "
                              "in the patient folder", case_id=case_id,
                              hint="download the CT series the SEG references")
                continue
            yield Case(case_id=case_id, patient_id=patient.name, images=(cts[ref],), label=seg,
                       metadata={"ct_series": ref})

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.nsclc_seg import make_nsclc_seg

        return make_nsclc_seg(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield NsclcRadiomicsSeg()
