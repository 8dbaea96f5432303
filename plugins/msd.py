"""Medical Segmentation Decathlon (MSD): the ten tasks, each its own dataset id.

Released layout (one tar per task, http://medicaldecathlon.com/; DATASETS.md section 4)::

    TaskXX_Name/dataset.json
    TaskXX_Name/imagesTr/<prefix>_<id>.nii.gz    labelled training images (4D for Task01, Task05)
    TaskXX_Name/labelsTr/<prefix>_<id>.nii.gz    3D label maps, same file name as the image
    TaskXX_Name/imagesTs/<prefix>_<id>.nii.gz    hidden test set, no labels released

The root may be the task folder itself or a folder holding several task folders. ``dataset.json``
is the contract: its ``labels`` must equal the descriptor's ``values`` (so a wrong task folder is an
error, not silently mislabelled data), its ``modality`` gives the channel names of 4D images, and
its ``training``/``test`` lists are cross-checked with the directory listing: a listed file that is
missing, or a file that is not listed, is reported as skipped. The file is parsed leniently
(trailing commas, the ``relase`` misspelling). macOS ``._*`` AppleDouble files are skipped and
reported. Case and patient id are the file name without ``.nii.gz``; names are never built, since
ids are not contiguous and zero padding differs per task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    Descriptor,
    DiscoveryError,
    HarmonizeError,
    LabelError,
    Skipped,
    hookimpl,
    is_hidden,
    read_header,
    strip_nifti_suffix,
)

#: (task folder, dataset id, part of ``harmonize demo``)
TASKS: tuple[tuple[str, str, bool], ...] = (
    ("Task01_BrainTumour", "msd-braintumour", True),
    ("Task02_Heart", "msd-heart", False),
    ("Task03_Liver", "msd-liver", True),
    ("Task04_Hippocampus", "msd-hippocampus", False),
    ("Task05_Prostate", "msd-prostate", False),
    ("Task06_Lung", "msd-lung", False),
    ("Task07_Pancreas", "msd-pancreas", False),
    ("Task08_HepaticVessel", "msd-hepaticvessel", False),
    ("Task09_Spleen", "msd-spleen", False),
    ("Task10_Colon", "msd-colon", False),
)

DATASET_JSON = "dataset.json"
LAYOUT = ("imagesTr", "labelsTr", "imagesTs")
NIFTI = (".nii.gz", ".nii")
#: ``liver_0_0000``: a channel file written by nnU-Net's MSD converter, not a release file
CHANNEL_FILE = re.compile(r"^(.+)_\d{4}$")


def strip_trailing_commas(text: str) -> str:
    """Remove commas that directly precede ``}`` or ``]`` outside strings (lenient JSON)."""
    out: list[str] = []
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            out.append(char)
            continue
        if char == '"':
            in_string = True
        elif char == ",":
            rest = text[index + 1:].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(char)
    return "".join(out)


def read_dataset_json(path: Path, *, dataset: str) -> dict[str, Any]:
    """Parse an MSD ``dataset.json`` leniently; ``relase`` is also returned as ``release``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DiscoveryError(
            f"cannot read {DATASET_JSON}: {exc}", dataset=dataset, file=path,
            hint="restore dataset.json from the task's tar file",
        ) from exc
    try:
        info = json.loads(strip_trailing_commas(text))
    except ValueError as exc:
        raise DiscoveryError(
            f"{DATASET_JSON} is not valid JSON: {exc}", dataset=dataset, file=path,
            hint="restore dataset.json from the task's tar file",
        ) from exc
    if not isinstance(info, dict):
        raise DiscoveryError(f"{DATASET_JSON} is not a JSON object", dataset=dataset, file=path,
                             hint="restore dataset.json from the task's tar file")
    if "release" not in info and "relase" in info:
        info["release"] = info["relase"]
    return info


def _entry_name(entry: Any, folder: str) -> str | None:
    """``./imagesTr/liver_0.nii.gz`` -> ``liver_0.nii.gz`` if it points into ``folder``."""
    if not isinstance(entry, str):
        return None
    parts = [p for p in PurePosixPath(entry.replace("\\", "/")).parts if p != "."]
    if len(parts) != 2 or parts[0] != folder or parts[1] in ("", ".."):
        return None
    return parts[1]


class MSDTask(DatasetPlugin):
    """One MSD task: ``folder`` (e.g. ``Task03_Liver``) under dataset id ``dataset_id``."""

    def __init__(self, folder: str, dataset_id: str, *, demo: bool = False,
                 descriptor: Descriptor | dict | None = None) -> None:
        self.folder = folder
        self.id = dataset_id  # type: ignore[misc]  # per-instance id: one class, ten tasks
        self.demo = demo  # type: ignore[misc]
        super().__init__(descriptor)

    # -- where the task is ------------------------------------------------------------------

    def task_root(self, root: Path) -> Path:
        """``root`` if it is a task folder (holds ``dataset.json``), else ``root/<folder>``."""
        root = self.check_root(root)
        if (root / self.folder).is_dir():
            return root / self.folder
        if (root / DATASET_JSON).is_file():
            return root
        tasks = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("Task"))
        raise DiscoveryError(
            f"no {self.folder} folder and no {DATASET_JSON} here"
            + (f" (found task folders: {', '.join(tasks)})" if tasks else ""),
            dataset=self.dataset_id, file=root,
            hint=f"extract {self.folder}.tar and pass the {self.folder} folder or its parent",
        )

    # -- dataset.json checks ----------------------------------------------------------------

    def check_labels(self, info: dict[str, Any], path: Path) -> None:
        """``dataset.json`` labels must be the descriptor's values (same numbers, same names)."""
        raw = info.get("labels")
        found: dict[int, str] = {}
        if isinstance(raw, dict):
            for key, name in raw.items():
                try:
                    found[int(key)] = str(name)
                except (TypeError, ValueError):
                    found = {}
                    break
        expected = dict(self.descriptor.values)
        if {k: v.strip().lower() for k, v in found.items()} != {
            k: v.strip().lower() for k, v in expected.items()
        }:
            raise LabelError(
                f"{DATASET_JSON} declares labels {raw!r}, but {self.folder} has "
                f"{ {str(k): v for k, v in expected.items()} }",
                dataset=self.dataset_id, file=path,
                hint=f"this is not {self.folder}: pass the {self.folder} folder to "
                f"{self.dataset_id}, or use the dataset id of the task this folder holds",
            )

    def channel_names(self, info: dict[str, Any], path: Path) -> tuple[str, ...]:
        """Channel names in channel order from ``modality``; checked against the descriptor."""
        raw: Any = info.get("modality")  # untrusted JSON: a bad value raises below
        try:
            names = tuple(str(raw[k]) for k in sorted(raw, key=int))
        except (TypeError, ValueError, AttributeError):
            names = ()
        expected = self.descriptor.channels
        if not names or (expected and [n.lower() for n in names] != [n.lower() for n in expected]):
            raise DiscoveryError(
                f"{DATASET_JSON} declares modality {raw!r}; {self.folder} has channels "
                f"{list(expected or [])}",
                dataset=self.dataset_id, file=path,
                hint=f"restore dataset.json from {self.folder}.tar, or check this is {self.folder}",
            )
        return names

    def listed(self, info: dict[str, Any], path: Path) -> tuple[dict[str, str], set[str], list[Skipped]]:
        """Image name -> label name of ``training``, image names of ``test``, bad entries."""
        training, test = info.get("training"), info.get("test", [])
        if not isinstance(training, list) or not isinstance(test, list):
            raise DiscoveryError(
                f"{DATASET_JSON} has no 'training' list (or 'test' is not a list)",
                dataset=self.dataset_id, file=path,
                hint="restore dataset.json from the task's tar file",
            )
        train: dict[str, str] = {}
        bad: list[Skipped] = []
        for number, entry in enumerate(training):
            image = _entry_name(entry.get("image") if isinstance(entry, dict) else None, "imagesTr")
            label = _entry_name(entry.get("label") if isinstance(entry, dict) else None, "labelsTr")
            if image is None or label is None:
                bad.append(Skipped(path, f"'training' entry {number} ({entry!r}) does not name "
                                   "./imagesTr/<file> and ./labelsTr/<file>",
                                   hint="restore dataset.json from the task's tar file"))
                continue
            train[image] = label
        tests: set[str] = set()
        for number, entry in enumerate(test):
            image = _entry_name(entry.get("image") if isinstance(entry, dict) else entry, "imagesTs")
            if image is None:
                bad.append(Skipped(path, f"'test' entry {number} ({entry!r}) does not name "
                                   "./imagesTs/<file>",
                                   hint="restore dataset.json from the task's tar file"))
                continue
            tests.add(image)
        return train, tests, bad

    # -- discovery --------------------------------------------------------------------------

    def _listing(self, folder: Path) -> tuple[dict[str, Path], list[Skipped]]:
        """NIfTI files of ``folder`` by name; everything else as skipped."""
        files: dict[str, Path] = {}
        skipped: list[Skipped] = []
        if not folder.is_dir():
            return files, skipped
        for entry in sorted(folder.iterdir()):
            if is_hidden(entry):
                skipped.append(Skipped(entry, "hidden or macOS AppleDouble ('._') file, not data"))
            elif not entry.is_file() or not entry.name.endswith(NIFTI):
                skipped.append(Skipped(entry, f"not a NIfTI file of {folder.name}",
                                       hint="move unrelated files out of the task folder"))
            else:
                files[entry.name] = entry
        return files, skipped

    def _not_listed(self, path: Path, key: str, listed: Collection[str]) -> Skipped:
        hint = "restore dataset.json from the task's tar file, or remove the extra file"
        converted = CHANNEL_FILE.match(strip_nifti_suffix(path.name))
        if converted and any(strip_nifti_suffix(n) == converted.group(1) for n in listed):
            hint = ("this looks like an nnU-Net-converted folder (<case>_0000 channel files); "
                    f"pass the original {self.folder} folder from the MSD tar instead")
        return Skipped(path, f"in {path.parent.name} but not listed in {DATASET_JSON} '{key}'",
                       case_id=strip_nifti_suffix(path.name), hint=hint)

    def _check_channels(self, image: Path, channels: tuple[str, ...]) -> str | None:
        """Why ``image`` does not have one volume per declared channel, or ``None``.

        An unreadable header is left to the core, which reports it as a read error of the case.
        """
        try:
            shape = read_header(image).shape
        except HarmonizeError:
            return None
        if len(channels) > 1 and (len(shape) != 4 or shape[3] != len(channels)):
            return (f"image shape {list(shape)} does not hold the {len(channels)} channels "
                    f"{list(channels)} declared in {DATASET_JSON}")
        if len(channels) == 1 and len(shape) == 4 and shape[3] != 1:
            return f"image shape {list(shape)} is 4D, but {DATASET_JSON} declares one channel"
        return None

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        task = self.task_root(root)
        info_path = task / DATASET_JSON
        if not info_path.is_file():
            raise DiscoveryError(f"{DATASET_JSON} is missing", dataset=self.dataset_id,
                                 file=info_path,
                                 hint=f"extract {self.folder}.tar again; dataset.json is part of it")
        info = read_dataset_json(info_path, dataset=self.dataset_id)
        self.check_labels(info, info_path)
        channels = self.channel_names(info, info_path)
        train, test, bad = self.listed(info, info_path)
        yield from bad
        if not (task / "imagesTr").is_dir():
            raise DiscoveryError("imagesTr folder is missing", dataset=self.dataset_id, file=task,
                                 hint=f"extract {self.folder}.tar completely")
        for entry in sorted(task.iterdir()):
            if entry.name in (DATASET_JSON, *LAYOUT):
                continue
            yield Skipped(entry, "hidden or macOS AppleDouble ('._') file, not data"
                          if is_hidden(entry) else "not part of the MSD task layout",
                          hint=None if is_hidden(entry) else "move it out of the task folder")
        metadata = {"msd_task": self.folder, "msd_release": info.get("release")}
        images, skipped = self._listing(task / "imagesTr")
        labels, skipped_labels = self._listing(task / "labelsTr")
        tests, skipped_tests = self._listing(task / "imagesTs")
        yield from skipped + skipped_labels + skipped_tests
        used: set[str] = set()
        for subset, files, split in (("training", images, "train"), ("test", tests, "test")):
            listed: dict[str, str] | set[str] = train if split == "train" else test
            for name, image in files.items():
                case_id = strip_nifti_suffix(name)
                if name not in listed:
                    yield self._not_listed(image, subset, listed)
                    continue
                label = None
                if split == "train":
                    label = labels.get(train[name])
                    if label is None:
                        yield Skipped(image, f"its label labelsTr/{train[name]} is missing",
                                      case_id=case_id,
                                      hint=f"extract {self.folder}.tar completely")
                        continue
                    used.add(label.name)
                problem = self._check_channels(image, channels)
                if problem is not None:
                    yield Skipped(image, problem, case_id=case_id,
                                  hint=f"restore the file from {self.folder}.tar")
                    continue
                yield Case(case_id=case_id, patient_id=case_id, images=(image,), label=label,
                           official_split=split, channel_names=channels, metadata=metadata)
            folder = "imagesTr" if split == "train" else "imagesTs"
            for name in sorted(set(listed) - set(files)):
                yield Skipped(task / folder / name,
                              f"listed in {DATASET_JSON} '{subset}' but missing from {folder}",
                              case_id=strip_nifti_suffix(name),
                              hint=f"extract {self.folder}.tar completely")
        for name, label in labels.items():
            if name not in used:
                yield Skipped(label, "label without a listed image in imagesTr",
                              case_id=strip_nifti_suffix(name),
                              hint="restore the image or dataset.json from the task's tar file")

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.msd import make_msd_task

        return make_msd_task(root, task=self.folder, n_train=n_cases, n_test=1, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    for folder, dataset_id, demo in TASKS:
        yield MSDTask(folder, dataset_id, demo=demo)
