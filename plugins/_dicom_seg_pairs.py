"""Shared discovery for TCIA/IDC collections published as DICOM series + DICOM-SEG per patient.

Which folder is the scan and which file is its segmentation is in the headers, not in the
names (IDC: ``CT_<SeriesInstanceUID>``/``SEG_<SeriesInstanceUID>``; NBIA: ``<n>-<description>``
folders). :class:`SegPairsDataset` reads the first header of every series folder below a
patient folder and pairs each SEG with the CT series its ReferencedSeriesSequence names; other
series (further phases, RTSTRUCT) are ignored. The case's ``label`` is the SEG file and its
image the CT folder, so the core reading layer reads the SEG (:mod:`harmonize.read.dicom_seg`:
by code, then by label, overlaps kept). A subclass names its patient folders and collection
folders; case id = patient id (a patient with several SEG/CT pairs gets ``<patient>_2``...); a
patient without SEG, or a SEG whose CT series is missing, is skipped with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    is_hidden,
    read_dicom_header,
)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def first_header(folder: Path) -> tuple[Any, Path] | None:
    """The header and path of the first readable DICOM file in ``folder`` (not subfolders)."""
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not is_hidden(p)):
        header, _ = read_dicom_header(path)
        if header is not None:
            return header, path
    return None


class SegPairsDataset(DatasetPlugin):
    """A collection of patient folders, each with CT series and DICOM-SEG series."""

    #: a patient folder's name (``LUNG1-001``)
    patient_pattern: ClassVar[re.Pattern[str]]
    #: what a patient folder looks like, for messages (``LUNG1-XXX``)
    patient_text: ClassVar[str]
    #: the collection's folder names under the root (IDC's id, TCIA's name)
    collection_folders: ClassVar[tuple[str, ...]]

    def patients(self, root: Path) -> Path:
        """The folder holding the patient folders: the root, a collection folder in it, or
        one inside an NBIA ``manifest-*`` folder."""
        root = self.check_root(root)
        candidates = [root, *(root / name for name in self.collection_folders),
                      *(m / name for m in sorted(root.glob("manifest-*"))
                        for name in self.collection_folders)]
        for folder in candidates:
            if folder.is_dir() and any(self.patient_pattern.match(p.name)
                                       for p in folder.iterdir()):
                return folder
        raise DiscoveryError(f"no {self.patient_text} patient folders", dataset=self.dataset_id,
                             file=root, hint=f"point --root at {self.descriptor.expected_root}")

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        for patient in sorted(self.patients(root).iterdir()):
            if (is_hidden(patient) or not patient.is_dir()
                    or not self.patient_pattern.match(patient.name)):
                yield Skipped(patient, f"not a {self.patient_text} patient folder",
                              hint="move unrelated files out of the collection folder")
                continue
            yield from self._patient(patient)

    def _patient(self, patient: Path) -> Iterator[Case | Skipped]:
        cts: dict[str, Path] = {}
        segs: list[tuple[Path, str | None]] = []
        folders = sorted({p.parent for p in patient.rglob("*") if p.is_file()
                          and not is_hidden(p)})
        for folder in folders:
            found = first_header(folder)
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
