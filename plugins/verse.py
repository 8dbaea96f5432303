"""VerSe'19 and VerSe'20 in the restructured "VerSe-complete" release (BIDS-like names).

Released layout (github.com/anjany/verse README; DATASETS.md section 15)::

    dataset-verse19training/                      VerSe'20: dataset-01training, -02validation, -03test
      rawdata/sub-verse004/sub-verse004_ct.nii.gz
      derivatives/sub-verse004/sub-verse004_seg-vert_msk.nii.gz
      derivatives/sub-verse004/sub-verse004_seg-subreg_ctd.json    centroids, voxel coordinates
      derivatives/sub-verse004/sub-verse004_seg-vert_snp.png       preview
      rawdata/sub-verse408/sub-verse408_split-verse223_ct.nii.gz   one subject, several scans
      rawdata/sub-verse500/sub-verse500_dir-ax_ct.nii.gz           optional entities (dir-ax|sag|iso)

Files are matched on their suffixes (``_ct.nii.gz`` / ``_seg-vert_msk.nii.gz``) and share the prefix,
which is the case id; the subject folder is the patient id. The release folder gives the official
split. The root may hold the split folders (also wrapped once, ``dataset-x/dataset-x/``) or be one
of them. Images come in many orientations (PIR, LAS, LPS, PSR, oblique): the core reorients.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    Skipped,
    hookimpl,
    is_hidden,
)

CT_SUFFIX = "_ct.nii.gz"
MASK_SUFFIX = "_seg-vert_msk.nii.gz"
CENTROID_SUFFIX = "_seg-subreg_ctd.json"
SNAPSHOT_SUFFIX = "_seg-vert_snp.png"
#: VerSe ids below this were already in VerSe'19 (VerSe'20 OSF readme).
VERSE19_MAX_ID = 450
#: Challenge-era names (``verse506_CT-iso.nii.gz``) are a different release with other annotations.
MICCAI_NAME = re.compile(r"^verse\d+_CT-\w+(_seg)?\.nii(\.gz)?$", re.IGNORECASE)
_VERSE_NUMBER = re.compile(r"^verse(\d+)$")


class VerSe(DatasetPlugin):
    """One VerSe release; subclasses name its split folders."""

    #: release folder name -> official split
    split_folders: ClassVar[dict[str, str]] = {}
    #: the other release's folders, reported (not read) when both sit under one root
    other_release: ClassVar[tuple[str, dict[str, str]]] = ("", {})

    def split_roots(self, root: Path) -> list[tuple[Path, str]]:
        """(folder holding rawdata/ and derivatives/, official split) for each release folder."""
        root = self.check_root(root)
        if root.name in self.split_folders:
            return [(self._unwrap(root), self.split_folders[root.name])]
        found = [
            (self._unwrap(child), self.split_folders[child.name])
            for child in sorted(root.iterdir())
            if child.is_dir() and child.name in self.split_folders
        ]
        if found:
            return found
        miccai = [p.name for p in islice(root.rglob("*.nii*"), 200) if MICCAI_NAME.match(p.name)]
        raise DiscoveryError(
            f"no release folders ({', '.join(self.split_folders)}) found"
            + (f"; found MICCAI-challenge files such as {miccai[0]}" if miccai else ""),
            dataset=self.dataset_id,
            file=root,
            hint=("use the restructured VerSe-complete release (the challenge-era files have other "
                  "names and annotations); " if miccai else "")
            + f"point --root at the folder holding the unzipped release ({self.descriptor.expected_root})",
        )

    @staticmethod
    def _unwrap(folder: Path) -> Path:
        """``dataset-x/dataset-x/rawdata`` (zip extracted into a folder of its own name) -> inner."""
        inner = folder / folder.name
        if not (folder / "rawdata").is_dir() and (inner / "rawdata").is_dir():
            return inner
        return folder

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        splits = self.split_roots(root)
        root = Path(root)
        if root.name not in self.split_folders:
            yield from self._foreign_entries(root)
        for folder, split in splits:
            yield from self._release_folder(folder, split)

    def _foreign_entries(self, root: Path) -> Iterator[Skipped]:
        other_id, other_folders = self.other_release
        for entry in sorted(root.iterdir()):
            if entry.name in self.split_folders:
                continue
            if entry.name in other_folders:
                yield Skipped(entry, f"a {other_id} release folder, not {self.dataset_id}",
                              hint=f"it is read by the {other_id} dataset")
            elif is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
            else:
                yield Skipped(entry, "not a release folder of this dataset",
                              hint=f"expected only {', '.join(self.split_folders)} here")

    def _release_folder(self, folder: Path, split: str) -> Iterator[Case | Skipped]:
        raw, derivatives = folder / "rawdata", folder / "derivatives"
        if not raw.is_dir():
            yield Skipped(folder, "no rawdata/ folder in the release folder",
                          hint="re-extract the release zip")
            return
        used: set[Path] = set()
        for subject in sorted(raw.iterdir()):
            if is_hidden(subject):
                yield Skipped(subject, "hidden or AppleDouble file, not data")
            elif not subject.is_dir() or not subject.name.startswith("sub-"):
                yield Skipped(subject, "not a subject folder (expected sub-<id>)",
                              hint="move unrelated files out of rawdata/")
            else:
                for scan in sorted(subject.iterdir()):
                    for item in self._scan(scan, derivatives / subject.name, folder, split):
                        if isinstance(item, Case) and item.label is not None:
                            used.add(item.label)
                        yield item
        yield from self._leftover_derivatives(derivatives, used)

    def _scan(self, scan: Path, der: Path, folder: Path, split: str) -> Iterator[Case | Skipped]:
        """The case of one ``*_ct.nii.gz`` (or why not), plus a note on an unreadable centroid file."""
        subject = scan.parent.name
        if is_hidden(scan):
            yield Skipped(scan, "hidden or AppleDouble file, not data")
            return
        if not scan.name.endswith(CT_SUFFIX):
            yield Skipped(scan, f"not a CT scan (*{CT_SUFFIX}); not used")
            return
        prefix = scan.name[: -len(CT_SUFFIX)]
        if prefix != subject and not prefix.startswith(subject + "_"):
            yield Skipped(scan, f"file name does not start with its subject folder {subject!r}",
                          hint="restore the release's file names")
            return
        mask = der / (prefix + MASK_SUFFIX)
        if not mask.is_file():
            yield Skipped(scan, f"no mask derivatives/{subject}/{mask.name}", case_id=prefix,
                          hint="re-extract the release zip; a scan without its mask is not used")
            return
        entities = parse_entities(prefix[len(subject) + 1:])
        verse_id = entities.get("split") or subject.removeprefix("sub-")
        metadata: dict[str, Any] = {
            "subject": subject, "verse_id": verse_id, "release_folder": folder.name,
            "entities": entities,
        }
        also_in = self.also_in(verse_id)
        if also_in:
            metadata["also_in"] = also_in
        centroids = der / (prefix + CENTROID_SUFFIX)
        if centroids.is_file():
            parsed = self.read_centroids(centroids, folder)
            if isinstance(parsed, Skipped):
                yield parsed
            else:
                metadata["centroids"] = parsed
        # same subject folder name in the other release: keep both in one split
        yield Case(case_id=prefix, patient_id=subject, images=(scan,), label=mask,
                   official_split=split, metadata=metadata,
                   same_patient_as=tuple(f"{other}:{subject}" for other in also_in))

    def also_in(self, verse_id: str) -> list[str]:
        """Other releases that hold the same scan (none known by default)."""
        return []

    def read_centroids(self, path: Path, folder: Path) -> dict[str, Any] | Skipped:
        """``{"file", "direction", "points": [{label, vertebra, X, Y, Z}]}`` from a centroid JSON.

        The first entry gives the axis code of the voxel coordinates; entries with NaN are
        dropped, as the dataset's own ``load_centroids`` does.
        """
        names = self.descriptor.values
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            direction = "".join(next(e["direction"] for e in entries if "direction" in e))
            points = [
                {"label": int(e["label"]), "vertebra": names.get(int(e["label"])),
                 "X": float(e["X"]), "Y": float(e["Y"]), "Z": float(e["Z"])}
                for e in entries if "label" in e
                and all(math.isfinite(float(e[k])) for k in ("X", "Y", "Z"))
            ]
        except (OSError, ValueError, TypeError, KeyError, StopIteration) as exc:
            return Skipped(path, f"unreadable centroid file ({type(exc).__name__}: {exc}); the "
                           "scan is used without centroids",
                           hint="re-extract the file from the release zip")
        return {"file": path.relative_to(folder).as_posix(), "direction": direction,
                "points": points}

    def _leftover_derivatives(self, derivatives: Path, used: set[Path]) -> Iterator[Skipped]:
        if not derivatives.is_dir():
            return
        for file in sorted(p for p in derivatives.rglob("*") if p.is_file()):
            name = file.name
            if file in used or name.endswith((CENTROID_SUFFIX, SNAPSHOT_SUFFIX)):
                continue
            if is_hidden(file):
                yield Skipped(file, "hidden or AppleDouble file, not data")
            elif name.endswith(MASK_SUFFIX):
                yield Skipped(file, "mask without its CT in rawdata/",
                              hint="re-extract the release zip")
            else:
                yield Skipped(file, "not a vertebra mask, centroid file or preview; not used")

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.verse import make_verse

        return make_verse(root, release=self.id, n_subjects=n_cases, seed=seed)


def parse_entities(text: str) -> dict[str, str]:
    """``dir-ax_split-verse223`` -> ``{"dir": "ax", "split": "verse223"}`` (BIDS key-value pairs)."""
    entities: dict[str, str] = {}
    for part in filter(None, text.split("_")):
        key, _, value = part.partition("-")
        entities[key] = value
    return entities


VERSE19_FOLDERS = {
    "dataset-verse19training": "train",
    "dataset-verse19validation": "val",
    "dataset-verse19test": "test",
}
VERSE20_FOLDERS = {
    "dataset-01training": "train",
    "dataset-02validation": "val",
    "dataset-03test": "test",
    # the names of the download zips, in case a folder was named after its zip
    "dataset-verse20training": "train",
    "dataset-verse20validation": "val",
    "dataset-verse20test": "test",
}


class VerSe19(VerSe):
    id = "verse19"
    split_folders = VERSE19_FOLDERS
    other_release = ("verse20", VERSE20_FOLDERS)
    demo = False


class VerSe20(VerSe):
    id = "verse20"
    split_folders = VERSE20_FOLDERS
    other_release = ("verse19", VERSE19_FOLDERS)
    demo = False  # cheap (8 small scans), but the demo set is the lead's choice (golden jsonl/)

    def also_in(self, verse_id: str) -> list[str]:
        """VerSe ids below 450 (``verse004``, ``split-verse223``) were already in VerSe'19."""
        match = _VERSE_NUMBER.match(verse_id)
        return ["verse19"] if match and int(match.group(1)) < VERSE19_MAX_ID else []


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield VerSe19()
    yield VerSe20()
