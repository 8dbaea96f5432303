"""ToothFairy (MICCAI 2023 challenge, AImageLab, University of Modena and Reggio Emilia): CBCT
volumes with the inferior alveolar canal.

Released layout (as SAT-DS's processor.py ``preprocess_ToothFairy`` walks it)::

    ToothFairy_Dataset/splits.json               {"train": [...], "val": [...], "test": [...]}
    ToothFairy_Dataset/Dataset/P1/data.npy       CBCT volume, a bare NumPy array (no geometry)
    ToothFairy_Dataset/Dataset/P1/gt_sparse.npy  sparse annotation (2-D polylines), every case
    ToothFairy_Dataset/Dataset/P1/gt_alpha.npy   dense 3-D annotation, some cases only

As SAT-DS does: a case is a folder with ``gt_alpha.npy`` (SAT-DS lists 153), its label value 1 is
the inferior alveolar canal of both sides in one value (SAT-DS's name "inferior alveolar nerve",
its loader reads ``mask == 1``), case id = patient id = folder name, official split from
``splits.json`` (``val`` is our ``val``; SAT-DS writes "valid"). A folder without ``gt_alpha.npy``
(only the sparse annotation, not used) is reported as skipped with the reason, as is a case listed
in two splits and a ``splits.json`` name without a folder. Keys of ``splits.json`` other than
train/val/test are no official split and are ignored (the baseline below also reads a
``synthetic`` list, whose cases use a ``generated.npy`` not in this layout). Hidden and AppleDouble
files are skipped.

Geometry (the ``.npy`` files have none; each fact with its source, checked against no release file):

* **Axis order (slices, rows, columns).** The challenge's algorithm template
  (github.com/AImageLab-zip/ToothFairy, ``ToothFairy/algorithm_example/process.py``) reads its
  CBCT input with ``sitk.GetArrayFromImage``, i.e. as (z, y, x), and clips it to 0..2100 as the
  training arrays are clipped; the dataset paper's code (github.com/potpov/New-Maxillo-Dataset-
  Segmentation, ``utils.py``) turns ``data.npy`` into an image with ``sitk.GetImageFromArray``
  (axis 0 = z) and names the axes of ``gt_sparse.npy`` points ``Z, Y, X``; it separates the two
  canals by the last axis (``points[:, -1] < gt.shape[-1] // 2``), so columns run across the
  patient (left-right). The challenge baseline (github.com/AImageLab-zip/alveolar_canal,
  ``dataloader/ToothFairy.py``) gives the arrays an identity affine (``torch.eye(4)``); its
  example config's ``resize_shape`` is (168, 280, 360) and ``configs/preprocessing.yaml`` crops
  or pads to (168, 288, 384), the shortest axis first.
* **Spacing 0.3 mm, isotropic.** The dataset paper's code (``utils.py`` above,
  ``create_dataset``) resamples ``data.npy`` and ``gt_alpha.npy`` with ``resample(image,
  is_label=...)``, whose defaults are ``original_spacing=.3, out_spacing=.4``. That code was
  written for the release the paper describes (its README links ditto.ing.unimore.it/maxillo),
  which uses ToothFairy's file names (``data.npy``, ``gt_sparse.npy``, ``gt_alpha.npy``,
  ``splits.json``); that ToothFairy's volumes share its 0.3 mm is assumed from that. The paper
  itself (Cipriano et al., "Deep segmentation of the mandibular canal: a new 3D annotated dataset
  of CBCT volumes", IEEE Access 10:11500-11510, 2022, doi:10.1109/ACCESS.2022.3144840) was not
  available here (only its abstract): the value is its code's, not quoted from its text.
* **Directions: an assumption.** :data:`AFFINE` is what that code's ``sitk.GetImageFromArray`` +
  ``SetSpacing(0.3)`` means (ITK's identity direction in LPS: columns towards the patient's left,
  rows towards posterior, slices towards superior, origin 0), written in RAS: orientation code
  ``SPL``. No source states the anatomical direction of any axis; in particular whether slice 0
  is the lowest or the highest slice, and whether column 0 is the patient's right, are
  unverified. A flip would mirror the image and the mask together (they share the grid), so
  labels stay on their voxels; only the anatomical orientation could be wrong.
* **Grey values: CBCT, not Hounsfield units.** The paper's code (``DICOM_MIN = 0``,
  ``DICOM_MAX = 2100``; 3095 in a commented-out line), the baseline's
  ``configs/preprocessing.yaml`` (``Clamp`` 0..2100) and the algorithm template all clip the
  volumes to 0..2100 before scaling: non-negative scanner grey values. Their dtype is stated by
  no source (the reader takes any numeric dtype).
  The descriptor's modality is ``CBCT``: MR's intensity rule (percentile clip + z-score), never a
  CT window. SAT-DS files the dataset as "CT" (its export modality) and its loader clips it to
  -500..1000 like CT; its README table says "MRI".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harmonize.plugin import (
    SPLITS,
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    Volume,
    hookimpl,
    is_hidden,
    read_npy,
)

RELEASE, CASES, SPLIT_FILE = "ToothFairy_Dataset", "Dataset", "splits.json"
IMAGE, DENSE, SPARSE = "data.npy", "gt_alpha.npy", "gt_sparse.npy"
#: Voxel size in mm (module doc: the dataset paper's code).
SPACING_MM = 0.3
#: RAS affine of an array indexed (slice, row, column): slice -> superior, row -> posterior,
#: column -> patient's left, 0.3 mm apart, origin 0 (module doc: directions are an assumption).
AFFINE = np.array([[0.0, 0.0, -SPACING_MM, 0.0],
                   [0.0, -SPACING_MM, 0.0, 0.0],
                   [SPACING_MM, 0.0, 0.0, 0.0],
                   [0.0, 0.0, 0.0, 1.0]])


class ToothFairy(DatasetPlugin):
    """ToothFairy 2023: CBCT volumes, the dense inferior alveolar canal masks."""

    id = "toothfairy"
    demo = False

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        if (root / RELEASE).is_dir() and not (root / CASES).is_dir():
            root = root / RELEASE  # the folder the release archive extracts into
        folder, split_file = root / CASES, root / SPLIT_FILE
        if not folder.is_dir() or not split_file.is_file():
            raise DiscoveryError(f"no {CASES}/ folder and {SPLIT_FILE} next to it",
                                 dataset=self.dataset_id, file=root,
                                 hint=f"point --root at {self.descriptor.expected_root}")
        splits = self._splits(split_file)
        for entry in sorted(folder.iterdir()):
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
            elif not entry.is_dir():
                yield Skipped(entry, "not a patient folder")
            else:
                yield from self._patient(entry, splits.get(entry.name, []))
        for name in sorted(set(splits) - {p.name for p in folder.iterdir()}):
            yield Skipped(folder / name, f"listed in {SPLIT_FILE} ({', '.join(splits[name])}) "
                          "but no such folder", case_id=name,
                          hint="re-extract the release; the case's folder is missing")

    def _patient(self, entry: Path, splits: list[str]) -> Iterator[Case | Skipped]:
        for path in sorted(entry.iterdir()):
            if is_hidden(path):
                yield Skipped(path, "hidden or AppleDouble file, not data")
            elif path.name not in (IMAGE, DENSE, SPARSE):
                yield Skipped(path, f"not {IMAGE}, {DENSE} or {SPARSE}")
        name = entry.name
        if not (entry / IMAGE).is_file():
            yield Skipped(entry, f"no {IMAGE} (the CBCT volume)", case_id=name,
                          hint="re-extract the release; the case's volume is missing")
        elif not (entry / DENSE).is_file():
            what = (f"only the sparse annotation {SPARSE} (2-D polylines)"
                    if (entry / SPARSE).is_file() else "no annotation")
            yield Skipped(entry, f"{what}, no dense {DENSE}: only densely annotated cases are "
                          "used (as SAT-DS does)", case_id=name)
        elif len(splits) > 1:
            yield Skipped(entry, f"listed in {len(splits)} splits of {SPLIT_FILE} "
                          f"({', '.join(splits)})", case_id=name,
                          hint=f"fix {SPLIT_FILE}: a case belongs to one split")
        else:
            yield Case(case_id=name, patient_id=name, images=(entry / IMAGE,),
                       label=entry / DENSE, official_split=splits[0] if splits else None)

    def _splits(self, path: Path) -> dict[str, list[str]]:
        """Case -> the official splits (train/val/test) ``splits.json`` lists it in; other keys
        of the file (if any) are not official splits and are ignored."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DiscoveryError(f"cannot read {SPLIT_FILE}: {exc}", dataset=self.dataset_id,
                                 file=path, hint="re-extract the release") from None
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(n, str) for n in v)
                for k, v in data.items() if k in SPLITS):
            raise DiscoveryError(f"{SPLIT_FILE} is not a mapping of split names to lists of "
                                 "case folders", dataset=self.dataset_id, file=path,
                                 hint="re-extract the release")
        listed: dict[str, list[str]] = {}
        for split in SPLITS:
            for name in data.get(split, []):
                listed.setdefault(name, []).append(split)
        return listed

    def read_image(self, case: Case) -> Volume:
        """``data.npy`` on :data:`AFFINE` (module doc)."""
        return Volume(read_npy(case.images[0], "image"), AFFINE.copy(), "image")

    def read_label(self, case: Case) -> Volume | None:
        """``gt_alpha.npy`` on the image's grid (:data:`AFFINE`)."""
        if case.label is None:
            return None
        return Volume(read_npy(case.label, "label"), AFFINE.copy(), "label")

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.toothfairy import make_toothfairy

        return make_toothfairy(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield ToothFairy()
