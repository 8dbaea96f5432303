"""``harmonize export dicom-seg``: a case's mask as a DICOM Segmentation of its SOURCE series.

What is supported, and why:

* **Source-stage records** (``harmonize manifest``) whose image is ONE DICOM series folder. Their
  mask is on the source grid (the reading layer checks it), so every SEG frame is derived from
  exactly one source slice and the SEG references the series' own SOP Instance UIDs, Study and
  Frame of Reference: viewers overlay it on the scan the dataset ships.
* **Normalized records** (``harmonize run``) are refused: their mask is resampled to a RAS grid
  that no DICOM instance has, and mapping it back would resample labels twice. Export from the
  source manifest instead (same cases, same labels).
* **Cases not from DICOM** (NIfTI, NRRD images) are refused: a SEG needs source instances, and
  synthesizing a DICOM series would produce a study no archive holds.
* **Datasets whose plugin places labels itself** (overrides ``read_label``: PNG stacks, reader
  XML, labels matched by InstanceNumber) are refused: their source record's mask file is not
  the label on the source grid.

Each class of the record present in the mask becomes one BINARY segment (overlapping classes,
e.g. ``kidney`` and ``kidney tumor``, overlap as SEG allows), described with the vocabulary's
codes (category, type, side modifier, anatomic region and its modifier; a class without codes is
refused naming it) and algorithm identification ``harmonize <version>`` (type SEMIAUTOMATIC:
the dataset's annotation, mapped by harmonize). Frames without any segment are omitted. Files
are written atomically as ``<out>/<stem>.seg.dcm`` (stem: the case id, or
``<dataset>_<case id>`` for several datasets) while the command holds the folder lock.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.errors import ErrorRecord
from harmonize.export import Entry, ExportError, load_entries, run_cases
from harmonize.files import atomic_path
from harmonize.labels.codes import Code, StructureCodes
from harmonize.labels.vocabulary import Vocabulary, load_vocabulary
from harmonize.read.case import read_case
from harmonize.read.dicom_scan import select_series
from harmonize.read.dicom_seg import import_highdicom

__all__ = ["SUFFIX", "DicomSegResult", "export_dicom_seg", "segmentation_of"]

SUFFIX = ".seg.dcm"


@dataclass
class DicomSegResult:
    """What the export wrote: per case its file, segments, bytes and seconds; errors."""

    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[ErrorRecord] = field(default_factory=list)


@dataclass(frozen=True)
class _Task:
    entry: Entry
    out: Path


def _concept(code: Code) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


def segment_description(hd: Any, number: int, name: str, codes: StructureCodes) -> Any:
    """A highdicom SegmentDescription of class ``name`` with its vocabulary ``codes``."""
    from harmonize import __version__

    desc = hd.seg.SegmentDescription(
        segment_number=number, segment_label=name[:64],
        segmented_property_category=_concept(codes.category),
        segmented_property_type=_concept(codes.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="harmonize", version=__version__, source="harmonize",
            family=_concept(Code("DCM", "123109", "Manual Processing"))),
        anatomic_regions=[_concept(codes.region)] if codes.region else None)
    if codes.modifier is not None:
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _concept(codes.modifier)]
    if codes.region_modifier is not None:
        desc.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [
            _concept(codes.region_modifier)]
    return desc


def _check_supported(entry: Entry) -> Path:
    """The record's DICOM series folder, or the :class:`ExportError` saying what is refused."""
    record = entry.record
    if record.stage != "source":
        raise entry.error(
            "a DICOM-SEG must reference the source series, but this record is normalized "
            "(its mask is resampled to a grid no DICOM instance has)", kind=ExportError,
            hint="export from the source manifest written by `harmonize manifest`")
    images = entry.image_paths()
    if len(images) != 1 or not images[0].is_dir():
        raise entry.error(
            "the case's image is not a DICOM series folder; DICOM-SEG export needs the source "
            "instances to reference (no series is synthesized)", kind=ExportError,
            file=images[0], hint="export this dataset with `harmonize export nnunet|monai`")
    if record.mask is None:
        raise entry.error("the case has no mask", kind=ExportError,
                          hint="unlabelled cases have nothing to export")
    if _plugin_places_labels(record.dataset):
        raise entry.error(
            f"dataset {record.dataset!r} has its labels placed on the series by its plugin "
            "(read_label), so the source mask file is not the label on the source grid",
            kind=ExportError, hint="export datasets whose mask files (or DICOM-SEG) lie on the "
            "series as released")
    return images[0]


@cache
def _plugin_places_labels(dataset: str) -> bool:
    """True when the installed plugin of ``dataset`` overrides ``read_label`` (unknown: False)."""
    from harmonize.plugin.catalog import load_catalog
    from harmonize.plugin.dataset import DatasetPlugin

    plugin = load_catalog().datasets.get(dataset)
    return plugin is not None and type(plugin).read_label is not DatasetPlugin.read_label


def segmentation_of(entry: Entry, vocabulary: Vocabulary) -> tuple[Any, list[str]]:
    """The highdicom Segmentation of a record's mask on its source series, and its segment
    names (one per class present, in the record's class order)."""
    hd = import_highdicom()
    folder = _check_supported(entry)
    data = read_case(entry.record, base=entry.base, image_voxels=False)  # grid only
    assert data.label is not None
    label = np.asarray(data.label.data)
    series = select_series(folder)
    keep = series.unique()
    if label.shape[2] != len(keep):
        raise entry.error(f"mask has {label.shape[2]} slices, the series {len(keep)}",
                          kind=ExportError, file=folder,
                          hint="the series was repaired on reading; SEG export needs a regular "
                               "series")
    names, planes, descriptions = [], [], []
    top = int(label.max()) if label.size else 0
    for name, values in entry.record.labels.items():
        lut = np.zeros(top + 1, dtype=bool)
        lut[[int(v) for v in values if int(v) <= top]] = True
        mask = lut[label]  # np.isin by look-up table
        if not mask.any():
            continue
        codes = vocabulary.code(name)
        if codes is None:
            raise entry.error(f"class {name!r} has no DICOM codes in the vocabulary",
                              kind=ExportError, hint="add codes: to it (README: 'Structure "
                              "codes'), or from your plugin's harmonize_vocabulary() hook")
        names.append(name)
        planes.append(mask.transpose(2, 1, 0))  # (X, Y, Z) -> (frames, rows, columns)
        descriptions.append(segment_description(hd, len(names), name, codes))
    if not names:
        raise entry.error("the mask holds no class of the record", kind=ExportError,
                          hint="nothing to export for an empty mask")
    sources = [_with_patient_study(series.headers[k]) for k in keep]  # no pixels needed
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=np.stack(planes, axis=-1).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=9301, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="harmonize", manufacturer_model_name="harmonize",
        software_versions=hd.__version__, device_serial_number="none",
        series_description=f"harmonize {entry.dataset} {entry.case_id}"[:64],
        content_label="HARMONIZE", omit_empty_frames=True)
    return seg, names


#: Patient/study attributes highdicom copies from the source; type 2 in DICOM (may be absent in
#: de-identified data): absent ones are given empty values in a copy of the header.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
          "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")


def _with_patient_study(header: Any) -> Any:
    missing = [k for k in _TYPE2 if k not in header]
    if not missing:
        return header
    header = copy.copy(header)
    for keyword in missing:
        setattr(header, keyword, "")
    return header


def _export_one(task: _Task) -> dict[str, Any]:
    start = time.perf_counter()
    seg, names = segmentation_of(task.entry, load_vocabulary())
    path = task.out / f"{task.entry.key}{SUFFIX}"
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return {"file": str(path), "segments": names, "bytes": path.stat().st_size,
            "frames": int(seg.NumberOfFrames),
            "seconds": round(time.perf_counter() - start, 3)}


def export_dicom_seg(manifests: Sequence[Path] | Path, out: Path, *,
                     cases: Sequence[str] | None = None, workers: int | None = 1,
                     progress: Callable[[int], Callable[[], None]] | None = None
                     ) -> DicomSegResult:
    """Write ``<out>/<stem>.seg.dcm`` for every record (or the case ids in ``cases``) of the
    manifests; a case that cannot be exported is an error record, the others go on. The
    caller holds ``out``'s folder lock (the CLI does)."""
    import_highdicom()
    entries = load_entries(manifests)
    if cases:
        wanted = set(cases)
        unknown = sorted(wanted - {e.case_id for e in entries} - {e.key for e in entries})
        if unknown:
            raise ExportError(f"case(s) not in the manifest(s): {', '.join(unknown)}",
                              hint="give case ids of the manifest (--case)")
        entries = [e for e in entries if e.case_id in wanted or e.key in wanted]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = DicomSegResult()
    tasks = [_Task(e, out) for e in entries]
    for task, info in run_cases(_export_one, tasks, workers=workers, progress=progress,
                                errors=result.errors):
        result.cases[task.entry.key] = info
    return result
