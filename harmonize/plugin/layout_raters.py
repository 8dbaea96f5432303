"""Several label files per case, one per rater (a label template with ``{rater}`` in its file
name, and the group's ``raters`` rule).

* ``raters: {choose: <rater>}``: that rater's file is the case's label (plain reading).
* ``raters: union`` / ``majority``: per structure (each class of the descriptor, whose values
  may merge several label values), a voxel is inside when any rater / more than half of the
  case's raters (strictly: 2 of 3, 3 of 4) put it in the class; the structures are combined with
  :func:`~harmonize.labels.overlap.combine_structures`, so where the raters' structures overlap
  every structure keeps its voxels.

Each rater's file is decoded by ``value_ranges`` first when the descriptor has them (masks
holding one value per nodule read as one class). Like structure folders, rater files are listed
again when read (stateless).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.errors import LabelError
from harmonize.labels.overlap import combine_structures
from harmonize.plugin.case import Case
from harmonize.plugin.descriptor import Descriptor
from harmonize.plugin.layout_structures import file_regex
from harmonize.plugin.layout_values import map_ranges
from harmonize.read.grid import describe_grid, same_grid
from harmonize.read.volume import Volume, read_volume


def rater_files(folder: Path, file_template: str, values: dict[str, str]) -> dict[str, Path]:
    """Rater text -> file for every file in ``folder`` matching the template, sorted by rater."""
    if not folder.is_dir():
        return {}
    pattern = file_regex(file_template, values, capture="rater")
    found = {}
    for path in sorted(folder.iterdir()):
        match = pattern.fullmatch(path.name)
        if match is not None and not path.name.startswith((".", "_")):
            found[match.group("rater")] = path
    return found


def read_raters(desc: Descriptor, case: Case, file_template: str, rule: str) -> Volume:
    """The case's label from its rater files in ``case.label`` (a folder) by ``rule``."""
    assert case.label is not None
    values = {"case": case.case_id, "patient": case.patient_id,
              "session": str(case.metadata.get("session", ""))}
    files = rater_files(case.label, file_template, values)
    if not files:
        raise LabelError("no rater file left in the case's label folder", file=case.label,
                         hint="re-run discovery; files were removed since")
    maps: list[np.ndarray] = []
    first: Volume | None = None
    for path in files.values():
        volume = read_volume(path, kind="label")
        if first is None:
            first = volume
        elif volume.shape != first.shape or not same_grid(volume.affine, first.affine):
            raise LabelError(f"rater file on grid {describe_grid(volume)}, not the first "
                             f"rater's {describe_grid(first)}", file=path,
                             hint="every rater's label of a case must be on one grid")
        data = np.asarray(volume.data)
        maps.append(map_ranges(data, desc.value_ranges, path) if desc.value_ranges else data)
    assert first is not None
    need = 1 if rule == "union" else len(maps) // 2 + 1
    masks = {}
    for name, members in desc.classes.items():
        votes = np.zeros(first.shape, dtype=np.uint16)
        for data in maps:
            votes += np.isin(data, np.asarray(members))
        masks[name] = votes >= need
    return combine_structures(list(desc.classes), masks, first.affine)
