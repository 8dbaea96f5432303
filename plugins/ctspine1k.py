"""CTSpine1K: 1,005 spine CTs from four public collections, vertebrae C1-L6 labelled 1-25.

Two released layouts (DATASETS.md section 3), both handled; the first one found under the root wins::

    Hugging Face mirror alexanderdann/CTSpine1K (download URLs use raw_data/, its README rawdata/):
        raw_data/volumes/{COLONOG,HNSCC-3DCT-RT,MSD-T10,COVID-19}/<name>.nii.gz
        raw_data/labels/<same folders>/<name>_seg.nii.gz
        metadata/data_split.txt
    Original download (Google Drive / Baidu / XNAT copy of the authors' folder):
        data/{colon,HNSCC-3DCT-RT_neck,liver,COVID-19}/<name>.nii.gz   (+ metadata_*.xlsx)
        label/{conlon,HNSCC-3DCT-RT_neck,Liver,COVID-19}/<name>_seg.nii.gz
        label/{Verse,completed_annotation_verse}/   VerSe re-annotations, labels only
        data_split.txt, Path.csv, readme.txt, nnU-Net model files

Folder names differ between the copies (even between ``data`` and ``label``: ``colon`` vs
``conlon``), so the plugin pairs ``<name>`` with ``<name>_seg`` by file name and tells the source
collection from the name pattern, never from the folder: COLONOG ``1.3.6.1.4.1.9328.50.4.0001`` or
``CTC-1018399231`` (TCIA patient ids), HNSCC ``HN_P001``, MSD ``liver_0`` (ids > 130 are MSD test
cases), COVID-19 ``volume-covid19-A-0003_ct`` (one ``..._0202_0_ct``).

Case id = file stem. Patient id = the source collection's patient id (the stem, minus ``_ct`` and
a scan index for COVID-19); metadata carries ``source_collection`` and ``source_patient_id``, the
cross-dataset dedup key. ``data_split.txt`` (CRLF on GitHub, blank lines between sections) maps
``trainset`` -> train, ``test_public`` -> val, ``test_private`` -> test, as the Hugging Face loader
does. Lumbosacral transitional vertebrae: membership in the published case lists
(``registry/ctspine1k_transitional_vertebrae.yaml``) is recorded as ``transitional_vertebra`` plus
``lumbarization: true`` (sacral lumbarization: an L6, value 25) or ``sacralization: true``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    hookimpl,
    load_yaml,
    strip_nifti_suffix,
    walk_files,
)

#: (image folder, label folder) pairs relative to the root, in the order they are tried.
LAYOUTS = (
    ("raw_data/volumes", "raw_data/labels"),
    ("rawdata/volumes", "rawdata/labels"),
    ("volumes", "labels"),
    ("data", "label"),
)
SPLIT_FILES = ("metadata/data_split.txt", "data_split.txt")
SECTIONS = {"trainset": "train", "test_public": "val", "test_private": "test"}
LABEL_SUFFIX = "_seg.nii.gz"
TRANSITIONAL_FILE = "ctspine1k_transitional_vertebrae.yaml"
TRANSITIONAL_FLAGS = {"sacral lumbarization": "lumbarization", "lumbar sacralization": "sacralization"}


def same_patient_links(collection: str, patient: str) -> tuple[str, ...]:
    """Link MSD liver cases to the same patient in ``msd-liver`` and ``lits`` (same images), so
    splits keep them together even when the stored files differ."""
    if collection != "MSD Task03_Liver":
        return ()
    number = int(patient.split("_")[1])
    links = [f"msd-liver:{patient}"]
    if number <= 130:  # LiTS training volume-N = MSD liver_N; the test numbering differs
        links.append(f"lits:volume-{number}")
    return tuple(links)


@dataclass(frozen=True)
class Source:
    """One contributing collection: its name and the file-stem pattern (group ``pid`` = patient)."""

    collection: str
    pattern: re.Pattern[str]


SOURCES = (
    Source("CT COLONOGRAPHY", re.compile(r"^(?P<pid>1\.3\.6\.1\.4\.1\.9328\.50\.4\.\d+|CTC-\d+)$")),
    Source("HNSCC-3DCT-RT", re.compile(r"^(?P<pid>HN_P\d+)$")),
    Source("MSD Task03_Liver", re.compile(r"^(?P<pid>liver_\d+)$")),
    Source("CT Images in COVID-19", re.compile(r"^(?P<pid>volume-covid19-A-\d+)(?:_\d+)?_ct$")),
)


def identify(stem: str) -> tuple[str, str] | None:
    """``(source collection, source patient id)`` for a CTSpine1K file stem, or ``None``."""
    for source in SOURCES:
        if match := source.pattern.match(stem):
            return source.collection, match.group("pid")
    return None


def parse_data_split(text: str, *, path: Path | None = None, dataset: str = "ctspine1k") -> dict[str, str]:
    """Map each file stem listed in ``data_split.txt`` to its section name.

    Sections are ``trainset:``, ``test_public:`` and ``test_private:``; blank lines, CRLF line ends
    and a line holding two names glued together (an old version of the file) are handled. An
    unknown section, a name before any section or a name listed in two sections is an error.
    """
    def fail(message: str) -> DiscoveryError:
        return DiscoveryError(message, dataset=dataset, file=path,
                              hint="restore data_split.txt from the release (github.com/MIRACLE-Center/CTSpine1K)")

    sections: dict[str, str] = {}
    section: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.endswith(":"):
            section = line[:-1].strip()
            if section not in SECTIONS:
                raise fail(f"line {lineno}: unknown section {section!r} (expected {sorted(SECTIONS)})")
            continue
        names = re.findall(r"\S+?\.nii\.gz", line)
        if not names or "".join(names) != line:
            raise fail(f"line {lineno}: {line!r} is not a .nii.gz file name")
        if section is None:
            raise fail(f"line {lineno}: {line!r} comes before any section header")
        for name in names:
            stem = strip_nifti_suffix(name)
            if sections.setdefault(stem, section) != section:
                raise fail(f"line {lineno}: {name} is listed in both {sections[stem]} and {section}")
    return sections


@cache
def transitional_cases() -> Mapping[str, str]:
    """File stem -> ``sacral lumbarization`` / ``lumbar sacralization`` (the published lists)."""
    resource = resources.files("harmonize.registry").joinpath(TRANSITIONAL_FILE)
    data = load_yaml(resource.read_text(encoding="utf-8"))
    cases: dict[str, str] = {}
    for kind, names in data.items():
        if kind not in TRANSITIONAL_FLAGS or not isinstance(names, list):
            raise DiscoveryError(
                f"unexpected entry {kind!r} in {TRANSITIONAL_FILE}",
                dataset="ctspine1k", file=TRANSITIONAL_FILE,
                hint=f"the file holds the lists {sorted(TRANSITIONAL_FLAGS)}",
            )
        for name in names:
            cases[name[: -len(LABEL_SUFFIX)] if name.endswith(LABEL_SUFFIX) else name] = kind
    return cases


class CTSpine1K(DatasetPlugin):
    """CTSpine1K in the Hugging Face mirror's or the original download's layout."""

    id = "ctspine1k"

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        root = self.check_root(root)
        image_dir, label_dir = self._folders(root)
        split_file = next((root / p for p in SPLIT_FILES if (root / p).is_file()), None)
        sections: dict[str, str] = {}
        if split_file is not None:
            sections = parse_data_split(split_file.read_text(encoding="utf-8-sig"),
                                        path=split_file, dataset=self.dataset_id)
        labels: dict[str, Path] = {}
        yield from self._index_labels(label_dir, labels)
        transitional = transitional_cases()
        found: set[str] = set()
        for item in walk_files(image_dir):
            if isinstance(item, Skipped):
                yield item
                continue
            if not item.name.endswith((".nii.gz", ".nii")):
                yield Skipped(item, "not a NIfTI volume (CTSpine1K metadata, not used)",
                              hint="nothing to do; harmonize does not read it")
                continue
            if item.name.endswith(LABEL_SUFFIX):
                yield Skipped(item, f"a label file in the volume folder {image_dir.name}/",
                              hint=f"move it to {label_dir.name}/")
                continue
            stem = strip_nifti_suffix(item.name)
            source = identify(stem)
            if source is None:
                yield Skipped(
                    item, "file name matches no CTSpine1K source (COLONOG, HNSCC, MSD liver, COVID-19)",
                    hint="move files that are not part of CTSpine1K out of the dataset folder",
                )
                continue
            label = labels.pop(stem, None)
            if label is None:
                yield Skipped(item, f"no label {stem}{LABEL_SUFFIX} in {label_dir.name}/", case_id=stem,
                              hint="download the matching label file; a volume without label is not used")
                continue
            found.add(stem)
            yield self._case(item, label, stem, source, image_dir, sections.get(stem), transitional)
        for stem, label in sorted(labels.items()):
            yield Skipped(label, f"no volume {stem}.nii.gz pairs with this label", case_id=stem,
                          hint=f"download the volume into {image_dir.name}/")
        yield from self._missing_listed(sections, found, split_file)

    def _folders(self, root: Path) -> tuple[Path, Path]:
        for images, labels in LAYOUTS:
            if (root / images).is_dir():
                if not (root / labels).is_dir():
                    raise DiscoveryError(
                        f"found {images}/ but no {labels}/ next to it", dataset=self.dataset_id,
                        file=root / labels, hint="download the label files as well",
                    )
                return root / images, root / labels
        raise DiscoveryError(
            "no CTSpine1K volume folder found (looked for "
            + ", ".join(f"{i}/" for i, _ in LAYOUTS) + ")",
            dataset=self.dataset_id, file=root,
            hint=f"point at the Hugging Face snapshot or the extracted download ({self.descriptor.expected_root})",
        )

    @staticmethod
    def _index_labels(label_dir: Path, labels: dict[str, Path]) -> Iterator[Skipped]:
        """Fill ``labels`` (stem -> path); yield what is not a CTSpine1K label file."""
        verse = [p for p in label_dir.iterdir() if p.is_dir() and "verse" in p.name.lower()]
        for folder in sorted(verse):
            yield Skipped(folder, "VerSe re-annotations (labels only; the images belong to VerSe)",
                          hint="use them with a VerSe download; CTSpine1K cases do not need them")
        for item in walk_files(label_dir):
            if isinstance(item, Skipped):
                yield item
                continue
            if any(item.is_relative_to(folder) for folder in verse):
                continue  # reported once per folder above
            if not item.name.endswith(LABEL_SUFFIX):
                yield Skipped(item, f"not a CTSpine1K label (expected <name>{LABEL_SUFFIX})",
                              hint="move unrelated files out of the label folder")
                continue
            stem = item.name[: -len(LABEL_SUFFIX)]
            if stem in labels:
                yield Skipped(item, f"second label for {stem} (first: {labels[stem]})", case_id=stem,
                              hint="keep one copy of each label file")
                continue
            labels[stem] = item

    def _case(
        self, image: Path, label: Path, stem: str, source: tuple[str, str], image_dir: Path,
        section: str | None, transitional: Mapping[str, str],
    ) -> Case:
        collection, patient = source
        metadata: dict[str, object] = {
            "source_collection": collection,
            "source_patient_id": patient,
            "source_folder": image.parent.relative_to(image_dir).as_posix(),
        }
        if section is not None:
            metadata["data_split_section"] = section
        if stem in transitional:
            kind = transitional[stem]
            metadata["transitional_vertebra"] = kind
            metadata[TRANSITIONAL_FLAGS[kind]] = True
        return Case(case_id=stem, patient_id=patient, images=(image,), label=label,
                    official_split=SECTIONS.get(section or ""),
                    same_patient_as=same_patient_links(collection, patient), metadata=metadata)

    @staticmethod
    def _missing_listed(sections: Mapping[str, str], found: set[str], split_file: Path | None) -> Iterator[Skipped]:
        """One item per source collection for cases ``data_split.txt`` lists but the disk lacks."""
        if split_file is None:
            return
        missing: dict[str, list[str]] = defaultdict(list)
        for stem in sorted(set(sections) - found):
            source = identify(stem)
            missing[source[0] if source else "unknown source"].append(stem)
        for collection, stems in sorted(missing.items()):
            shown = ", ".join(stems[:3]) + (", ..." if len(stems) > 3 else "")
            yield Skipped(
                split_file,
                f"{len(stems)} {collection} case(s) listed in data_split.txt are not on disk ({shown})",
                hint="complete the download (the Hugging Face COLONOG folder is gated) or ignore "
                "if you chose a subset",
            )

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.ctspine1k import make_ctspine1k

        return make_ctspine1k(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield CTSpine1K()
