"""TCIA NSCLC-Radiomics (Lung1): one planning CT + one RT Structure Set per patient.

Released layout (NBIA Data Retriever, "Descriptive Directory Name")::

    NSCLC-Radiomics/LUNG1-001/09-18-2008-StudyID-NA-69331/0.000000-NA-82046/1-001.dcm ...
    NSCLC-Radiomics/LUNG1-001/09-18-2008-StudyID-NA-69331/3.000000-NA-78236/1-1.dcm   (RTSTRUCT)

The root may be ``NSCLC-Radiomics`` itself, hold it, or hold the NBIA ``manifest-*`` folder. Case
id = patient id = ``LUNG1-XXX``. The series folders' names do not tell the CT from the RTSTRUCT
(both ``<number>-NA-<n>``), so discovery reads one header per series folder: the case is the
RTSTRUCT and exactly the CT series it references (by Series Instance UID). Everything else there
(SEG objects of later versions, other series) is reported as skipped. The core reads the label
(:mod:`harmonize.read.rtstruct_label`); each case's ROI names and their mapping onto the classes
are added to the case's metadata (``rois``) by discovery, so records carry them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    HarmonizeError,
    Skipped,
    hookimpl,
    is_hidden,
    is_rtstruct,
    read_dicom_header,
    read_structure_set,
)

PATIENT = re.compile(r"^LUNG1-\d{3}$")
FOLDER = "NSCLC-Radiomics"


class NSCLCRadiomics(DatasetPlugin):
    """NSCLC-Radiomics: 422 CTs with RTSTRUCT GTV and organs at risk."""

    id = "nsclc-radiomics"
    demo = False

    def patients_folder(self, root: Path) -> Path:
        root = self.check_root(root)
        if root.name == FOLDER or any(PATIENT.match(p.name) for p in root.iterdir()):
            return root
        for base in (root, *sorted(p for p in root.glob("manifest-*") if p.is_dir())):
            if (base / FOLDER).is_dir():
                return base / FOLDER
        raise DiscoveryError(f"no {FOLDER}/LUNG1-XXX folders", dataset=self.dataset_id,
                             file=root, hint=f"point --root at {self.descriptor.expected_root}")

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        for entry in sorted(self.patients_folder(root).iterdir()):
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
            elif not entry.is_dir() or not PATIENT.match(entry.name):
                yield Skipped(entry, "not a LUNG1-XXX patient folder",
                              hint=f"move unrelated files out of {FOLDER}/")
            else:
                yield from self._patient(entry)

    def _patient(self, folder: Path) -> Iterator[Case | Skipped]:
        patient = folder.name
        images: dict[str, Path] = {}
        structures: list[Path] = []
        for series in sorted(p for p in folder.glob("*/*") if p.is_dir() and not is_hidden(p)):
            files = sorted(f for f in series.iterdir() if f.is_file() and not is_hidden(f))
            if not files:
                continue
            if is_rtstruct(files[0]):
                structures.append(files[0])
                continue
            header, reason = read_dicom_header(files[0])
            if header is not None and header.get("Modality") == "CT":
                images[str(header.SeriesInstanceUID)] = series
            else:
                what = header.get("Modality") if header is not None else reason
                yield Skipped(series, f"{what} series, not used (the cases are CT + RTSTRUCT)",
                              case_id=patient)
        if not structures:
            yield Skipped(folder, "no RTSTRUCT series", case_id=patient,
                          hint="download the patient's RTSTRUCT with the NBIA Data Retriever")
            return
        for extra in structures[1:]:
            yield Skipped(extra, f"second RTSTRUCT of the patient (using {structures[0].name} in "
                          f"{structures[0].parent.name})", case_id=patient)
        try:
            structure = read_structure_set(structures[0], contours=False)
        except HarmonizeError as exc:
            yield Skipped(structures[0], exc.message, case_id=patient, hint=exc.hint)
            return
        image = images.get(structure.series_uid or "")
        if image is None:
            yield Skipped(structures[0], f"the RTSTRUCT references CT series "
                          f"{structure.series_uid}, which is not under {patient}/",
                          case_id=patient, hint="download the patient's CT series")
            return
        for uid, other in images.items():
            if other != image:
                yield Skipped(other, f"CT series {uid} is not the one the RTSTRUCT references",
                              case_id=patient)
        yield Case(case_id=patient, patient_id=patient, images=(image,), label=structures[0],
                   metadata={"rtstruct": structures[0].relative_to(folder).as_posix()})

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.nsclc_radiomics import make_nsclc_radiomics

        return make_nsclc_radiomics(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield NSCLCRadiomics()
