"""Read a DICOM Segmentation (DICOM-SEG) onto the grid of the DICOM series it segments.

* :func:`is_dicom_seg` tells a SEG file (SOP Class UID :data:`SEG_SOP_CLASS`) from anything else
  by its header alone.
* :func:`read_seg` decodes it with highdicom (the ``dicom`` extra, imported lazily), frame by
  frame onto the slices of the referenced series as the one DICOM series model orders them
  (:mod:`harmonize.read.dicom`): the series is the case's image folder, matched by Frame of
  Reference UID and by the SOP Instance UIDs the SEG's frames were derived from. A SEG that
  references instances missing from the folder, or another frame of reference, is a
  :class:`ReadError` naming the file.
* Segments become canonical structure names BY CODE first (segmented property type and its
  modifier, anatomic region and its modifier -> :meth:`Vocabulary.by_code`), then by segment
  label (:func:`match_segment_label`, the one switch point for label matching). A segment that
  maps to no class of the dataset is kept out of the mask and reported in :class:`SegmentInfo`
  with its reason; never silently dropped.
* FRACTIONAL segments are thresholded: a voxel belongs to the segment when its fraction is
  >= :data:`FRACTIONAL_THRESHOLD` (0.5) of MaximumFractionalValue. BINARY segments are taken
  as stored. Segments mapped to the same name are united (OR).
* Overlapping segments are kept: the masks become one label map through
  :func:`harmonize.labels.overlap.combine_structures` (structure ``names[i]`` alone is value
  ``i + 1``; each combination that occurs gets its own value); the returned label
  :class:`Volume` carries ``classes`` and an ``operations`` entry ``{"op": "dicom_seg", ...}``
  listing every segment, its mapping and the reason of each unmapped one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harmonize.errors import HarmonizeError, LabelError, PluginError, ReadError
from harmonize.labels.codes import Code, StructureCodes
from harmonize.labels.vocabulary import Vocabulary
from harmonize.read.dicom import Series
from harmonize.read.volume import Volume

if TYPE_CHECKING:
    from harmonize.labels.roi_names import RoiMatcher

__all__ = ["FRACTIONAL_THRESHOLD", "SEG_SOP_CLASS", "SegmentInfo", "import_highdicom",
           "is_dicom_seg", "match_segment_label", "names_from_labels", "read_label_file", "read_seg",
           "read_seg_label", "segment_codes",
           "segment_infos"]

#: SOP Class UID of the Segmentation Storage IOD (PS3.4 B.5).
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: A FRACTIONAL segment covers a voxel when its fraction is at least this (of the maximum).
FRACTIONAL_THRESHOLD = 0.5


def import_highdicom() -> Any:
    """The ``highdicom`` module, or a :class:`HarmonizeError` naming the extra that installs it."""
    try:
        import highdicom
    except ImportError as exc:
        raise HarmonizeError(
            "reading or writing DICOM-SEG needs the highdicom package",
            hint="install the dicom extra: pip install 'harmonize-med[dicom]'") from exc
    return highdicom


def is_dicom_seg(path: Path) -> bool:
    """True when ``path`` is a file whose SOP Class UID is DICOM Segmentation Storage."""
    path = Path(path)
    if not path.is_file():
        return False
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - not DICOM (NIfTI, NRRD...) or unreadable: not a SEG
        return False
    return str(header.get("SOPClassUID", "")) == SEG_SOP_CLASS


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a SEG: its number, label, codes, the canonical name it maps to (``None``:
    unmapped, ``reason`` says why), how it was matched (``"code"``/``"label"``) and its voxels."""

    number: int
    label: str
    codes: StructureCodes | None
    name: str | None
    matched_by: str | None
    reason: str | None = None
    voxels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"segment": self.number, "label": self.label,
                "codes": None if self.codes is None else str(self.codes),
                "name": self.name, "matched_by": self.matched_by,
                **({"reason": self.reason} if self.reason else {}),
                **({"voxels": self.voxels} if self.voxels is not None else {})}


def _code(item: Any) -> Code:
    return Code(str(item.CodingSchemeDesignator), str(item.CodeValue), str(item.CodeMeaning))


def _first(item: Any, keyword: str) -> Any | None:
    seq = item.get(keyword)
    return seq[0] if seq else None


def segment_codes(item: Any) -> StructureCodes | None:
    """The :class:`StructureCodes` of one SegmentSequence item (pydicom), or ``None`` when its
    codes are missing or use a coding scheme the vocabulary does not know."""
    category = _first(item, "SegmentedPropertyCategoryCodeSequence")
    kind = _first(item, "SegmentedPropertyTypeCodeSequence")
    if category is None or kind is None:
        return None
    modifier = _first(kind, "SegmentedPropertyTypeModifierCodeSequence")
    region = _first(item, "AnatomicRegionSequence")
    region_modifier = None if region is None else _first(region, "AnatomicRegionModifierSequence")
    try:
        return StructureCodes(
            category=_code(category), type=_code(kind),
            modifier=None if modifier is None else _code(modifier),
            region=None if region is None else _code(region),
            region_modifier=None if region_modifier is None else _code(region_modifier))
    except (PluginError, AttributeError):
        return None


def match_segment_label(label: str, vocabulary: Vocabulary,
                        matcher: RoiMatcher | None = None) -> str | None:
    """The class a segment label names: through the dataset's structure-name matcher when given
    (:class:`~harmonize.labels.roi_names.RoiMatcher`: its classes' names and synonyms, then its
    ``roi_patterns``, as RTSTRUCT ROI names are matched), else an exact vocabulary name or
    synonym (case, underscores and spaces ignored); ``None`` when nothing matches."""
    if matcher is not None:
        return matcher.match(label).name
    try:
        return vocabulary.resolve(label)
    except LabelError:
        return None


def segment_infos(dataset: Any, vocabulary: Vocabulary, names: Sequence[str],
                  matcher: RoiMatcher | None = None) -> list[SegmentInfo]:
    """Map every segment of a SEG header (pydicom) to a name of ``names`` (the dataset's
    classes): by code first, then by label; unmapped segments carry their reason."""
    infos = []
    for item in dataset.get("SegmentSequence", ()):
        number, label = int(item.SegmentNumber), str(item.get("SegmentLabel", "") or "")
        codes = segment_codes(item)
        name, how, reason = None, None, None
        by_code = vocabulary.by_code(codes) if codes is not None else None
        by_label = match_segment_label(label, vocabulary, matcher) if label else None
        for candidate, method in ((by_code, "code"), (by_label, "label")):
            if candidate is not None and candidate in names:
                name, how = candidate, method
                break
        if name is None:
            found = by_code or by_label
            coded = f"codes {codes}" if codes is not None else "no usable codes"
            reason = (f"maps to {found!r}, which is not a class of the dataset "
                      f"({', '.join(names)})" if found else
                      f"{coded} and label {label!r} match no vocabulary structure")
        infos.append(SegmentInfo(number, label, codes, name, how, reason))
    return infos


def _series_uids(series: Series) -> list[str]:
    return [str(series.headers[k].get("SOPInstanceUID", "")) for k in series.unique()]


def read_seg(path: Path, series: Series, *, vocabulary: Vocabulary, names: Sequence[str],
             matcher: RoiMatcher | None = None) -> tuple[Volume, list[SegmentInfo]]:
    """The SEG at ``path`` as a label :class:`Volume` on ``series``' grid (X = columns,
    Y = rows, Z = slices in the series model's order) with ``classes``, and its segments.

    Raises :class:`ReadError` naming ``path`` for a file highdicom cannot read, another frame
    of reference, frames derived from instances not in ``series``, or a series that is not one
    regular grid; the combined mask comes from ``combine_structures(names, masks, affine)``.
    """
    from harmonize.labels.overlap import combine_structures
    from harmonize.read.dicom import grid_problems
    from harmonize.read.dicom_volume import refuse

    hd = import_highdicom()
    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - highdicom raises many types on malformed files
        raise ReadError(f"cannot read DICOM-SEG: {type(exc).__name__}: {exc}", file=path,
                        hint="check the file is a complete DICOM Segmentation") from exc
    source_for = str(series.headers[0].get("FrameOfReferenceUID", "") or "")
    seg_for = str(seg.get("FrameOfReferenceUID", "") or "")
    if seg_for != source_for:
        raise ReadError(
            f"DICOM-SEG frame of reference {seg_for or '(none)'} differs from the image series' "
            f"{source_for or '(none)'} ({series.folder})", file=path,
            hint="pair the SEG with the series it was drawn on (same FrameOfReferenceUID)")
    uids = [str(h.get("SOPInstanceUID", "")) for h in series.headers]
    referenced = {sop for _, _, sop in seg.get_source_image_uids()}
    missing = sorted(referenced - set(uids))
    if missing:
        raise ReadError(
            f"DICOM-SEG references {len(missing)} instance(s) not in the image series folder "
            f"{series.folder} (first: {missing[0]})", file=path,
            hint="download the complete referenced series, or pair the SEG with the series its "
                 "ReferencedSeriesSequence names")
    refuse(series, grid_problems(series))
    infos = segment_infos(seg, vocabulary, names, matcher)
    uids = _series_uids(series)
    try:
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, segment_numbers=[i.number for i in infos],
            assert_missing_frames_are_empty=True, ignore_spatial_locations=True,
            rescale_fractional=True, skip_overlap_checks=True)
    except Exception as exc:  # noqa: BLE001 - frames that do not fit the series
        raise ReadError(f"DICOM-SEG frames do not fit the image series {series.folder}: "
                        f"{type(exc).__name__}: {exc}", file=path,
                        hint="run `harmonize validate-dicom` on the case folder") from exc
    fractional = str(seg.get("SegmentationType", "BINARY")) == "FRACTIONAL"
    masks: dict[str, np.ndarray] = {}
    out: list[SegmentInfo] = []
    for k, info in enumerate(infos):
        plane = pixels[..., k]
        mask = (plane >= FRACTIONAL_THRESHOLD) if fractional else (plane > 0)
        mask = np.ascontiguousarray(mask.transpose(2, 1, 0))  # (Z, rows, cols) -> (X, Y, Z)
        out.append(SegmentInfo(info.number, info.label, info.codes, info.name, info.matched_by,
                               info.reason, int(np.count_nonzero(mask))))
        if info.name is not None:
            masks[info.name] = masks[info.name] | mask if info.name in masks else mask
    affine = series.affine()
    if not masks:
        raise LabelError(
            "no segment of the DICOM-SEG maps to a class of the dataset: "
            + "; ".join(f"segment {i.number} {i.label!r}: {i.reason}" for i in out), file=path,
            hint="add the segments' codes or labels to the vocabulary (README: 'Structure "
                 "codes'), or add the class to the dataset's descriptor")
    volume = combine_structures(list(names), masks, affine)
    volume.operations = [{"op": "dicom_seg", "file": path.name,
                          "segmentation_type": "FRACTIONAL" if fractional else "BINARY",
                          **({"threshold": FRACTIONAL_THRESHOLD} if fractional else {}),
                          "segments": [i.to_dict() for i in out],
                          "unmapped": [i.number for i in out if i.name is None]}]
    return volume, out


def read_seg_label(path: Path, folder: Path, names: Sequence[str],
                   matcher: RoiMatcher | None = None) -> Volume:
    """The core reading layer's DICOM-SEG label: the SEG at ``path`` on the one DICOM series in
    the image ``folder``, segments mapped with the installed vocabulary to ``names`` (the
    dataset's classes, in order). See :func:`read_seg`."""
    from harmonize.labels.vocabulary import load_vocabulary
    from harmonize.read.dicom_scan import select_series

    return read_seg(path, select_series(Path(folder)), vocabulary=load_vocabulary(),
                    names=names, matcher=matcher)[0]


def read_label_file(path: Path, images: Sequence[Path], names: Sequence[str],
                    matcher: RoiMatcher | Callable[[], RoiMatcher] | None = None) -> Volume:
    """A label file as a :class:`Volume`: a DICOM-SEG of a case whose image is one DICOM series
    folder through :func:`read_seg_label`, any other file through
    :func:`~harmonize.read.volume.read_volume`. ``matcher`` may be a function making it, called
    only for a DICOM-SEG (building one loads the vocabulary and the plugins)."""
    from harmonize.read.volume import read_volume

    if len(images) == 1 and Path(images[0]).is_dir() and is_dicom_seg(path):
        if callable(matcher):  # a RoiMatcher itself is not callable
            matcher = matcher()
        return read_seg_label(path, images[0], names, matcher)
    return read_volume(path, kind="label")


def names_from_labels(labels: Mapping[str, Sequence[int]]) -> list[str]:
    """The ``names`` list that gives a record's ``labels`` back from ``combine_structures``.

    A structure's own value is its smallest (``names[i]`` alone is ``i + 1``; combinations come
    after every own value, the first one that occurs at ``len(names) + 1``), so the list is
    rebuilt from the own values, positions no structure of this record holds being
    placeholders that match no segment. Used to re-read a DICOM-SEG a manifest record names.
    """
    own = {min(int(v) for v in values): name for name, values in labels.items() if values}
    combos = sorted({int(v) for values in labels.values() for v in values} - set(own))
    size = (combos[0] - 1) if combos else max(own, default=0)
    return [own.get(i + 1, f"\0unused value {i + 1}") for i in range(size)]


def segment_summary(paths: Sequence[Path], names: Sequence[str],
                    matcher: RoiMatcher | None = None) -> list[dict[str, Any]]:
    """Every distinct segment (label, codes, mapping) of the DICOM-SEG files among ``paths``
    (headers only; other files are passed over) with the number of files holding it: what
    ``harmonize discover`` shows."""
    import pydicom

    from harmonize.labels.vocabulary import load_vocabulary

    vocabulary = load_vocabulary()
    counts: dict[tuple[Any, ...], int] = {}
    for path in paths:
        if not is_dicom_seg(path):
            continue
        header = pydicom.dcmread(path, stop_before_pixels=True)
        for info in segment_infos(header, vocabulary, names, matcher):
            key = (info.label, None if info.codes is None else str(info.codes), info.name,
                   info.matched_by, info.reason)
            counts[key] = counts.get(key, 0) + 1
    return [{"label": k[0], "codes": k[1], "name": k[2], "matched_by": k[3],
             **({"reason": k[4]} if k[4] else {}), "files": n} for k, n in counts.items()]
