"""The one reading layer: a plugin's :class:`Case` or a manifest record -> :class:`CaseData`.

Every command reads cases here (``harmonize run`` and ``harmonize manifest``, the loader and its
cache, every export, QA, lesion features, ``check_plugin``), so one set of checks holds for all:

* files exist and are readable volumes (:func:`harmonize.read.volume.read_volume`: truncation,
  NaN voxels, broken affines, declared size within limits before allocating);
* one file per channel: every channel on the first channel's grid (:func:`same_grid`);
  the channel count matches the declared channel names;
* a descriptor's (or the case's own) ``rescale`` (images not stored in physical units, e.g. CT stored +1000) is
  applied here and only here: ``stored * slope + intercept`` as float32, recorded in the image's
  ``operations``; a source manifest record carries it in ``extra["rescale"]`` so reading the
  record gives the same values (a normalized record's files are already in physical units);
* a label that is a DICOM RT Structure Set is rasterized on the series it references
  (:mod:`harmonize.read.rtstruct_label`: ROI names matched to classes, overlaps kept);
* the label map is on the image's grid by the one rule of :mod:`harmonize.read.grid` (a
  misaligned label is refused with the same message everywhere) and holds non-negative integers;
* a plugin case's label values are checked against its descriptor by the callers that map them
  to classes (:func:`harmonize.labels.rules.class_values`); a record may hold values of classes
  not annotated in that case (partial labels: the loader ignores them), which QA reports with
  :func:`unknown_label_values`.

Errors are :class:`ReadError` / :class:`LabelError` naming the dataset, the case and the file.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmonize.errors import HarmonizeError, LabelError, ReadError
from harmonize.gate import confine
from harmonize.jsonio import unescape_name
from harmonize.labels.channels import load_channels
from harmonize.labels.roi_names import RoiMatcher
from harmonize.manifest.records import Case, ManifestRecord
from harmonize.plugin.case import case_rescale
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.descriptor import Descriptor
from harmonize.read.channel_grid import onto_first_grid
from harmonize.read.dicom_seg import is_dicom_seg, names_from_labels, read_label_file
from harmonize.read.grid import in_voxel_order_of, label_on_image_grid
from harmonize.read.rtstruct_label import is_rtstruct, read_rtstruct_label
from harmonize.read.volume import Volume, read_header, read_volume

__all__ = ["CaseData", "case_channels", "missing_file_error", "present_values", "read_case",
           "record_files", "record_rescale", "rescaled", "unknown_label_values"]

_RAS = np.eye(4)


@dataclass
class CaseData:
    """One case as data.

    ``image`` is (X, Y, Z) or (X, Y, Z, C) with channels last, in the file's voxel order or RAS
    (``read_case(..., ras=True)``); with ``image_voxels=False`` its data is a zero-cost broadcast
    stand-in of the right shape (the grid only). ``label`` is ``None`` for an unlabelled case,
    else an unsigned-integer map with exactly the image's spatial shape and affine.
    ``channels`` are the case's channel names, one per channel, or ``None``.
    """

    dataset: str
    case_id: str
    image: Volume
    label: Volume | None
    channels: tuple[str, ...] | None
    image_files: tuple[Path, ...]
    label_file: Path | None

    @property
    def n_channels(self) -> int:
        return self.image.channels

    def channel(self, c: int) -> np.ndarray:
        """Channel ``c`` as a 3D array (a view)."""
        data = self.image.data
        return data if data.ndim == 3 else data[..., c]


def case_channels(plugin: DatasetPlugin, case: Case) -> list[str]:
    """Canonical channel names of the case in its file order: its own names, else the
    descriptor's, else its modality's channel (:meth:`ChannelVocabulary.canonical`; an unknown
    name is a DescriptorError naming the dataset, the case and the closest names)."""
    desc = plugin.descriptor
    return load_channels().canonical(
        case.channel_names or desc.channels, modality=desc.modality, dataset=desc.id,
        case=case.case_id, synonyms=desc.channel_synonyms)


def record_files(record: ManifestRecord, base: Path) -> tuple[list[Path], Path | None]:
    """Image paths (one per entry of ``image``) and mask path of a record whose paths are
    relative to ``base`` (the manifest's folder), each through the path gate
    (:func:`harmonize.gate.confine`: inside ``base`` or a trusted root, else a ManifestError).
    Non-UTF-8 bytes escaped by :mod:`harmonize.jsonio` are unescaped first."""
    base = Path(base)
    images = [record.image] if isinstance(record.image, str) else list(record.image)
    dataset, case = record.dataset, record.case_id
    paths = [confine(unescape_name(p), base, what="image path", dataset=dataset, case=case)
             for p in images]
    mask = (confine(unescape_name(record.mask), base, what="mask path", dataset=dataset, case=case)
            if record.mask else None)
    return paths, mask


def missing_file_error(record: ManifestRecord, path: Path, base: Path, what: str) -> ReadError:
    """The error for a record's ``what`` ("image"/"mask") file at ``path`` that is not there."""
    return ReadError(
        f"{what} file referenced by the manifest does not exist",
        dataset=record.dataset, case=record.case_id, file=path,
        hint=f"restore the file or regenerate the manifest (record paths are relative to the "
             f"manifest's folder {base})",
    )


_COUNT_SLAB = 1 << 20  # voxels per bincount call: its intp copy stays small (8 MB)


def present_values(label: np.ndarray) -> list[int]:
    """Distinct values of an integer label map, ascending.

    uint8/uint16 maps (nearly every label file) are counted with ``np.bincount`` slab by slab
    along the slowest axis, without a full-size copy or sort; other types use ``np.unique``."""
    data = np.asarray(label)
    if data.dtype.kind != "u" or data.dtype.itemsize > 2 or not data.size:
        return [int(v) for v in np.unique(data)]
    slowest = int(np.argmax(np.abs(data.strides))) if data.ndim else 0
    moved = np.moveaxis(data, slowest, 0) if data.ndim else data.reshape(1)
    step = max(1, _COUNT_SLAB // max(1, moved[0].size))
    counts = np.zeros(1 << (8 * data.dtype.itemsize), dtype=np.int64)
    for start in range(0, moved.shape[0], step):
        slab = moved[start:start + step].ravel(order="K")
        counts[: int(slab.max()) + 1] += np.bincount(slab)
    return [int(v) for v in np.flatnonzero(counts)]


def read_case(
    source: Case | ManifestRecord,
    *,
    plugin: DatasetPlugin | None = None,
    base: Path | None = None,
    label: bool = True,
    image_voxels: bool = True,
    ras: bool = False,
    irregular_dicom: str = "refuse",
) -> CaseData:
    """Read and check one case (see the module doc for the checks).

    ``source`` is a plugin's :class:`Case` (give its ``plugin``: its own readers and channel
    names are used) or a :class:`ManifestRecord` of any stage (give ``base``, the manifest's
    folder, which its paths are relative to). ``label=False`` skips the label map;
    ``image_voxels=False`` reads only the image header (the label is still checked against the
    image grid); ``ras=True`` reorients both to RAS+ (closest canonical, never interpolated).
    ``irregular_dicom`` is passed to :func:`~harmonize.read.volume.read_volume` for DICOM folders
    of a plugin case (``"resample"``: the opt-in repair of an irregular series; the volume's
    ``operations`` record it).
    """
    if isinstance(source, ManifestRecord):
        if base is None:
            raise TypeError("read_case(record) needs base=<the manifest's folder>")
        data = _read_record(source, Path(base), label=label, image_voxels=image_voxels)
    else:
        if plugin is None:
            raise TypeError("read_case(case) needs plugin=<the case's DatasetPlugin>")
        data = _read_plugin_case(plugin, source, label=label, image_voxels=image_voxels,
                                 irregular_dicom=irregular_dicom)
    if ras:
        moved, affine = in_voxel_order_of(data.image.data, data.image.affine, _RAS)
        data.image = Volume(moved, affine, "image")
        if data.label is not None:
            data.label = Volume(in_voxel_order_of(data.label.data, data.label.affine, _RAS)[0],
                                affine, "label", classes=data.label.classes)
    return data


# ------------------------------------------------------------------------------ plugin cases


def _read_plugin_case(plugin: DatasetPlugin, case: Case, *, label: bool, image_voxels: bool,
                      irregular_dicom: str = "refuse") -> CaseData:
    dataset = plugin.dataset_id
    names = case_channels(plugin, case)
    with _naming(dataset, case.case_id, case.images[0]):
        custom = plugin.read_image(case) if image_voxels or plugin.reads_images else None
        if custom is not None:
            image = Volume(np.asarray(custom.data), np.asarray(custom.affine), "image")
        elif image_voxels:
            image = _stack_channels(case.images, len(names) if names else 1, irregular_dicom,
                                    plugin.descriptor.channel_grid)
        else:
            image = _grid_of(case.images[0], irregular_dicom)
        if image_voxels or custom is not None:
            _check_channel_count(image, len(names) if names else 1, names,
                                 file=case.images[0] if len(case.images) == 1 else None)
            image = rescaled(image, case_rescale(case, plugin.descriptor.rescale))
    label_volume = None
    if label:
        with _naming(dataset, case.case_id, case.label):
            raw = plugin.read_label(case)
            if raw is None and case.label is not None:
                raw = (read_rtstruct_label(case.label, case.images[0], plugin.descriptor)
                       if is_rtstruct(case.label) else
                       read_label_file(case.label, case.images, list(plugin.descriptor.classes),
                                       functools.partial(RoiMatcher.from_descriptor,
                                                         plugin.descriptor)))
            if raw is not None:
                label_volume = label_on_image_grid(
                    image, Volume(raw.data, raw.affine, "label", classes=raw.classes))
                label_volume.operations = list(raw.operations)  # e.g. a DICOM-SEG's segments
    return CaseData(dataset, case.case_id, image, label_volume,
                    tuple(names) if names else None, case.images, case.label)


# ----------------------------------------------------------------------------------- records


def _read_record(record: ManifestRecord, base: Path, *, label: bool, image_voxels: bool
                 ) -> CaseData:
    images, mask = record_files(record, base)
    names = list(record.channels) if record.channels else None
    for path in [*images, *([mask] if mask is not None and label else [])]:
        if not path.exists():
            raise missing_file_error(record, path, base, "mask" if path == mask else "image")
    with _naming(record.dataset, record.case_id, images[0], hint=_source_hint(record, "image")):
        expected = len(names) if names else max(
            len(images), record.shape[3] if len(record.shape) == 4 else 1)
        if image_voxels:
            image = _stack_channels(images, expected, channel_grid=_channel_grid(record, images))
            _check_channel_count(image, expected, names,
                                 file=images[0] if len(images) == 1 else None)
            image = rescaled(image, record_rescale(record))
        else:
            image = _grid_of(images[0])
    label_volume = None
    if label and mask is not None:
        with _naming(record.dataset, record.case_id, mask,
                     hint=_source_hint(record, "mask")):
            raw = _record_label(record, mask, images)
            label_volume = label_on_image_grid(image, raw)
            label_volume.operations = list(raw.operations)
    return CaseData(record.dataset, record.case_id, image, label_volume,
                    tuple(names) if names else None, tuple(images), mask if label else None)


def _record_label(record: ManifestRecord, mask: Path, images: list[Path]) -> Volume:
    """A record's mask as a label volume. An RTSTRUCT or DICOM-SEG mask is read again the way
    its dataset reads it (the descriptor's classes and structure-name patterns, from the
    installed plugins), and must give the record's own class table: a structure that maps
    differently now would shift every combination value, so that is a :class:`LabelError`."""
    dicom_label = len(images) == 1 and images[0].is_dir() and (
        is_rtstruct(mask) or is_dicom_seg(mask))
    if not dicom_label:
        return read_label_file(mask, images, names_from_labels(record.labels))
    from harmonize.labels.vocabulary import load_vocabulary
    from harmonize.plugin.catalog import DESCRIPTORS_ENV

    descriptor, matcher = _dataset_matcher(record.dataset, os.environ.get(DESCRIPTORS_ENV, ""))
    raw = (read_rtstruct_label(mask, images[0], descriptor, matcher=matcher) if is_rtstruct(mask)
           else read_label_file(mask, images, list(descriptor.classes), matcher))
    vocabulary = load_vocabulary()
    now = {vocabulary.resolve(name): sorted(values)
           for name, values in (raw.classes or {}).items()}
    if now != {name: sorted(values) for name, values in record.labels.items()}:
        raise LabelError(
            f"the label's structures map to {now}, the manifest's record says "
            f"{dict(record.labels)}", file=mask,
            hint="the dataset's descriptor or the vocabulary changed since the manifest was "
                 "written: run `harmonize manifest` again")
    return raw


def _channel_grid(record: ManifestRecord, images: list[Path]) -> str:
    """The dataset's ``channel_grid`` for a source record with one file per channel (``same``
    for one file, or a dataset no installed plugin knows)."""
    if len(images) < 2:
        return "same"
    from harmonize.plugin.catalog import DESCRIPTORS_ENV

    try:
        return _dataset_matcher(record.dataset, os.environ.get(DESCRIPTORS_ENV, ""))[0].channel_grid
    except HarmonizeError:
        return "same"


@functools.lru_cache(maxsize=64)
def _dataset_matcher(dataset: str, descriptors: str) -> tuple[Descriptor, RoiMatcher]:
    """The installed dataset's descriptor and structure-name matcher (cached per process and
    ``HARMONIZE_DESCRIPTORS`` value: an export re-reads hundreds of records of one dataset)."""
    from harmonize.plugin.catalog import load_catalog

    descriptor = load_catalog().get(dataset).descriptor
    return descriptor, RoiMatcher.from_descriptor(descriptor)


def unknown_label_values(record: ManifestRecord, values: Iterable[int]) -> list[int]:
    """The non-zero ``values`` that no class and no instance of ``record`` lists, ascending."""
    known = {0, *(int(v) for listed in record.labels.values() for v in listed)}
    known |= {int(i["value"]) for i in record.extra.get("instances") or () if "value" in i}
    return sorted({int(v) for v in values} - known)


def _source_hint(record: ManifestRecord, what: str) -> str | None:
    if record.stage != "source":
        return None
    return (f"if the release stores this {what} in a form only its plugin reads (PNG stacks, "
            "one file per structure), load the manifest `harmonize run` writes")


# ----------------------------------------------------------------------------------- helpers


def rescaled(image: Volume, rescale: tuple[float, float] | None) -> Volume:
    """``image`` in physical units: ``stored * slope + intercept`` (float32) with the operation
    appended to its ``operations``; unchanged when ``rescale`` is ``None``."""
    if rescale is None:
        return image
    slope, intercept = rescale
    data = np.asarray(image.data, dtype=np.float32)
    data = data * np.float32(slope) + np.float32(intercept)
    op = {"op": "rescale", "slope": slope, "intercept": intercept, "source": "descriptor"}
    return Volume(data.astype(np.float32, copy=False), image.affine, image.kind,
                  operations=[*image.operations, op])


def record_rescale(record: ManifestRecord) -> tuple[float, float] | None:
    """The rescale a source record's image files need (written by the manifest builder from
    the descriptor); ``None`` for normalized records, whose files are in physical units."""
    value = record.extra.get("rescale") if record.stage == "source" else None
    if not value:
        return None
    return float(value.get("slope", 1.0)), float(value["intercept"])



def _stack_channels(paths: Sequence[Path], n_channels: int, irregular_dicom: str = "refuse",
                    channel_grid: str = "same") -> Volume:
    """One file (3D, or 4D when ``n_channels`` > 1) or one 3D file per channel on one grid;
    with ``channel_grid="first"`` a channel on another grid is resampled (linear) onto the first
    channel's grid (a PET on its CT's grid), recorded in the volume's operations."""
    if len(paths) == 1:
        return read_volume(paths[0], kind="image", allow_channels=n_channels > 1,
                           irregular_dicom=irregular_dicom)
    parts = [read_volume(p, kind="image", allow_channels=False, irregular_dicom=irregular_dicom)
             for p in paths]
    operations = onto_first_grid(paths, parts, channel_grid)
    stacked = Volume(np.stack([p.data for p in parts], axis=-1), parts[0].affine, "image")
    stacked.operations = operations
    return stacked


def _grid_of(path: Path, irregular_dicom: str = "refuse") -> Volume:
    """A stand-in for the image at ``path``: its shape and affine, no voxels read."""
    header = read_header(path, irregular_dicom=irregular_dicom)
    shape = tuple(int(s) for s in header.shape[:3])
    return Volume(np.broadcast_to(np.zeros((), dtype=np.uint8), shape), header.affine, "image")


def _check_channel_count(image: Volume, n: int, names: list[str] | None, *,
                         file: Path | None) -> None:
    """``image`` has ``n`` channels: 3D for one, (X, Y, Z, n) for several."""
    data = image.data
    if data.ndim not in (3, 4) or (data.ndim == 4) != (n > 1) or (n > 1 and data.shape[3] != n):
        expected = "a 3D volume" if n == 1 else f"{n} channels" + (f" {names}" if names else "")
        raise ReadError(
            f"image of shape {data.shape} where {expected} was expected", file=file,
            hint="check the file, and the channels declared in the dataset's descriptor",
        )


class _naming:
    """Context manager: re-raise a :class:`HarmonizeError` (same class) naming the dataset, case
    and file it lacks; ``hint`` is appended to read errors (a file that cannot be read), never to
    label errors (a label off its grid is wrong whichever manifest points at it)."""

    def __init__(self, dataset: str, case_id: str, file: Path | None, *,
                 hint: str | None = None) -> None:
        self.dataset, self.case_id, self.file, self.hint = dataset, case_id, file, hint

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if not isinstance(exc, HarmonizeError) or (exc.dataset and exc.case):
            return
        hint = exc.hint
        if self.hint and isinstance(exc, ReadError):
            hint = f"{hint}; {self.hint}" if hint else self.hint
        raise type(exc)(exc.message, dataset=exc.dataset or self.dataset,
                        case=exc.case or self.case_id, file=exc.file or self.file,
                        hint=hint) from exc
