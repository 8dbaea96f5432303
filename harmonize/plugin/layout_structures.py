"""One mask file per structure (a layout group's ``structures`` template): find and combine them.

Discovery (:func:`find_structures`) lists a case's structure folder, maps each file's
``{structure}`` text to a class (``structure_files``, else the text itself) and reports files it
cannot map; reading (:func:`read_structures`) lists the folder again (stateless, so any worker can
read a case) and combines the masks with
:func:`~harmonize.labels.overlap.combine_structures`: overlaps are kept, structure ``i`` of the
descriptor's classes is value ``i``, a structure without a file is not annotated in the case.
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
from harmonize.read.grid import describe_grid, same_grid
from harmonize.read.volume import Volume, read_volume


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
                    ) -> tuple[dict[str, Path], list[Skipped]]:
    """Class -> file for every structure file in ``folder`` (in the classes' value order), and a
    :class:`Skipped` per file matching the template whose structure text maps to no class
    (the case's own image files, ``exclude``, are not structures)."""
    pattern = file_regex(file_template, values)
    found: dict[str, Path] = {}
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
        elif name in found:
            skipped.append(Skipped(path, f"second file for structure {name!r} (first: "
                                   f"{found[name].name})", case_id=values.get("case"),
                                   hint="map each file to its own class in structure_files"))
        else:
            found[name] = path
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
    masks: dict[str, np.ndarray] = {}
    affine = None
    first: Volume | None = None
    for name, path in files.items():
        volume = read_volume(path, kind="label", allow_channels=False)
        if first is None:
            first, affine = volume, volume.affine
        elif volume.shape != first.shape or not same_grid(volume.affine, first.affine):
            raise LabelError(f"structure {name!r} is on grid {describe_grid(volume)}, not the "
                             f"first structure's {describe_grid(first)}", file=path,
                             hint="every structure mask of a case must be on one grid")
        masks[name] = _binary(volume.data, name, path)
    return combine_structures(structure_names(desc), masks, np.asarray(affine))


def _binary(data: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A structure file's mask: 0 outside, one non-zero value (1, or e.g. 255) inside."""
    array = np.asarray(data)
    inside = array != 0
    values = np.unique(array[inside]) if inside.any() else array[:0]
    if values.size > 1:
        raise LabelError(f"structure {name!r} holds {values.size} different non-zero values "
                         f"({values[:5].tolist()}...)", file=path,
                         hint="a structure file is a binary mask (0 and one other value)")
    return inside
