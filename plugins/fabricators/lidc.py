"""Fabricate LIDC-IDRI in its NBIA layout with readers' XML (see plugins/lidc.py).

::

    LIDC-IDRI/LIDC-IDRI-0001/01-01-2000-NA-NA-30179/3000567.000000-NA-03193/1-001.dcm ... 070.xml
    LIDC-IDRI/LIDC-IDRI-0001/01-01-2000-NA-NA-30923/3000924.000000-NA-81924/1-1.dcm  (DX radiograph)

Each CT series (32 x 32 x 12, slices 2.5 mm apart, instance 1 at the top) carries, in one
``<LidcReadMessage>`` XML, two or three reading sessions:

* nodule A (patient's right, anterior; a stack of rectangles, different on every slice, with a
  hole cut by an ``inclusion FALSE`` outline on its middle slice): reader 1 outlines exactly the
  nodule the image shows (HU :data:`NODULE_HU`), reader 2 the same shifted one column, reader 3
  (if any) shifted one row. Outlines run through the pixels just outside the nodule, as LIDC
  readers draw them (the filled outline excludes its own points);
* nodule B (left, posterior): reader 1 only;
* a nodule < 3 mm (one point, no characteristics) from reader 2 and a non-nodule from reader 1.

The third patient, when asked for, has reading sessions without any nodule (a negative scan).
:func:`nodule_truth` gives the voxels of each nodule as reader 1 outlined it, in the
(rows, columns) of each DICOM slice, for world-coordinate checks.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from harmonize.testing import SeriesGeometry, SliceFile, uid, write_series

NODULE_HU = 35
NS = "http://www.nih.gov"
#: nodule A: slice k -> (row0, row1, col0, col1) inclusive, before the per-patient shift
NODULE_A = {3: (8, 9, 9, 11), 4: (7, 10, 8, 12), 5: (7, 11, 8, 13), 6: (8, 10, 9, 12),
            7: (9, 9, 10, 11)}
HOLE_A = (5, (9, 9, 10, 10))  # slice, hole rectangle (its ring is cut out too)
NODULE_B = {8: (18, 20, 20, 22), 9: (18, 21, 19, 22)}
CHARS = {"subtlety": 4, "internalStructure": 1, "calcification": 6, "sphericity": 4, "margin": 4,
         "lobulation": 2, "spiculation": 1, "texture": 5}


def ring(r0: int, r1: int, c0: int, c1: int) -> list[tuple[int, int]]:
    """The closed chain of (x, y) pixels just outside rows r0..r1, columns c0..c1."""
    top, bottom, left, right = r0 - 1, r1 + 1, c0 - 1, c1 + 1
    pts = [(c, top) for c in range(left, right + 1)]
    pts += [(right, r) for r in range(top + 1, bottom + 1)]
    pts += [(c, bottom) for c in range(right - 1, left - 1, -1)]
    pts += [(left, r) for r in range(bottom - 1, top, -1)]
    return pts


def nodule_truth(shift: int = 0, *, rows: int = 32, columns: int = 32) -> dict[str, dict[int, np.ndarray]]:
    """Reader 1's nodules: name -> slice k -> (rows, columns) mask (with nodule A's hole)."""
    out: dict[str, dict[int, np.ndarray]] = {"A": {}, "B": {}}
    for name, rects in (("A", NODULE_A), ("B", NODULE_B)):
        for k, (r0, r1, c0, c1) in rects.items():
            mask = np.zeros((rows, columns), dtype=bool)
            mask[r0:r1 + 1, c0 + shift:c1 + shift + 1] = True
            if name == "A" and k == HOLE_A[0]:
                h0, h1, g0, g1 = HOLE_A[1]
                mask[h0 - 1:h1 + 2, g0 + shift - 1:g1 + shift + 2] = False
            out[name][k] = mask
    return out


def _sub(parent: ElementTree.Element, tag: str, text: object = None) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        element.text = str(text)
    return element


def _roi(parent: ElementTree.Element, geometry: SeriesGeometry, series: str, k: int,
         points: list[tuple[int, int]], inclusion: bool = True) -> None:
    roi = _sub(parent, "roi")
    _sub(roi, "imageZposition", f"{geometry.position(k)[2]:.6f} ")
    _sub(roi, "imageSOP_UID", uid(series, "sop", k + 1))
    _sub(roi, "inclusion", "TRUE" if inclusion else "FALSE")
    for x, y in points:
        edge = _sub(roi, "edgeMap")
        _sub(edge, "xCoord", x)
        _sub(edge, "yCoord", y)


def _nodule(session: ElementTree.Element, geometry: SeriesGeometry, series: str, nid: str,
            rects: dict[int, tuple[int, int, int, int]], dr: int, dc: int, malignancy: int,
            hole: bool) -> None:
    nodule = _sub(session, "unblindedReadNodule")
    _sub(nodule, "noduleID", nid)
    chars = _sub(nodule, "characteristics")
    for name, value in {**CHARS, "malignancy": malignancy}.items():
        _sub(chars, name, value)
    for k, (r0, r1, c0, c1) in rects.items():
        _roi(nodule, geometry, series, k, ring(r0 + dr, r1 + dr, c0 + dc, c1 + dc))
        if hole and k == HOLE_A[0]:
            h0, h1, g0, g1 = HOLE_A[1]
            _roi(nodule, geometry, series, k, ring(h0 + dr, h1 + dr, g0 + dc, g1 + dc), False)


def reading_xml(geometry: SeriesGeometry, series: str, study: str, *, readers: int, shift: int,
                nodules: bool) -> bytes:
    """A ``<LidcReadMessage>`` document for one series."""
    ElementTree.register_namespace("", NS)
    root = ElementTree.Element(f"{{{NS}}}LidcReadMessage", {"uid": uid(series, "xml")})
    header = _sub(root, "ResponseHeader")
    for tag, text in (("Version", "1.8.1"), ("MessageId", "-421198203"),
                      ("TaskDescription", "Second unblinded read"), ("CtImageFile", "removed"),
                      ("SeriesInstanceUid", series), ("ResponseDescription", "1 - Reading complete"),
                      ("StudyInstanceUID", study)):
        _sub(header, tag, text)
    offsets = [(0, 0), (0, 1), (1, 0)][:readers]
    for index, (dr, dc) in enumerate(offsets):
        session = _sub(root, "readingSession")
        _sub(session, "annotationVersion", "3.12")
        _sub(session, "servicingRadiologistID", f"anon-{index + 1:03d}")
        if not nodules:
            continue
        _nodule(session, geometry, series, f"Nodule {index + 1:03d}", NODULE_A, dr, dc + shift,
                malignancy=4 - index, hole=index == 0)
        if index == 0:
            _nodule(session, geometry, series, "IL057_127364", NODULE_B, 0, shift, malignancy=2,
                    hole=False)
            non = _sub(session, "nonNodule")
            _sub(non, "nonNoduleID", "Non-nodule 001")
            _sub(non, "imageZposition", f"{geometry.position(2)[2]:.6f} ")
            _sub(non, "imageSOP_UID", uid(series, "sop", 3))
            locus = _sub(non, "locus")
            _sub(locus, "xCoord", 5)
            _sub(locus, "yCoord", 25)
        if index == 1:
            small = _sub(session, "unblindedReadNodule")
            _sub(small, "noduleID", "5")
            _roi(small, geometry, series, 10, [(25, 10)])
    return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")


def make_lidc(root: Path, *, n_cases: int = 2, seed: int = 0, readers: int = 2,
              radiograph: bool = True) -> Path:
    """Write ``n_cases`` LIDC-IDRI patients (one CT series + XML each; patient 3 has no nodule)
    and, with ``radiograph``, a DX series for patient 1; return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for number in range(1, n_cases + 1):
        patient = f"LIDC-IDRI-{number:04d}"
        folder = (root / "LIDC-IDRI" / patient / f"01-01-2000-NA-NA-{30178 + number}"
                  / f"{3000566 + number}.000000-NA-{3192 + number:05d}")
        spacing = round(float(rng.uniform(0.62, 0.78)), 4)
        geometry = SeriesGeometry(rows=32, columns=32, pixel_spacing=(spacing, spacing),
                                  origin=(-170.0, -160.0, float(rng.uniform(-60, 60))), step=-2.5)
        shift = (number - 1) % 3
        truth = nodule_truth(shift)
        body = ((np.linspace(-1, 1, 32)[None, :] / 0.95) ** 2
                + (np.linspace(-1, 1, 32)[:, None] / 0.85) ** 2) <= 1.0
        slices = []
        with_nodules = number != 3
        for k in range(12):
            hu = np.where(body, -850.0 + rng.normal(0, 15, (32, 32)), -1024.0)
            if with_nodules:
                for masks in truth.values():
                    if k in masks:
                        hu[masks[k]] = NODULE_HU
            slices.append(SliceFile(name=f"1-{k + 1:03d}.dcm", pixels=np.rint(hu).astype(np.int16),
                                    k=k, instance=k + 1))
        series = uid("lidc", number, "ct")
        study = uid("lidc", number)
        write_series(folder, slices, geometry, modality="CT", series_uid=series, study_uid=study,
                     patient_id=patient, rescale=(1.0, -1024.0))
        (folder / f"{69 + number:03d}.xml").write_bytes(
            reading_xml(geometry, series, study, readers=readers, shift=shift,
                        nodules=with_nodules))
        if radiograph and number == 1:
            dx = SeriesGeometry(rows=32, columns=32, pixel_spacing=(0.2, 0.2),
                                origin=(0.0, 0.0, 0.0), step=1.0)
            write_series(folder.parents[1] / "01-01-2000-NA-NA-30923" / "3000924.000000-NA-81924",
                         [SliceFile(name="1-1.dcm", pixels=np.zeros((32, 32), np.uint16), k=0,
                                    instance=1)],
                         dx, modality="DX", series_uid=uid("lidc", number, "dx"),
                         study_uid=uid("lidc", number, "dx-study"), patient_id=patient)
    return root
