"""Structure masks that may overlap -> one label map whose classes are value sets, and back.

A release may ship one mask per structure (one file per organ, RTSTRUCT ROIs, DICOM-SEG segments),
and structures may overlap (a tumour inside its organ, a tract inside the brain mask). A label
map holds one value per voxel, so :func:`combine_structures` gives every combination of
structures that occurs its own value and maps each structure to the set of values that contain
it (the manifest's class -> values design), so every structure's voxels come back exactly
(:func:`structure_masks`).

Values are stable across the cases of a dataset: structure ``names[i]`` alone is ``i + 1``;
combinations of two or more structures get ``len(names) + 1`` onwards, in ascending order of
their sorted member indices (so they depend on the case: the record's class table says which).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from harmonize.errors import LabelError
from harmonize.read.volume import Volume

__all__ = ["combine_structures", "structure_masks"]

#: more structures than this cannot be told apart in uint16 label maps with their combinations
MAX_STRUCTURES = 60_000


def combine_structures(
    names: Sequence[str], masks: Mapping[str, np.ndarray], affine: np.ndarray
) -> Volume:
    """One label :class:`Volume` (with ``classes``) holding every structure of ``masks``.

    ``names`` is the full ordered list of structures the dataset can have; ``masks`` holds a
    boolean (or 0/1) array per structure this case *has*, all of one 3D shape. A structure absent
    from ``masks`` is not annotated in this case (it gets no class); one whose mask is empty is
    annotated and absent (its class lists its own value only). The label is uint8 when every
    value fits, else uint16; a :class:`LabelError` names the problem when masks disagree in shape,
    hold other values than 0/1, or name a structure outside ``names``.
    """
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise LabelError(f"structure names are not unique: {list(names)}")
    if len(names) > MAX_STRUCTURES:
        raise LabelError(f"{len(names)} structures; at most {MAX_STRUCTURES} are supported")
    unknown = [n for n in masks if n not in index]
    if unknown:
        raise LabelError(f"structure(s) {unknown} are not among the dataset's {list(names)}",
                         hint="list every structure in the dataset's descriptor")
    order = sorted(masks, key=index.__getitem__)
    shape = _common_shape(masks, order)
    count = np.zeros(shape, dtype=np.uint16)
    label = np.zeros(shape, dtype=np.uint16)
    for name in order:
        mask = _as_bool(masks[name], name)
        count += mask
        label[mask] = index[name] + 1  # right wherever one structure covers the voxel
    classes = {name: [index[name] + 1] for name in order}
    shared = np.flatnonzero(count.reshape(-1) > 1)
    del count
    if shared.size:
        # second pass over the masks, at the shared voxels only (no copy of every mask is kept)
        if len(order) <= 64:  # membership as one integer per voxel: a 1-D unique, ~50x faster
            codes = np.zeros(shared.size, dtype=np.uint64)
            for j, name in enumerate(order):
                codes |= (_as_bool(masks[name], name).reshape(-1)[shared].astype(np.uint64)
                          << np.uint64(j))
            unique_codes, inverse = np.unique(codes, return_inverse=True)
            combos = ((unique_codes[:, None] >> np.arange(len(order), dtype=np.uint64))
                      & np.uint64(1)).astype(bool)
        else:
            member_bits = np.stack(
                [_as_bool(masks[name], name).reshape(-1)[shared] for name in order], axis=1)
            combos, inverse = np.unique(member_bits, axis=0, return_inverse=True)
        # rank combinations by their sorted member indices (np.unique's row order is not that)
        members = [tuple(index[order[j]] for j in np.flatnonzero(row)) for row in combos]
        rank = sorted(range(len(members)), key=members.__getitem__)
        first = len(names) + 1
        if first + len(members) - 1 > np.iinfo(np.uint16).max:
            raise LabelError(f"{len(members)} combinations of overlapping structures do not fit "
                             "a uint16 label map", hint="split the structures into two datasets")
        value_of = np.empty(len(members), dtype=np.uint16)
        for position, combo in enumerate(rank):
            value_of[combo] = first + position
            for member in members[combo]:
                classes[names[member]].append(first + position)
        label.reshape(-1)[shared] = value_of[inverse.reshape(-1)]
    top = int(label.max()) if label.size else 0
    data = label.astype(np.uint8) if top <= np.iinfo(np.uint8).max else label
    return Volume(data, np.asarray(affine, dtype=np.float64), "label",
                  classes={name: sorted(values) for name, values in classes.items()})


def structure_masks(label: Volume | np.ndarray,
                    classes: Mapping[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Each structure's boolean mask from a combined label map (``classes`` defaults to the
    volume's own): the exact inverse of :func:`combine_structures`."""
    if classes is None:
        if not isinstance(label, Volume) or label.classes is None:
            raise TypeError("structure_masks needs classes= or a label Volume with classes")
        classes = label.classes
    data = label.data if isinstance(label, Volume) else np.asarray(label)
    return {name: np.isin(data, np.asarray(list(values), dtype=np.int64))
            for name, values in classes.items()}


def _common_shape(masks: Mapping[str, np.ndarray], order: Sequence[str]) -> tuple[int, ...]:
    if not order:
        raise LabelError("no structure mask to combine",
                         hint="a case without structure files is unlabelled: set label=None")
    shape = tuple(np.shape(masks[order[0]]))
    if len(shape) != 3:
        raise LabelError(f"structure {order[0]!r} has shape {list(shape)}, not 3D")
    for name in order[1:]:
        if tuple(np.shape(masks[name])) != shape:
            raise LabelError(f"structure {name!r} has shape {list(np.shape(masks[name]))} where "
                             f"{order[0]!r} has {list(shape)}",
                             hint="every structure mask of a case must be on one grid")
    return shape


def _as_bool(mask: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype == np.bool_:
        return array
    if array.size and (array.min() < 0 or array.max() > 1):
        raise LabelError(f"structure {name!r} holds values other than 0 and 1 "
                         f"(range {array.min()}..{array.max()})",
                         hint="a structure mask is binary; give one mask per structure")
    if array.dtype.kind == "f" and not np.array_equal(array, np.rint(array)):
        raise LabelError(f"structure {name!r} holds fractional values",
                         hint="threshold fractional masks before combining")
    return array.astype(bool)
