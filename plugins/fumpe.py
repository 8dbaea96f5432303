"""FUMPE (Ferdowsi University of Mashhad's PE dataset): CT angiography with pulmonary emboli.

Released layout (Kaggle "pulmonary-embolism-in-ct-images", as SAT-DS's processor.py
``preprocess_FUMPE`` reads it)::

    CT_scans/PAT001/*.dcm            one DICOM series per patient
    GroundTruth/PAT001.mat           MATLAB file, variable ``Mask`` (rows, columns, slices)

Case id = patient id = ``PATxxx``; no official split. The ``.mat`` file has no geometry. SAT-DS
converts the series with dicom2nifti (whose output is reoriented to LAS: columns, rows reversed,
slices inferior to superior) and gives ``np.rot90(Mask, -1, axes=(0, 1))`` that affine; undoing
the rotation, ``Mask[r, c, k]`` is the DICOM pixel (row ``r``, column ``c``) of the ``k``-th slice
in ascending position along the slice normal. ``read_label`` pastes it so
(:meth:`DicomSeries.paste`); value 1 is the embolism (SAT-DS's loader: ``mask == 1``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from harmonize.plugins._dicom import read_series

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    LabelError,
    Skipped,
    Volume,
    hookimpl,
    is_hidden,
    read_mat_label,
)

PATIENT = re.compile(r"^PAT\d{3}$")
IMAGES, LABELS, VARIABLE = "CT_scans", "GroundTruth", "Mask"


class FUMPE(DatasetPlugin):
    """FUMPE: 35 CT angiography scans with pulmonary embolism masks."""

    id = "fumpe"
    demo = False

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        if not (root / IMAGES).is_dir() or not (root / LABELS).is_dir():
            raise DiscoveryError(f"no {IMAGES}/ and {LABELS}/ folders", dataset=self.dataset_id,
                                 file=root, hint=f"point --root at {self.descriptor.expected_root}")
        for entry in sorted((root / IMAGES).iterdir()):
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
            elif not entry.is_dir() or not PATIENT.match(entry.name):
                yield Skipped(entry, "not a PATxxx patient folder")
            elif not (root / LABELS / f"{entry.name}.mat").is_file():
                yield Skipped(entry, f"no {LABELS}/{entry.name}.mat", case_id=entry.name,
                              hint="re-extract the release; a case needs its mask")
            else:
                yield Case(case_id=entry.name, patient_id=entry.name, images=(entry,),
                           label=root / LABELS / f"{entry.name}.mat")
        for extra in sorted((root / LABELS).iterdir()):
            if not (extra.suffix == ".mat" and (root / IMAGES / extra.stem).is_dir()):
                yield Skipped(extra, "not the mask of a CT_scans/PATxxx folder (SAT-DS's "
                              ".nii.gz conversions and other files are not used)")

    def read_label(self, case: Case) -> Volume | None:
        """``Mask`` pasted on the series (module doc)."""
        if case.label is None:
            return None
        series = read_series(case.images[0])
        planes = series.by_position()
        mask = read_mat_label(case.label, VARIABLE)
        first = series.slices[0]
        expected = (first.rows, first.columns, len(planes))
        if mask.shape != expected:
            raise LabelError(
                f"Mask shape {list(mask.shape)} is not the series' (rows, columns, slices) "
                f"{list(expected)}", dataset=self.dataset_id, case=case.case_id,
                file=case.label, hint="the mask belongs to another series or slices are missing")
        return series.paste(((item, mask[:, :, k]) for k, item in enumerate(planes)),
                            dtype=mask.dtype.type, file=case.label)

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.sat_nsclc_fumpe import make_fumpe

        return make_fumpe(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield FUMPE()
