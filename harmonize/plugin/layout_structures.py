"""One mask file per structure (a layout group's ``structures`` template): find and combine them.

Discovery (:func:`find_structures`) lists a case's structure folder, maps each file's
``{structure}`` text to a class (``structure_files``, else the text itself) and reports files it
cannot map; reading (:func:`read_structures`) lists the folder again (stateless, so any worker can
read a case) and combines the masks with
:func:`~harmonize.labels.overlap.combine_structures`: overlaps are kept, structure ``i`` of the
descriptor's classes is value ``i``, a structure without a file is not annotated in the case.
Several files mapping to one class (one file per lesion: ``livertumor01``, ``livertumor02``) are
that class's parts: their union is its mask. A structure file may be a DICOM series folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from harmonize.errors import LabelError
from harmonize.labels.overlap import combine_structures
from harmonize.plugin.case import Case, Skipped
from harmonize.plugin.descriptor import Descriptor
from harmonize.plugin.layout_paths import PLACEHOLDER
from harmonize.read.grid import same_grid
from harmonize.read.volume import Header, Volume, read_header, read_volume


def structure_names(desc: Descriptor) -> list[str]:
    """The dataset's structures in value order (checked on load: class ``i`` is value ``i``)."""
    return [name for name, _ in sorted(desc.classes.items(), key=lambda item: item[1][0])]


def file_regex(file_template: str, values: Mapping[str, str], capture: str = "structure"
               ) -> re.Pattern[str]:
    """The regex of a structure (or rater) file name: the template's placeholders filled from
    ``values``, ``{capture}`` captured."""
    parts, pos = [], 0
    for found in PLACEHOLDER.finditer(file_template):
        parts.append(re.escape(file_template[pos:found.start()]))
        name = found.group(1)
        parts.append(f"(?P<{capture}>.+)" if name == capture else re.escape(values[name]))
        pos = found.end()
    parts.append(re.escape(file_template[pos:]))
    return re.compile("".join(parts))


def structure_files(desc: Descriptor, folder: Path, file_template: str,
                    values: Mapping[str, str], exclude: tuple[Path, ...] = ()
                    ) -> tuple[dict[str, tuple[Path, ...]], list[Skipped]]:
    """Class -> its files (one, or several parts to unite) for every structure file in
    ``folder`` (classes in value order, files by name), and a :class:`Skipped` per file matching
    the template whose structure text maps to no class (the case's own image files,
    ``exclude``, are not structures)."""
    pattern = file_regex(file_template, values)
    found: dict[str, tuple[Path, ...]] = {}
    skipped: list[Skipped] = []
    if not folder.is_dir():
        return found, skipped
    for path in sorted(folder.iterdir()):
        match = pattern.fullmatch(path.name)
        if match is None or path.name.startswith((".", "_")) or path in exclude:
            continue
        text = match.group("structure")
        name = desc.structure_files.get(text, text)
        if name not in desc.classes:
            skipped.append(Skipped(path, f"structure file {text!r} maps to no class",
                                   case_id=values.get("case"),
                                   hint=f"add it to structure_files or classes in the "
                                   f"descriptor ({desc.source_file or desc.id})"))
        else:
            found[name] = (*found.get(name, ()), path)
    order = structure_names(desc)
    return dict(sorted(found.items(), key=lambda item: order.index(item[0]))), skipped


def read_structures(desc: Descriptor, case: Case, file_template: str) -> Volume:
    """The case's combined label map (``case.label`` is its structure folder)."""
    assert case.label is not None
    values = {"case": case.case_id, "patient": case.patient_id,
              "session": str(case.metadata.get("session", ""))}
    files, _ = structure_files(desc, case.label, file_template, values, exclude=case.images)
    if not files:
        raise LabelError("no structure file left in the case's structure folder",
                         file=case.label, hint="re-run discovery; files were removed since")
    masks: dict[str, _LazyMask] = {}
    first: tuple[str, Header] | None = None
    for name, paths in files.items():
        for path in paths:
            header = read_header(path)
            if first is None:
                first = (name, header)
            elif _shape3(header) != _shape3(first[1]) or not same_grid(header.affine,
                                                                        first[1].affine):
                raise LabelError(f"structure {name!r} has shape {list(_shape3(header))} and "
                                 f"orientation {header.orientation}, structure {first[0]!r} "
                                 f"{list(_shape3(first[1]))} and {first[1].orientation}",
                                 file=path, hint="every structure mask of a case must be on one grid")
        assert first is not None
        masks[name] = _LazyMask(paths, name, _shape3(first[1]))
    assert first is not None
    return combine_structures(structure_names(desc), masks,  # type: ignore[arg-type]
                              np.asarray(first[1].affine))


def _shape3(header: Header) -> tuple[int, ...]:
    shape = tuple(header.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


class _LazyMask:
    """A structure's file(s) whose voxels are read when :func:`combine_structures` asks for them
    (once, twice where structures overlap), so a case's masks are never all in memory at once
    (a hundred whole-body CT masks would need gigabytes). Several files are united."""

    def __init__(self, paths: tuple[Path, ...], name: str, shape: tuple[int, ...]) -> None:
        self.paths, self.name, self.shape = paths, name, shape

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        mask = np.zeros(self.shape, dtype=bool)
        for path in self.paths:
            volume = read_volume(path, kind="label", allow_channels=False)
            mask |= _binary(volume.data, self.name, path).reshape(self.shape)
        return mask if dtype is None else mask.astype(dtype)  # type: ignore[call-overload]


def _binary(data: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A structure file's mask: 0 outside, one non-zero value (1, or e.g. 255) inside."""
    array = np.asarray(data)
    inside = array != 0
    values = array[inside]
    if values.size and values.min() != values.max():  # no sort: min/max tell two values apart
        raise LabelError(f"structure {name!r} holds different non-zero values "
                         f"({values.min()}..{values.max()})", file=path,
                         hint="a structure file is a binary mask (0 and one other value)")
    return inside
