"""CHAOS (Combined CT-MR Healthy Abdominal Organ Segmentation): DICOM series + PNG-stack labels.

Released layout (Zenodo 10.5281/zenodo.3431873, ``CHAOS_Train_Sets.zip`` / ``CHAOS_Test_Sets.zip``)::

    Train_Sets/CT/<n>/DICOM_anon/i0000,0000b.dcm ...      Train_Sets/CT/<n>/Ground/liver_GT_000.png ...
    Train_Sets/MR/<n>/T1DUAL/DICOM_anon/{InPhase,OutPhase}/*.dcm   T1DUAL/Ground/*.png
    Train_Sets/MR/<n>/T2SPIR/DICOM_anon/*.dcm                      T2SPIR/Ground/*.png
    Test_Sets/{CT,MR}/<n>/...   (no Ground: the official test set, unlabelled)

CT and MR are separate dataset ids (separate cohorts: CT ``1`` and MR ``1`` are different people).
A CT case is one patient (id ``<n>``); an MR patient gives three cases, ``<n>_t1dual_inphase``,
``<n>_t1dual_outphase`` and ``<n>_t2spir``, sharing the patient id ``<n>``; in- and opposed-phase
share T1DUAL's ``Ground`` (they are co-registered).

Where a Ground PNG goes (one PNG per slice; PNG pixel [row, column] = DICOM pixel [row, column]):

* CT: the k-th PNG in name order belongs to the k-th DICOM file in name order. This is the rule
  of the organisers' evaluation code (CHAOS-evaluation ``CHAOSmetrics.py``: "the orientation of
  the slices is determined by order of image names NOT by position tags"), checked on the real CT
  sample in that repository (78 slices, file names run from the top slice down): the liver mask
  then covers HU 141 +- 34; reversed it covers 36 +- 248.
* MR: the k-th PNG in name order belongs to the k-th slice in ascending position (the order
  dicom2nifti gives, used by nnU-Net's Task037/038 conversion, which ranked first on the CHAOS MR
  tasks; the CHAOS_GCN converter, sorting by SliceLocation, agrees). SAT-DS flips MR masks
  differently; it disagrees with both and is not followed.

MR grey values are mapped by ranges, lower bound exclusive as in nnU-Net and SAT-DS: liver
(55, 70] -> 1, right kidney (110, 135] -> 2, left kidney (175, 200] -> 3, spleen (240, 255] -> 4.
A non-zero value in no range is a :class:`~harmonize.errors.LabelError` naming the PNG (nnU-Net
silently zeroes it; here nothing is dropped silently). CT: any non-zero pixel is liver (1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
from harmonize.plugins._dicom import DicomSeries, DicomSlice, dicom_files, read_series

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    LabelError,
    Skipped,
    Volume,
    hookimpl,
    is_hidden,
)

SPLIT_FOLDERS = {"Train_Sets": "train", "Test_Sets": "test"}
PATIENT = re.compile(r"^\d+$")
#: MR Ground grey ranges (low exclusive, high inclusive) -> label value
MR_RANGES = ((55, 70, 1), (110, 135, 2), (175, 200, 3), (240, 255, 4))
MR_SERIES = (  # (case suffix, DICOM folder, Ground folder, metadata, channel name)
    ("t1dual_inphase", "T1DUAL/DICOM_anon/InPhase", "T1DUAL/Ground",
     {"sequence": "T1DUAL", "phase": "in"}, "T1DUAL in-phase"),
    ("t1dual_outphase", "T1DUAL/DICOM_anon/OutPhase", "T1DUAL/Ground",
     {"sequence": "T1DUAL", "phase": "opposed"}, "T1DUAL opposed-phase"),
    ("t2spir", "T2SPIR/DICOM_anon", "T2SPIR/Ground", {"sequence": "T2SPIR"}, "T2SPIR"),
)
DOWNLOAD_HINT = "re-extract CHAOS_Train_Sets.zip / CHAOS_Test_Sets.zip from Zenodo 3431873"


def read_png(path: Path) -> np.ndarray:
    """A PNG as a 2D integer array [row, column] (1-bit PNGs give 0/1)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            image: Image.Image = opened
            if image.mode in ("P", "PA", "LA"):  # palette or grey+alpha: keep the grey level
                image = image.convert("L")
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError) as exc:
        raise LabelError(f"cannot read PNG: {exc}", file=path, hint=DOWNLOAD_HINT) from exc
    if array.ndim == 3:  # grey stored as RGB(A): keep it only if the colour channels agree
        colour = array[..., :3]
        if not (np.all(colour == colour[..., :1])):
            raise LabelError("colour PNG where a grey-level label was expected", file=path,
                             hint=DOWNLOAD_HINT)
        array = colour[..., 0]
    return array.astype(np.int32) if array.dtype == bool else array


def map_mr_grey(grey: np.ndarray, path: Path) -> np.ndarray:
    """MR Ground grey values -> labels 0-4 by :data:`MR_RANGES`; other non-zero values raise."""
    out = np.zeros(grey.shape, dtype=np.uint8)
    for low, high, value in MR_RANGES:
        out[(grey > low) & (grey <= high)] = value
    stray = (grey != 0) & (out == 0)
    if stray.any():
        found = sorted(int(v) for v in np.unique(grey[stray]))
        raise LabelError(
            f"{int(stray.sum())} pixel(s) with grey value(s) {found[:10]} in no CHAOS MR range "
            "(liver 55-70, right kidney 110-135, left kidney 175-200, spleen 240-255)",
            file=path, hint="check the PNG is an unmodified CHAOS Ground file; " + DOWNLOAD_HINT,
        )
    return out


class CHAOS(DatasetPlugin):
    """CHAOS CT or MR; subclasses set the modality folder and the Ground slice order."""

    modality_folder: ClassVar[str] = ""
    #: "name": PNG k <-> k-th DICOM file by name; "position": k-th slice in ascending position
    ground_order: ClassVar[str] = "name"

    # discovery ------------------------------------------------------------------------------

    def split_folders(self, root: Path) -> list[tuple[str, Path]]:
        """``(official split, <Train|Test>_Sets/<CT|MR>)`` pairs found at ``root`` or one level
        below it (the zips may add a folder), or ``root`` itself when it is a ``*_Sets`` folder."""
        root = self.check_root(root)
        found: list[tuple[str, Path]] = []
        for base in (root, *sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p))):
            for name, split in SPLIT_FOLDERS.items():
                folder = base / name / self.modality_folder
                if base.name == name:
                    folder = base / self.modality_folder
                if folder.is_dir() and all(folder != f for _, f in found):
                    found.append((split, folder))
        if not found:
            raise DiscoveryError(
                f"no Train_Sets/{self.modality_folder} or Test_Sets/{self.modality_folder} folder",
                dataset=self.dataset_id, file=root,
                hint=f"point --root at the folder holding Train_Sets/ and Test_Sets/ "
                f"({self.descriptor.expected_root})",
            )
        return found

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        for split, folder in self.split_folders(root):
            for entry in sorted(folder.iterdir(), key=lambda p: (len(p.name), p.name)):
                if is_hidden(entry):
                    yield Skipped(entry, "hidden or AppleDouble file, not data")
                elif not entry.is_dir() or not PATIENT.match(entry.name):
                    yield Skipped(entry, "not a CHAOS patient folder (expected a number)",
                                  hint="move unrelated files out of the dataset folder")
                else:
                    yield from self.patient_cases(entry, split)

    def patient_cases(self, folder: Path, split: str) -> Iterator[Case | Skipped]:
        """The cases of one patient folder (one per DICOM series)."""
        raise NotImplementedError(f"{type(self).__name__} must say which series a patient has")

    def series_case(self, case_id: str, patient: str, dicom: Path, ground: Path, split: str,
                    metadata: dict, channel: str | None = None) -> Case | Skipped:
        """One series: ``dicom`` folder with ``.dcm`` files and its ``ground`` folder (required
        in Train_Sets; absent in Test_Sets = unlabelled official test); ``channel`` names its
        sequence (MR: each series is its own single-channel case)."""
        if not dicom.is_dir() or not dicom_files(dicom):
            return Skipped(dicom, "DICOM folder missing or without .dcm files", case_id=case_id,
                           hint=DOWNLOAD_HINT)
        label: Path | None = ground if ground.is_dir() else None
        if label is None and split == "train":
            return Skipped(ground, "Ground folder missing for a training series", case_id=case_id,
                           hint=DOWNLOAD_HINT)
        return Case(case_id=case_id, patient_id=patient, images=(dicom,), label=label,
                    official_split=split, annotated=None if label is not None else (),
                    channel_names=(channel,) if channel else None,
                    metadata={**metadata,
                              "split_folder": "Train_Sets" if split == "train" else "Test_Sets"})

    # labels ---------------------------------------------------------------------------------

    def read_label(self, case: Case) -> Volume | None:
        """The Ground PNG stack on the DICOM series' voxel grid (see the module docstring)."""
        if case.label is None:
            return None
        series = read_series(case.images[0])
        pngs = sorted(p for p in case.label.iterdir()
                      if p.is_file() and p.suffix.lower() == ".png" and not is_hidden(p))
        if len(pngs) != len(series.slices):
            raise LabelError(
                f"{len(pngs)} Ground PNG(s) in {case.label} for {len(series.slices)} DICOM "
                f"slice(s) in {case.images[0]}",
                dataset=self.dataset_id, case=case.case_id, file=case.label,
                hint="every slice needs one PNG; " + DOWNLOAD_HINT,
            )
        order = self.slice_order(series)
        planes = [(item, self.png_labels(path)) for item, path in zip(order, pngs)]
        try:
            return series.paste(planes, file=case.label)
        except LabelError as exc:
            raise LabelError(exc.message, dataset=self.dataset_id, case=case.case_id,
                             file=case.label, hint=exc.hint) from exc

    def slice_order(self, series: DicomSeries) -> list[DicomSlice]:
        return series.by_name() if self.ground_order == "name" else series.by_position()

    def png_labels(self, path: Path) -> np.ndarray:
        """Label values (0 = background) of one Ground PNG, [row, column]."""
        raise NotImplementedError(f"{type(self).__name__} must map its Ground PNG values")


class ChaosCT(CHAOS):
    """CHAOS CT: portal-venous CT, liver only; one case per patient."""

    id = "chaos-ct"
    modality_folder = "CT"
    ground_order = "name"
    demo = False

    def patient_cases(self, folder: Path, split: str) -> Iterator[Case | Skipped]:
        yield self.series_case(folder.name, folder.name, folder / "DICOM_anon", folder / "Ground",
                               split, {})

    def png_labels(self, path: Path) -> np.ndarray:
        return (read_png(path) != 0).astype(np.uint8)

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.chaos import make_chaos

        return make_chaos(root, modality="CT", n_cases=n_cases, seed=seed)


class ChaosMR(CHAOS):
    """CHAOS MR: T1-DUAL in/opposed phase and T2-SPIR; liver, kidneys, spleen."""

    id = "chaos-mr"
    modality_folder = "MR"
    ground_order = "position"
    demo = True

    def patient_cases(self, folder: Path, split: str) -> Iterator[Case | Skipped]:
        for suffix, dicom, ground, meta, channel in MR_SERIES:
            yield self.series_case(f"{folder.name}_{suffix}", folder.name, folder / dicom,
                                   folder / ground, split, dict(meta), channel)

    def png_labels(self, path: Path) -> np.ndarray:
        return map_mr_grey(read_png(path), path)

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.chaos import make_chaos

        return make_chaos(root, modality="MR", n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield ChaosCT()
    yield ChaosMR()
