"""TotalSegmentator v2 (CT): one binary NIfTI per structure, combined into one label map.

Released layout (Zenodo 10047292, ``Totalsegmentator_dataset_v201.zip``; see DATASETS.md section 11)::

    Totalsegmentator_dataset_v201/
      meta.csv                           ';'-separated, UTF-8 with BOM: image_id;age;gender;...;split;...
      s0000/ct.nii.gz
      s0000/segmentations/spleen.nii.gz  kidney_right.nii.gz ... costal_cartilages.nii.gz  (117 files)

The structure names and their label values are the descriptor's ``values`` (1..117 in the order of
``class_map["total"]`` in ``totalsegmentator/map_to_binary.py``). :meth:`TotalSegmentator.read_label`
paints the binary files into one uint8 map in value order, so where two structures overlap the
later one wins, exactly as the official ``resources/convert_dataset_to_nnunet.py`` does
(``combined[mask > 0] = idx + 1`` in class-map order). A missing file is an empty structure (the
converter does the same) and is listed in the case's metadata. One scan per subject id: the subject
folder name (``s0000``) is both case and patient id. The official split comes from ``meta.csv``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from harmonize.plugin import (
    SPLITS,
    Case,
    DatasetPlugin,
    DiscoveryError,
    LabelError,
    ReadError,
    Skipped,
    Volume,
    hookimpl,
    is_hidden,
    strip_nifti_suffix,
)

SUBJECT = re.compile(r"^s\d{4}$")
META_FILE = "meta.csv"
IMAGE_FILE = "ct.nii.gz"
SEG_FOLDER = "segmentations"
#: Structures of the v1 release (104 classes) that v2 no longer has: a subject folder holding one
#: of them is a v1 subject, whose label set differs (heart chambers instead of one heart).
V1_ONLY = frozenset({
    "face", "heart_atrium_left", "heart_atrium_right", "heart_myocardium",
    "heart_ventricle_left", "heart_ventricle_right", "pulmonary_artery",
})
#: Affines of the CT and of a structure file may differ by float rounding only (mm).
AFFINE_TOLERANCE = 1e-3


class TotalSegmentator(DatasetPlugin):
    """TotalSegmentator v2.0.1: ``s####/ct.nii.gz`` + 117 binary structure files per subject."""

    id = "totalsegmentator"
    demo = False  # 117 files per case: fabricating it is too slow for the quick demo

    @cached_property
    def structures(self) -> dict[int, str]:
        """Label value -> structure file stem (``1: spleen`` ... ``117: costal_cartilages``)."""
        return {v: name for v, name in self.descriptor.values.items() if v != 0}

    def data_root(self, root: Path) -> Path:
        """``root`` itself, or the one ``Totalsegmentator_dataset*`` folder inside it."""
        root = self.check_root(root)
        if (root / META_FILE).is_file() or any(SUBJECT.match(p.name) for p in root.iterdir()):
            return root
        inner = sorted(
            p for p in root.iterdir()
            if p.is_dir() and p.name.lower().startswith("totalsegmentator_dataset")
        )
        if len(inner) == 1:
            return inner[0]
        raise DiscoveryError(
            "no meta.csv and no s#### subject folders found"
            + (f"; several candidate folders: {[p.name for p in inner]}" if inner else ""),
            dataset=self.dataset_id,
            file=root,
            hint=f"point --root at the unzipped release ({self.descriptor.expected_root})",
        )

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        data = self.data_root(root)
        meta, problem = self._read_meta(data)
        if problem is not None:
            yield problem
        known = set(self.structures.values())
        seen: set[str] = set()
        for entry in sorted(data.iterdir()):
            if entry.name == META_FILE:
                continue
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
                continue
            if not entry.is_dir() or not SUBJECT.match(entry.name):
                yield Skipped(
                    entry, "not a subject folder (expected s#### with four digits)",
                    hint="move unrelated files out of the dataset folder",
                )
                continue
            seen.add(entry.name)
            yield from self._subject(entry, meta.get(entry.name), meta_present=bool(meta), known=known)
        for subject in sorted(set(meta) - seen):
            yield Skipped(
                data / subject, "listed in meta.csv but the subject folder is missing",
                case_id=subject, hint="re-extract the release; the zip may be incomplete",
            )
        if not seen:
            raise DiscoveryError(
                "no s#### subject folders found", dataset=self.dataset_id, file=data,
                hint=f"point --root at the unzipped release ({self.descriptor.expected_root})",
            )

    def _subject(
        self, folder: Path, row: Mapping[str, str] | None, *, meta_present: bool, known: set[str]
    ) -> Iterator[Case | Skipped]:
        subject = folder.name
        image, segs = folder / IMAGE_FILE, folder / SEG_FOLDER
        if not image.is_file():
            yield Skipped(folder, f"{IMAGE_FILE} is missing", case_id=subject,
                          hint="re-extract the subject from the release zip")
            return
        if not segs.is_dir():
            yield Skipped(folder, f"{SEG_FOLDER}/ is missing", case_id=subject,
                          hint="re-extract the subject from the release zip")
            return
        present: set[str] = set()
        unknown: list[Path] = []
        for file in sorted(segs.iterdir()):
            stem = strip_nifti_suffix(file.name)
            if is_hidden(file):
                yield Skipped(file, "hidden or AppleDouble file, not data", case_id=subject)
            elif file.name.endswith(".nii.gz") and stem in known:
                present.add(stem)
            else:
                unknown.append(file)
        v1 = sorted(s for s in (strip_nifti_suffix(f.name) for f in unknown) if s in V1_ONLY)
        if v1:
            yield Skipped(
                folder, f"holds TotalSegmentator v1 structures ({', '.join(v1)}); this plugin "
                "reads the v2 release, whose 117 structures differ", case_id=subject,
                hint="read a v1 release with dataset id totalsegmentator-v1, or download "
                "Totalsegmentator_dataset_v201 (Zenodo 10047292)",
            )
            return
        for file in unknown:
            yield Skipped(
                file, "not one of the 117 TotalSegmentator v2 structure files; not used",
                case_id=subject, hint="remove the file, or check the release version",
            )
        split, metadata = self._split_and_metadata(row, meta_present)
        missing = [n for n in self.structures.values() if n not in present]
        if missing:
            metadata["missing_structures"] = missing
        yield Case(
            case_id=subject, patient_id=subject, images=(image,), label=segs,
            official_split=split, metadata=metadata,
        )

    @staticmethod
    def _split_and_metadata(
        row: Mapping[str, str] | None, meta_present: bool
    ) -> tuple[str | None, dict]:
        if row is None:
            return None, ({"meta_csv": "subject not listed in meta.csv"} if meta_present else {})
        metadata = {k: _scalar(v) for k, v in row.items()
                    if isinstance(k, str) and k not in ("image_id", "split")}
        return row["split"], {"meta": metadata}

    def _read_meta(self, data: Path) -> tuple[dict[str, dict[str, str]], Skipped | None]:
        """Rows of meta.csv by image_id. A missing file is reported, not fatal (no official split)."""
        path = data / META_FILE
        if not path.is_file():
            return {}, Skipped(path, "meta.csv is missing: cases get no official split",
                               hint="restore meta.csv from the release zip")
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter=";"))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DiscoveryError(f"cannot read meta.csv: {exc}", dataset=self.dataset_id,
                                 file=path, hint="restore meta.csv from the release zip") from exc
        columns = set(rows[0]) if rows else set()
        if not {"image_id", "split"} <= columns:
            raise DiscoveryError(
                f"meta.csv needs ';'-separated columns image_id and split, found {sorted(columns)}",
                dataset=self.dataset_id, file=path, hint="restore meta.csv from the release zip",
            )
        meta: dict[str, dict[str, str]] = {}
        for line, row in enumerate(rows, start=2):
            subject, split = (row.get("image_id") or "").strip(), (row.get("split") or "").strip()
            if split not in SPLITS:
                raise DiscoveryError(
                    f"meta.csv line {line}: split {split!r} for {subject!r} is not one of {SPLITS}",
                    dataset=self.dataset_id, file=path, hint="restore meta.csv from the release zip",
                )
            meta[subject] = {**row, "image_id": subject, "split": split}
        return meta, None

    def read_label(self, case: Case) -> Volume | None:
        """One uint8 label map (values 1..117) from the case's binary structure files.

        One pass: each file is read in its stored dtype (uint8 in the release, no float copy) and
        painted where it is > 0, in value order, so a later structure wins where two overlap. The
        map is allocated column-major like NIfTI data, which keeps the painting fast. A missing
        file is an empty structure. Every file must share the CT's grid.
        """
        if case.label is None:
            return None
        ct = self._header(case.images[0], case)
        shape, affine = tuple(ct.shape[:3]), np.asarray(ct.affine, dtype=float)
        combined = np.zeros(shape, dtype=np.uint8, order="F")
        for value, name in self.structures.items():
            path = case.label / f"{name}.nii.gz"
            if not path.is_file():
                continue
            img = self._header(path, case)
            offset = float(np.abs(img.affine - affine).max())
            if tuple(img.shape) != shape or offset > AFFINE_TOLERANCE:
                raise LabelError(
                    f"structure file is not on the CT's grid: shape {tuple(img.shape)} vs "
                    f"{shape}, largest affine difference {offset:.4g} mm",
                    dataset=self.dataset_id, case=case.case_id, file=path,
                    hint="re-extract the subject; every structure file must share ct.nii.gz's grid",
                )
            try:
                mask = np.asanyarray(img.dataobj)
            except Exception as exc:  # noqa: BLE001 - gzip/EOF errors have many types
                raise ReadError(f"cannot read structure file: {type(exc).__name__}: {exc}",
                                dataset=self.dataset_id, case=case.case_id, file=path,
                                hint="re-download the file; it may be truncated") from exc
            np.copyto(combined, np.uint8(value), where=mask > 0)
        return Volume(data=combined, affine=affine, kind="label")

    def _header(self, path: Path, case: Case) -> nib.Nifti1Image:
        try:
            return cast(nib.Nifti1Image, nib.load(str(path)))  # a .nii.gz file
        except Exception as exc:  # noqa: BLE001 - nibabel raises many types
            raise ReadError(f"cannot read NIfTI header: {exc}", dataset=self.dataset_id,
                            case=case.case_id, file=path,
                            hint="re-download the file; it may be truncated or not NIfTI") from exc

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.totalsegmentator import make_totalsegmentator

        return make_totalsegmentator(root, n_cases=n_cases, seed=seed)


def _scalar(text: str | None) -> str | int | float | None:
    """meta.csv cell -> int, float, None (empty) or the stripped text."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if np.isfinite(number) else text


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield TotalSegmentator()
