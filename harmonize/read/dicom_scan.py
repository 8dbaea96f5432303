"""Find DICOM series in folders: read headers with pydicom (no pixels), group by series, choose one.

* :func:`scan_dicom` reads every file in one folder and groups the images by
  ``SeriesInstanceUID``; files that are not DICOM images are listed as
  :class:`~harmonize.manifest.records.Skipped` with the reason. :func:`walk_series` scans a tree.
* :func:`select_series` is the one way a reader picks its series: the one series in the folder,
  or the one with a given SeriesInstanceUID; mixed series without a choice are refused.

Slices are ordered by :func:`harmonize.read.dicom.sort_slices` (the series model).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmonize.errors import ReadError
from harmonize.plugin.case import Skipped
from harmonize.read.dicom import Series, present, sort_slices

__all__ = ["DicomScan", "group_series", "read_header", "scan_dicom", "select_series",
           "walk_series"]

_HEADER_ONLY_NAMES = {"DICOMDIR"}


@dataclass
class DicomScan:
    """What :func:`scan_dicom` found in one folder: the series and the files it did not take."""

    folder: Path
    series: list[Series]
    skipped: list[Skipped]


def read_header(path: Path) -> tuple[Any | None, str | None]:
    """(pydicom dataset without pixels, None) or (None, reason it is not a DICOM image)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if path.name.upper() in _HEADER_ONLY_NAMES:
        return None, "DICOMDIR index file (not an image)"
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        try:  # old files without the 128-byte preamble and "DICM" marker
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - any parse failure means "not DICOM"
            return None, "not a DICOM file"
        if "SOPClassUID" not in header and "SeriesInstanceUID" not in header:
            return None, "not a DICOM file"
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt files raise many types
        return None, f"unreadable DICOM file: {type(exc).__name__}: {exc}"
    if "Rows" not in header or "Columns" not in header:
        modality = header.get("Modality", "unknown modality")
        return None, f"DICOM object without an image (Modality {modality})"
    return header, None


def _uid(header: Any) -> str | None:
    return str(header.SeriesInstanceUID) if present(header, "SeriesInstanceUID") else None


def scan_dicom(folder: Path) -> DicomScan:
    """Read every file in ``folder`` (not its subfolders) and group the images by series.

    Series come ordered by ``SeriesNumber`` then UID; a file without ``SeriesInstanceUID`` joins
    the series with ``uid=None``. Hidden files (``.name``) are ignored. Raises
    :class:`ReadError` when ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReadError("not a folder", file=folder,
                        hint="give the folder that holds the series' .dcm files")
    groups: dict[str | None, list[tuple[Path, Any]]] = {}
    skipped: list[Skipped] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        header, reason = read_header(path)
        if header is None:
            skipped.append(Skipped(path, reason or "not a DICOM image",
                                   hint="remove the file from the series folder if it is not needed"))
            continue
        groups.setdefault(_uid(header), []).append((path, header))
    series = [sort_slices(folder, uid, items) for uid, items in groups.items()]

    def order(s: Series) -> tuple[int, str]:
        number = s.headers[0].get("SeriesNumber")
        try:
            return (int(number), s.uid or "")
        except (TypeError, ValueError):
            return (1 << 30, s.uid or "")

    return DicomScan(folder, sorted(series, key=order), skipped)


def group_series(folder: Path) -> list[Series]:
    """The DICOM image series in ``folder``, each with its slices in reading order."""
    return scan_dicom(folder).series


def select_series(folder: Path, series_uid: str | None = None) -> Series:
    """The one series in ``folder``, or the one whose SeriesInstanceUID is ``series_uid``.

    Raises :class:`ReadError` naming the folder when there is none, when several series share
    the folder and none was chosen (mixed series), or when the chosen UID is not there.
    """
    scan = scan_dicom(folder)
    if not scan.series:
        raise ReadError(f"no readable DICOM series in folder ({len(scan.skipped)} other file(s))",
                        file=folder, hint="point at the folder that holds the .dcm files; check "
                        "they are DICOM images")
    if series_uid is not None:
        for series in scan.series:
            if series.uid == series_uid:
                return series
        raise ReadError(f"no DICOM series with SeriesInstanceUID {series_uid} in folder "
                        f"(found {', '.join(str(s.uid) for s in scan.series)})", file=folder,
                        hint="check the series UID")
    if len(scan.series) > 1:
        found = ", ".join(f"{s.uid} ({s.n_slices} slices)" for s in scan.series)
        raise ReadError(f"{len(scan.series)} DICOM series in one folder (mixed series): {found}",
                        file=folder, hint="split the folder so that it holds one series, or "
                        "choose one by its SeriesInstanceUID")
    return scan.series[0]


def walk_series(root: Path) -> Iterator[DicomScan]:
    """:func:`scan_dicom` of ``root`` and every folder below it that holds at least one file."""
    root = Path(root)
    if root.is_file():
        header, reason = read_header(root)
        if header is None:
            yield DicomScan(root.parent, [], [Skipped(root, reason or "not a DICOM image")])
        else:
            yield DicomScan(root.parent, [sort_slices(root.parent, _uid(header),
                                                      [(root, header)])], [])
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if filenames:
            yield scan_dicom(Path(dirpath))
