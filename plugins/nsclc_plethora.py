"""TCIA PleThora: thoracic cavity and pleural effusion NIfTI masks on NSCLC-Radiomics CT series.

Released layout (SAT-DS processor.py ``preprocess_NSCLC``: the PleThora zip extracted next to the
NSCLC-Radiomics NBIA download)::

    Thoracic_Cavities/LUNG1-001/LUNG1-001_thor_cav_primary_reviewer.nii.gz
    Effusions/LUNG1-001/LUNG1-001_effusion_first_reviewer.nii.gz      (78 patients)
    Effusions/LUNG1-001/LUNG1-001_effusion_second_reviewer.nii.gz     (not used)
    manifest-*/NSCLC-Radiomics/LUNG1-001/<study>/<series>/1-001.dcm ...  (or NSCLC-Radiomics/)

Case id = patient id = ``LUNG1-XXX``; a case is a patient with a thoracic cavity mask and exactly
one CT series (other series, e.g. RTSTRUCT/SEG, are reported as skipped). A patient without an
effusion file has the effusion not annotated (SAT-DS drops those patients; here they are kept
with the thoracic cavity only). The second effusion reviewer is not used (SAT-DS uses the first).

Orientation: TCIA's note says the masks "use the RPI orientation, but the original DICOM files
are oriented using the RAI convention" and recommends dcm2niix-converted CT; SAT-DS puts the mask
arrays, as stored, on dcm2niix's image affine. So the mask's voxel ``(i, j, k)`` is the DICOM
pixel (column ``i``, row ``rows - 1 - j``) of the ``k``-th slice in ascending position along the
slice normal (dcm2niix's order: inferior to superior for axial scans). ``read_label`` places it on
the series by that rule (:meth:`DicomSeries.paste`); the mask's header affine is not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from harmonize.plugins._dicom import read_series

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    LabelError,
    Skipped,
    Volume,
    combine_structures,
    hookimpl,
    is_hidden,
    read_dicom_header,
    read_volume,
)

PATIENT = re.compile(r"^LUNG1-\d{3}$")
CT_FOLDER = "NSCLC-Radiomics"
CAVITY = ("Thoracic_Cavities", "{p}_thor_cav_primary_reviewer.nii.gz", "thoracic cavity")
EFFUSION = ("Effusions", "{p}_effusion_first_reviewer.nii.gz", "pleural effusion")
STRUCTURES = [CAVITY[2], EFFUSION[2]]


class NSCLCPleThora(DatasetPlugin):
    """PleThora: 402 thoracic cavities and 78 pleural effusions on NSCLC-Radiomics CT."""

    id = "nsclc-plethora"
    demo = False

    def ct_folder(self, root: Path) -> Path:
        """``NSCLC-Radiomics`` under ``root`` or under its NBIA ``manifest-*`` folder."""
        for base in (root, *sorted(p for p in root.glob("manifest-*") if p.is_dir())):
            if (base / CT_FOLDER).is_dir():
                return base / CT_FOLDER
        raise DiscoveryError(f"no {CT_FOLDER} folder (NBIA download) next to the masks",
                             dataset=self.dataset_id, file=root,
                             hint=f"point --root at {self.descriptor.expected_root}")

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        cavities = root / CAVITY[0]
        if not cavities.is_dir():
            raise DiscoveryError(f"no {CAVITY[0]} folder", dataset=self.dataset_id, file=root,
                                 hint=f"extract the PleThora zip into {root}")
        ct = self.ct_folder(root)
        for entry in sorted(cavities.iterdir()):
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
            elif not entry.is_dir() or not PATIENT.match(entry.name):
                yield Skipped(entry, "not a LUNG1-XXX patient folder")
            else:
                yield from self._patient(root, ct, entry.name)

    def _patient(self, root: Path, ct: Path, patient: str) -> Iterator[Case | Skipped]:
        cavity = root / CAVITY[0] / patient / CAVITY[1].format(p=patient)
        if not cavity.is_file():
            yield Skipped(cavity.parent, f"no {cavity.name}", case_id=patient)
            return
        if not (ct / patient).is_dir():
            yield Skipped(cavity, f"no CT folder {CT_FOLDER}/{patient}", case_id=patient,
                          hint="download the patient's CT with the NBIA Data Retriever")
            return
        series: list[Path] = []
        for folder in sorted(p for p in (ct / patient).glob("*/*") if p.is_dir()):
            files = sorted(f for f in folder.iterdir() if f.is_file() and not is_hidden(f))
            header = read_dicom_header(files[0])[0] if files else None
            if header is not None and header.get("Modality") == "CT":
                series.append(folder)
            else:
                what = header.get("Modality") if header is not None else "no DICOM"
                yield Skipped(folder, f"{what} series, not used (the masks are on the CT)",
                              case_id=patient)
        if len(series) != 1:
            yield Skipped(ct / patient, f"{len(series)} CT series, expected one",
                          case_id=patient, hint="keep only the planning CT series")
            return
        effusion = root / EFFUSION[0] / patient / EFFUSION[1].format(p=patient)
        yield Case(case_id=patient, patient_id=patient, images=(series[0],),
                   label=cavity.parent,
                   annotated=(CAVITY[2], EFFUSION[2]) if effusion.is_file() else (CAVITY[2],),
                   metadata={"effusion_annotated": effusion.is_file()})

    def read_label(self, case: Case) -> Volume | None:
        """Both masks pasted on the CT series (module doc), overlaps kept."""
        if case.label is None:
            return None
        root = case.label.parent.parent
        series = read_series(case.images[0])
        planes = series.by_position()
        masks: dict[str, np.ndarray] = {}
        for folder, template, name in (CAVITY, EFFUSION):
            path = root / folder / case.case_id / template.format(p=case.case_id)
            if not path.is_file():
                continue
            data = np.asarray(read_volume(path, kind="label", allow_channels=False).data)
            rows = series.slices[0].rows
            expected = (series.slices[0].columns, rows, len(planes))
            if data.shape != expected:
                raise LabelError(
                    f"{name} mask shape {list(data.shape)} is not the series' (columns, rows, "
                    f"slices) {list(expected)}", dataset=self.dataset_id, case=case.case_id,
                    file=path, hint="the mask belongs to another series or slices are missing")
            pasted = series.paste(((item, data[:, ::-1, k].T != 0)
                                   for k, item in enumerate(planes)), file=path)
            masks[name] = np.asarray(pasted.data) != 0
        return combine_structures(STRUCTURES, masks, series.affine)

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.sat_nsclc import make_plethora

        return make_plethora(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield NSCLCPleThora()
