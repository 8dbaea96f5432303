"""RECIST dataset (Zenodo 17788162): thorax and abdomen CT series with instance lesion masks.

Released layouts (code: github.com/robertorojasp06/recist-dataset; DATASETS.md section 2)::

    final-formatted/                                  (format_final_folder.py, the Zenodo zip)
      images/{abdomen,thorax}/{train,test}/{images,masks,labels}/<pid:03d>_<SeriesInstanceUID>.nii.gz|.json
      metadata/{patients.csv,series.json,windows_mapping.json}
      recist_measurements.csv
    final/                                            (older, unformatted)
      images/{train,test}/{images,masks,labels}/<SeriesInstanceUID>.nii.gz|.json
      metadata/..., recist_measurements.csv

Every mask is an instance map (get_3d_instance_annotated_lesions.py: ``skimage.measure.label``,
then objects under 50 voxels or on one slice removed, so values can have gaps); its
``labels/<name>.json`` maps each kept value to ``"<type>,<site>"`` (utils/mappings.py
LABEL_MAPPING). Mask values are never rewritten: each case gets its own label map
(:attr:`Case.labels`) and the manifest measures every instance (:meth:`RECIST.instances`).

One patient has several series (thorax and abdomen, baseline and follow-up studies); the patient id
comes from the metadata, so they share it and never straddle splits. The official split is the
patient's ``subset`` in patients.csv (``training``/``test``; folders say ``train``/``test``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harmonize.plugins._recist_metadata import (
    SUBSETS,
    WINDOWS,
    Metadata,
    load_metadata,
    normalize_subset,
)

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    HarmonizeError,
    LabelError,
    Skipped,
    hookimpl,
    is_hidden,
    strip_nifti_suffix,
)

REGIONS = ("abdomen", "thorax")
LESION_TYPES = {"m": "metastasis", "n": "lymph node", "t": "primary tumor"}
NODE_SITES = (
    "abdomen", "aortocaval", "axillary", "hepatic hilum", "iliac", "inguinal", "mediastinum",
    "mesenteric", "abdominal wall", "pelvis", "periaortic", "retroperitoneal", "suprarenal",
)
#: "<type>,<site>" (LABEL_MAPPING values) -> canonical classes, the most specific first
LESION_CLASSES: dict[str, tuple[str, ...]] = {
    "m,spleen": ("spleen metastasis", "metastasis"),
    "m,rib": ("rib metastasis", "bone metastasis", "metastasis"),
    "m,liver": ("liver metastasis", "liver tumor", "metastasis"),
    "m,pancreas": ("pancreas metastasis", "pancreas tumor", "metastasis"),
    "m,abdominal wall": ("abdominal wall metastasis", "metastasis"),
    "m,lung": ("lung metastasis", "lung tumor", "metastasis"),
    "m,kidney": ("kidney metastasis", "kidney tumor", "metastasis"),
    "m,ovary": ("ovary metastasis", "metastasis"),
    "m,suprarenal": ("adrenal gland metastasis", "metastasis"),
    **{f"n,{site}": ("pathological lymph node",) for site in NODE_SITES},
    "t,lung": ("primary lung tumor", "lung tumor"),
}
LESION = "lesion"
TARGET = "recist target lesion"
#: every class a case is annotated for (the release segments every lesion of every series):
#: the groups first, then the specific classes alphabetically
_GROUPS = (LESION, "metastasis", "pathological lymph node")
CLASS_NAMES: tuple[str, ...] = (*_GROUPS, *sorted(
    {name for names in LESION_CLASSES.values() for name in names} - set(_GROUPS)
))
_UID = r"\d+(?:\.\d+)+"
_FORMATTED_NAME = re.compile(rf"^(?P<pid>\d{{3,}})_(?P<uid>{_UID})\.nii\.gz$")
_PLAIN_NAME = re.compile(rf"^(?P<uid>{_UID})\.nii\.gz$")


def ct_window(name: str) -> tuple[float, float]:
    """[low, high] HU of one of the release's named windows (utils/windowing.py normalize_ct)."""
    level, width = WINDOWS[name]
    return (level - width / 2, level + width / 2)


def parse_lesion_label(text: str) -> tuple[str, str]:
    """``"n, mediastinum"`` -> ``("n", "mediastinum")`` (the release strips around the comma)."""
    parts = [p.strip().lower() for p in str(text).split(",")]
    if len(parts) != 2 or f"{parts[0]},{parts[1]}" not in LESION_CLASSES:
        raise KeyError(text)
    return parts[0], parts[1]


def read_lesion_labels(path: Path, *, dataset: str = "recist") -> dict[int, str]:
    """A ``labels/*.json`` file as value -> ``"<type>,<site>"``; :class:`LabelError` naming the file
    for unreadable JSON, non-integer keys or a type/site outside LABEL_MAPPING."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelError(f"cannot read lesion labels: {exc}", dataset=dataset, file=path,
                         hint="restore the file from final-formatted.zip") from exc
    if not isinstance(raw, dict):
        raise LabelError("lesion labels must be a JSON object {value: 'type,site'}",
                         dataset=dataset, file=path, hint="restore the file from the release")
    labels: dict[int, str] = {}
    for key, text in raw.items():
        try:
            value = int(key)
        except (TypeError, ValueError):
            raise LabelError(f"lesion label key {key!r} is not an integer mask value",
                             dataset=dataset, file=path, hint="restore the file from the release") from None
        try:
            kind, site = parse_lesion_label(text)
        except KeyError:
            raise LabelError(
                f"unknown lesion class {text!r} for mask value {value}",
                dataset=dataset, file=path,
                hint=f"known classes: {', '.join(LESION_CLASSES)}; add a new one to "
                "LESION_CLASSES in plugins/recist.py (and its canonical names to the vocabulary)",
            ) from None
        if value <= 0:
            raise LabelError(f"lesion label value {value} must be positive", dataset=dataset,
                             file=path, hint="restore the file from the release")
        labels[value] = f"{kind},{site}"
    return dict(sorted(labels.items()))


class RECIST(DatasetPlugin):
    """The RECIST CT lesion dataset, in its ``final-formatted`` or older ``final`` layout."""

    id = "recist"

    @property
    def label_names(self) -> list[str]:
        """Every class a series' label map can hold (see :meth:`case_labels`)."""
        return [*CLASS_NAMES, TARGET]

    # discovery -----------------------------------------------------------------------------

    def data_root(self, root: Path) -> Path:
        """The folder holding ``images/`` and ``metadata/``: ``root`` or its ``final-formatted``
        (or ``final``) folder."""
        root = self.check_root(root)
        for candidate in (root, root / "final-formatted", root / "final"):
            if (candidate / "images").is_dir() and (candidate / "metadata").is_dir():
                return candidate
        raise DiscoveryError(
            "no images/ and metadata/ folders found", dataset=self.dataset_id, file=root,
            hint=f"extract final-formatted.zip and pass the folder laid out as "
            f"{self.descriptor.expected_root}",
        )

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        data = self.data_root(root)
        meta = load_metadata(data, self.dataset_id)
        for entry in sorted(data.iterdir()):
            if entry.name not in ("images", "metadata", "recist_measurements.csv"):
                yield Skipped(entry, "not part of the release layout",
                              hint="move unrelated files out of the dataset folder")
        images = data / "images"
        groups: list[tuple[str | None, Path]] = []
        for entry in sorted(images.iterdir()):
            if entry.is_dir() and entry.name in REGIONS:
                groups.extend((entry.name, sub) for sub in sorted(entry.iterdir()))
            elif entry.is_dir() and entry.name in SUBSETS.values():
                groups.append((None, entry))
            else:
                yield Skipped(entry, "not a region (abdomen/thorax) or subset (train/test) folder",
                              hint="move unrelated files out of images/")
        if not groups:
            raise DiscoveryError("images/ holds no abdomen/thorax or train/test folders",
                                 dataset=self.dataset_id, file=images,
                                 hint="extract the whole release archive")
        seen: set[str] = set()
        for region, folder in groups:
            if not folder.is_dir() or folder.name not in SUBSETS.values():
                yield Skipped(folder, "not a subset folder (train/test)",
                              hint="move unrelated files out of images/")
                continue
            yield from self._subset(folder, region, meta, seen)
        for uid in sorted(set(meta.series) - seen):
            yield Skipped(data / "metadata" / "series.json",
                          f"series {uid} is listed in series.json but no image file has its name",
                          hint="check that the archive was extracted completely")

    def _subset(self, folder: Path, region: str | None, meta: Metadata,
                seen: set[str]) -> Iterator[Case | Skipped]:
        """Cases of one ``[region/]subset`` folder; adds every image's series uid to ``seen``."""
        images, masks, labels = folder / "images", folder / "masks", folder / "labels"
        known = {images, masks, labels}
        for entry in sorted(folder.iterdir()):
            if entry not in known:
                yield Skipped(entry, "not an images/, masks/ or labels/ folder",
                              hint="move unrelated files out of the dataset folder")
        pattern = _FORMATTED_NAME if region is not None else _PLAIN_NAME
        names: set[str] = set()
        for image in sorted(images.iterdir()) if images.is_dir() else ():
            if is_hidden(image):
                yield Skipped(image, "hidden or AppleDouble file, not data")
                continue
            match = pattern.match(image.name)
            if match is None:
                expected = "<pid:03d>_<SeriesInstanceUID>" if region else "<SeriesInstanceUID>"
                yield Skipped(image, f"file name is not {expected}.nii.gz",
                              hint="rename it as released or move it out of images/")
                continue
            names.add(image.name)
            seen.add(match.group("uid"))
            try:
                yield self._case(image, match, folder.name, region, meta)
            except HarmonizeError as exc:
                yield Skipped(Path(exc.file) if exc.file else image, exc.message,
                              case_id=strip_nifti_suffix(image.name), hint=exc.hint)
        for other in (masks, labels):
            for orphan in sorted(other.iterdir()) if other.is_dir() else ():
                image_name = orphan.name.replace(".json", ".nii.gz") if other is labels else orphan.name
                if is_hidden(orphan):
                    yield Skipped(orphan, "hidden or AppleDouble file, not data")
                elif image_name not in names:
                    yield Skipped(orphan, f"no image {image_name} next to this {other.name[:-1]}",
                                  hint="restore the image from the release")

    def _case(self, image: Path, match: re.Match[str], subset: str, region: str | None,
              meta: Metadata) -> Case:
        uid = match.group("uid")
        folder = image.parent.parent
        mask = folder / "masks" / image.name
        labels_file = folder / "labels" / (strip_nifti_suffix(image.name) + ".json")

        def fail(message: str, file: Path = image, hint: str = "check the release is complete "
                 "and unmodified") -> DiscoveryError:
            return DiscoveryError(message, dataset=self.dataset_id, file=file, hint=hint)

        series = meta.series.get(uid)
        if series is None:
            raise fail(f"series {uid} is not in metadata/series.json")
        pid = int(series["patient_id"])
        if "pid" in match.groupdict() and int(match.group("pid")) != pid:
            raise fail(f"file name says patient {match.group('pid')} but series.json says {pid}")
        if region is not None and series.get("region") != region:
            raise fail(f"series is in folder {region}/ but series.json says region "
                       f"{series.get('region')!r}")
        patient = meta.patients.get(pid)
        if patient is None:
            raise fail(f"patient {pid} is not in metadata/patients.csv")
        split = normalize_subset(subset)
        if patient["split"] != split:
            raise fail(f"series is in folder {subset}/ but patients.csv puts patient {pid} in "
                       f"{patient['subset']!r}")
        if not mask.is_file():
            raise fail("mask is missing", file=mask, hint="restore masks/ from the release")
        if not labels_file.is_file():
            raise LabelError("lesion labels JSON is missing for this mask", dataset=self.dataset_id,
                             file=labels_file, hint="restore labels/ from the release")
        lesion_labels = read_lesion_labels(labels_file, dataset=self.dataset_id)
        targets = meta.targets.get(uid, [])
        for target in targets:
            if target["value"] not in lesion_labels:
                raise LabelError(
                    f"recist_measurements.csv names lesion value {target['value']} (alias "
                    f"{target['alias']}) but the series' labels JSON has no such value",
                    dataset=self.dataset_id, file=labels_file, hint="restore both files from the release",
                )
        window_key = image.name
        window = meta.windows.get(window_key)
        study_uid = str(series.get("study_uuid", ""))
        metadata: dict[str, Any] = {
            "layout": "final-formatted" if region is not None else "final",
            "region": series.get("region"),
            "series_uid": uid,
            "study_uid": study_uid,
            "study_date": str(series.get("study_date", "")),
            "study_order": meta.study_order.get(study_uid),
            "sex": patient["sex"],
            "age": patient["age"],
            "diagnosis": patient["diagnosis"],
            "histology": patient["histology"],
            "health_insurance": patient["health_insurance"],
            "slice_thickness_mm": series.get("slice_thickness"),
            "ct_window_name": window,
            "lesion_labels": {str(v): text for v, text in lesion_labels.items()},
            "recist_targets": targets,
        }
        return Case(
            case_id=f"{pid:03d}_{uid}",
            patient_id=f"{pid:03d}",
            images=(image,),
            label=mask,
            official_split=split,
            labels=self.case_labels(lesion_labels, targets, assessed=study_uid in meta.assessed_studies),
            ct_window=ct_window(window) if window else None,
            metadata=metadata,
        )

    @staticmethod
    def case_labels(lesion_labels: Mapping[int, str], targets: list[dict[str, Any]], *,
                    assessed: bool) -> dict[str, list[int]]:
        """Canonical class -> instance values. Every lesion class is annotated (possibly empty);
        ``recist target lesion`` only when the series' study was assessed in recist_measurements."""
        classes: dict[str, list[int]] = {name: [] for name in CLASS_NAMES}
        for value, text in lesion_labels.items():
            for name in (LESION, *LESION_CLASSES[text]):
                classes[name].append(value)
        if assessed:
            classes[TARGET] = sorted(t["value"] for t in targets)
        return classes

    def instances(self, case: Case) -> dict[int, dict[str, Any]] | None:
        """Every lesion of the series with its release label, type, site, canonical class and,
        for RECIST target lesions, the alias and the radiologist's measurement."""
        labels = case.metadata.get("lesion_labels")
        if labels is None:
            return None
        targets = {t["value"]: t for t in case.metadata.get("recist_targets", [])}
        out: dict[int, dict[str, Any]] = {}
        for key, text in labels.items():
            kind, site = text.split(",")
            target = targets.get(int(key))
            out[int(key)] = {
                "label": text,
                "type": LESION_TYPES[kind],
                "site": site,
                "class": LESION_CLASSES[text][0],
                "recist_target": None if target is None else {
                    "alias": target["alias"], "measurement_mm": target["measurement_mm"],
                },
            }
        return out

    # metadata ------------------------------------------------------------------------------

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.recist import make_recist

        return make_recist(root, n_patients=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield RECIST()
