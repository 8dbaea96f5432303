"""LIDC-IDRI: thoracic CT series with up to four radiologists' nodule outlines (XML).

Released layout (NBIA Data Retriever download; folder strings vary between download tools)::

    LIDC-IDRI/LIDC-IDRI-0001/01-01-2000-NA-NA-30178/3000566.000000-NA-03192/1-001.dcm ... 069.xml

One case per CT series (a patient may have several): case id ``<patient>_<series folder>``,
patient id ``LIDC-IDRI-XXXX``; no official split. Series whose Modality is not CT (the chest
radiographs, CR/DX) are skipped with that reason; so is a CT series without its reader XML (matched
on SeriesInstanceUid in the XML's ResponseHeader).

Labels (parsing, grouping and filling in :mod:`harmonize.plugins._lidc_xml`, pylidc's conventions):

* the mask written for each series is the **consensus**: value ``n`` (1, 2, ...) marks the voxels
  that at least half of the series' readers (reading sessions in the XML) include in their outline
  of nodule ``n``; a nodule outlined by fewer than half of the readers keeps its value and its
  instance entry (``reader_count``) but has no voxel in the mask. (pylidc's
  ``consensus(clevel=0.5)`` counts only the readers who outlined the nodule: use
  :meth:`LIDC.reader_masks` for that);
  nodules are numbered from inferior to superior; class ``lung nodule`` = every nodule value (an
  empty list when no reader outlined a nodule >= 3 mm: the case is annotated and negative);
* every nodule is an *instance*: the manifest's ``instances`` carry, per value, the readers who
  outlined it and their characteristics (malignancy 1-5 and the eight others), plus the measured
  size, volume and mean HU;
* **per-reader masks**: :meth:`LIDC.reader_masks` returns one label volume per reading session on
  the same grid, value ``n`` = that reader's outline of nodule ``n`` (not written by the pipeline,
  to keep one mask per record);
* nodules < 3 mm (one point, no outline) and non-nodules are listed in the record's metadata.

ROIs are placed on the slice whose SOPInstanceUID they name (falling back to ImagePositionPatient z
= ``imageZposition``, which pylidc uses); ``xCoord``/``yCoord`` are DICOM column/row.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from harmonize.plugins._dicom import (
    MODALITY,
    PIXEL_SPACING,
    SERIES_UID,
    DicomSeries,
    dicom_files,
    read_series,
    read_tags,
)
from harmonize.plugins._lidc_xml import (
    Annotation,
    ReadMessage,
    fill_outline,
    group_annotations,
    parse_read_message,
    root_tag,
)

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    HarmonizeError,
    LabelError,
    Skipped,
    Volume,
    hookimpl,
    is_hidden,
)

PATIENT = re.compile(r"^LIDC-IDRI-\d{4}$")
SLICE_THICKNESS = "SliceThickness"
CLASS = "lung nodule"
XML_HINT = "download the LIDC-IDRI XML annotations (tcia-lidc-xml) into the series folders"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "series"


class LIDC(DatasetPlugin):
    """LIDC-IDRI CT series with consensus nodule masks (see the module docstring)."""

    id = "lidc-idri"
    demo = False
    #: fraction of the series' readers whose outline must include a voxel
    consensus_level: ClassVar[float] = 0.5

    # discovery ------------------------------------------------------------------------------

    def patients_folder(self, root: Path) -> Path:
        root = self.check_root(root)
        candidates = [root, root / "LIDC-IDRI",
                      *sorted(p / "LIDC-IDRI" for p in root.iterdir() if p.is_dir())]
        for folder in candidates:
            if folder.is_dir() and any(PATIENT.match(p.name) for p in folder.iterdir()):
                return folder
        raise DiscoveryError(
            "no LIDC-IDRI-XXXX patient folders", dataset=self.dataset_id, file=root,
            hint=f"point --root at the folder laid out as {self.descriptor.expected_root}",
        )

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        for entry in sorted(self.patients_folder(root).iterdir()):
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
            elif not entry.is_dir() or not PATIENT.match(entry.name):
                yield Skipped(entry, "not a LIDC-IDRI-XXXX patient folder",
                              hint="move unrelated files out of the dataset folder")
            else:
                folders = sorted({p.parent for p in entry.rglob("*.dcm") if not is_hidden(p)})
                if not folders:
                    yield Skipped(entry, "no .dcm files under the patient folder",
                                  hint="re-download the patient with the NBIA Data Retriever")
                for folder in folders:
                    yield from self.series_cases(entry, folder)

    def series_cases(self, patient_folder: Path, folder: Path) -> Iterator[Case | Skipped]:
        patient = patient_folder.name
        case_id = f"{patient}_{_safe(folder.name)}"
        try:
            tags = read_tags(dicom_files(folder)[0], (MODALITY, SERIES_UID, PIXEL_SPACING,
                                                      SLICE_THICKNESS))
        except HarmonizeError as exc:
            yield Skipped(folder, f"unreadable DICOM header: {exc.message}", case_id=case_id,
                          hint="re-download the series")
            return
        modality = tags.get(MODALITY, "")
        if modality != "CT":
            yield Skipped(folder, f"{modality or 'unknown'} series, not CT (LIDC-IDRI also holds "
                          "chest radiographs)", case_id=case_id)
            return
        series_uid = tags.get(SERIES_UID, "")
        message: ReadMessage | None = None
        for xml in sorted(p for p in folder.glob("*.xml") if not is_hidden(p)):
            if root_tag(xml) != "LidcReadMessage":
                yield Skipped(xml, "not a CT reading file (<LidcReadMessage>)", case_id=case_id)
                continue
            try:
                found = parse_read_message(xml)
            except LabelError as exc:
                yield Skipped(xml, exc.message, case_id=case_id, hint=exc.hint)
                continue
            if found.series_uid != series_uid:
                yield Skipped(xml, f"reader XML of series {found.series_uid}, not of this "
                              f"folder's series {series_uid}", case_id=case_id,
                              hint="move the XML into its own series folder")
            elif message is not None:
                yield Skipped(xml, f"second reader XML for the series; {message.path.name} is "
                              "used", case_id=case_id)
            else:
                message = found
        if message is None:
            yield Skipped(folder, "CT series without its reader XML (LidcReadMessage)",
                          case_id=case_id, hint=XML_HINT)
            return
        spacing = _pair(tags.get(PIXEL_SPACING, ""))
        thickness = _number(tags.get(SLICE_THICKNESS, "")) or 1.0
        metadata = self.nodule_metadata(message, spacing, thickness)
        metadata.update(series_uid=series_uid, xml=message.path.name,
                        series_folder=folder.relative_to(patient_folder).as_posix())
        yield Case(case_id=case_id, patient_id=patient, images=(folder,), label=message.path,
                   labels={CLASS: [n["nodule"] for n in metadata["nodules"]]}, metadata=metadata)

    def nodule_metadata(self, message: ReadMessage, spacing: tuple[float, float],
                        thickness: float) -> dict[str, Any]:
        """Nodules (groups of readers' outlines), small nodules and non-nodules of one XML."""
        outlined = [i for i, a in enumerate(message.annotations) if a.outlined]
        groups, warning = group_annotations([message.annotations[i] for i in outlined],
                                            spacing, thickness)
        nodules = []
        for number, group in enumerate(groups, start=1):
            members = [outlined[i] for i in group]
            anns = [message.annotations[i] for i in members]
            malignancy = [a.characteristics["malignancy"] for a in anns
                          if "malignancy" in a.characteristics]
            nodules.append({
                "nodule": number,
                "annotations": members,
                "readers": sorted({a.session for a in anns}),
                "characteristics": [{"reader": a.session, "nodule_id": a.nodule_id,
                                     **a.characteristics} for a in anns],
                "malignancy_median": statistics.median(malignancy) if malignancy else None,
            })
        small = []
        for ann in message.annotations:
            if ann.outlined:
                continue
            roi = ann.rois[0] if ann.rois else None
            point = roi.points[0] if roi is not None and roi.points else (None, None)
            small.append({"reader": ann.session, "nodule_id": ann.nodule_id,
                          "z": roi.z if roi is not None else None, "x": point[0], "y": point[1]})
        out: dict[str, Any] = {
            "study_uid": message.study_uid,
            "readers": message.readers,
            "consensus_level": self.consensus_level,
            "nodules": nodules,
            "small_nodules": small,
            "non_nodules": message.non_nodules,
        }
        if warning:
            out["grouping_warning"] = warning
        return out

    # labels ---------------------------------------------------------------------------------

    def read_label(self, case: Case) -> Volume | None:
        """Consensus mask on the CT grid: value n = nodule n (see the module docstring)."""
        if case.label is None:
            return None
        message, series = self._load(case)
        nodules = case.metadata.get("nodules", [])
        data = np.zeros(series.shape, dtype=np.uint8 if len(nodules) < 256 else np.uint16)
        readers = max(len(message.readers), 1)  # reading sessions in the XML, outlining or not
        for nodule in nodules:
            planes = [self._outline(message.annotations[i], series, case)
                      for i in nodule["annotations"]]
            empty = np.zeros(series.shape[1::-1], dtype=bool)  # (rows, columns)
            for z in sorted({z for plane in planes for z in plane}):
                votes = np.sum([plane.get(z, empty) for plane in planes], axis=0) / readers
                keep = (votes >= self.consensus_level).T & (data[:, :, z] == 0)
                data[:, :, z][keep] = nodule["nodule"]
        return Volume(data=data, affine=series.affine, kind="label")

    def reader_masks(self, case: Case) -> dict[str, Volume]:
        """One label volume per reading session (keyed by radiologist id), value n = that
        reader's outline of nodule n, on the same grid as :meth:`read_label`."""
        if case.label is None:
            return {}
        message, series = self._load(case)
        out = {}
        for session, reader in enumerate(message.readers):
            data = np.zeros(series.shape, dtype=np.uint16)
            for nodule in case.metadata.get("nodules", []):
                for i in nodule["annotations"]:
                    if message.annotations[i].session != session:
                        continue
                    for z, plane in self._outline(message.annotations[i], series, case).items():
                        data[:, :, z][plane.T & (data[:, :, z] == 0)] = nodule["nodule"]
            out[reader] = Volume(data=data, affine=series.affine, kind="label")
        return out

    def instances(self, case: Case) -> dict[int, dict[str, Any]] | None:
        """Per nodule value: its readers and their characteristics (from discovery, no I/O)."""
        nodules = case.metadata.get("nodules") if case.label is not None else None
        if nodules is None:
            return None
        readers = case.metadata.get("readers", [])
        return {n["nodule"]: {
            "reader_count": len(n["readers"]),
            "reader_ids": [readers[r] if r < len(readers) else str(r) for r in n["readers"]],
            "malignancy_median": n["malignancy_median"],
            "characteristics": n["characteristics"],
        } for n in nodules}

    def _load(self, case: Case) -> tuple[ReadMessage, DicomSeries]:
        assert case.label is not None
        try:
            return parse_read_message(case.label), read_series(case.images[0])
        except HarmonizeError as exc:
            raise LabelError(exc.message, dataset=self.dataset_id, case=case.case_id,
                             file=exc.file or case.label, hint=exc.hint) from exc

    def _outline(self, ann: Annotation, series: DicomSeries, case: Case) -> dict[int, np.ndarray]:
        """One annotation filled slice by slice: Z index -> (rows, columns) mask."""
        by_uid = series.by_sop_uid()
        planes: dict[int, np.ndarray] = {}
        for inclusion in (True, False):
            for roi in ann.rois:
                if roi.inclusion is not inclusion or len(roi.points) < 2:
                    continue
                item = by_uid.get(roi.sop_uid) or next(
                    (s for s in series.slices if abs(s.position[2] - roi.z) < 0.05), None)
                if item is None:
                    raise LabelError(
                        f"outline of {ann.nodule_id} (reader {ann.session + 1}) refers to a slice "
                        f"not in the series (SOP {roi.sop_uid}, z {roi.z})",
                        dataset=self.dataset_id, case=case.case_id, file=case.label,
                        hint="check the XML belongs to this series and no slice is missing",
                    )
                filled = fill_outline(roi.points, item.rows, item.columns)
                plane = planes.setdefault(item.index, np.zeros_like(filled))
                if inclusion:
                    plane |= filled
                else:
                    plane &= ~filled
                    for x, y in roi.points:
                        if 0 <= y < item.rows and 0 <= x < item.columns:
                            plane[y, x] = False
        return planes

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.lidc import make_lidc

        return make_lidc(root, n_cases=n_cases, seed=seed)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) and value > 0 else None


def _pair(text: str) -> tuple[float, float]:
    parts = [_number(p) for p in text.split("\\")]
    if len(parts) == 2 and all(parts):
        return (parts[0], parts[1])  # type: ignore[return-value]
    return (1.0, 1.0)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield LIDC()
