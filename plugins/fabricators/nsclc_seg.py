"""NSCLC-Radiomics with its DICOM-SEG series, as IDC's ``idc-index`` downloads it.

Layout (``IDCClient.DOWNLOAD_HIERARCHY_DEFAULT``:
``%collection_id/%PatientID/%StudyInstanceUID/%Modality_%SeriesInstanceUID``, files named by
their CRDC instance UUID)::

    nsclc_radiomics/LUNG1-001/<StudyInstanceUID>/CT_<SeriesInstanceUID>/<uuid>.dcm ...
    nsclc_radiomics/LUNG1-001/<StudyInstanceUID>/SEG_<SeriesInstanceUID>/<uuid>.dcm

CT slices are copies of pydicom's real ``CT_small.dcm``; the SEG is written with highdicom
(``harmonize.testing.write_seg``) with the release's six segment labels and analytic shapes:
the tumour (GTV-1) inside the right lung, so two segments overlap as in the release. Patient 3
has no SEG series (a partial download).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from harmonize.testing import SegmentSpec, ball, box, real_ct_series, uid, write_seg

COLLECTION = "nsclc_radiomics"
ANATOMY = ("SCT", "123037004", "Anatomical Structure")
ABNORMAL = ("SCT", "49755003", "Morphologically Abnormal Structure")
LEFT, RIGHT = ("SCT", "7771000", "Left"), ("SCT", "24028007", "Right")
LUNG = ("SCT", "39607008", "Lung")


def nsclc_segments(shape: tuple[int, int, int], rng: np.random.Generator) -> list[SegmentSpec]:
    """The six segments of a case (Z, rows, cols), labelled as in the release."""
    z, rows, cols = shape
    shift = int(rng.integers(-3, 4))
    right = box(shape, (0, 30, 8), (z, 100, 60))  # image left = patient right
    left = box(shape, (0, 30, 68), (z, 100, 120))
    return [
        SegmentSpec("GTV-1", ABNORMAL, ("SCT", "108369006", "Neoplasm"),
                    ball(shape, (z / 2, 60 + shift, 34), 3.5), region=LUNG),
        SegmentSpec("Lung-Left", ANATOMY, LUNG, left, modifier=LEFT),
        SegmentSpec("Lung-Right", ANATOMY, LUNG, right, modifier=RIGHT),
        SegmentSpec("Esophagus", ANATOMY, ("SCT", "32849002", "Esophagus"),
                    box(shape, (0, 70, 62), (z, 76, 66))),
        SegmentSpec("Heart", ANATOMY, ("SCT", "80891009", "Heart"),
                    ball(shape, (z / 2, 50, 64), 3)),
        SegmentSpec("Spinal-Cord", ANATOMY, ("SCT", "2748008", "Spinal cord"),
                    box(shape, (0, 110, 62), (z, 114, 66))),
    ]


def _rename_uuid(folder: Path, key: str) -> None:
    """Rename ``<SOPInstanceUID>.dcm`` files to UUID names, as idc-index stores them."""
    for k, path in enumerate(sorted(folder.glob("*.dcm"))):
        path.rename(folder / f"{uuid.UUID(int=int(uid(key, k)[5:]) % (1 << 128))}.dcm")


def make_nsclc_seg(root: Path, *, n_cases: int = 3, seed: int = 0, n_slices: int = 8,
                   layout: str = "idc") -> Path:
    """Write ``n_cases`` patients under ``root``; return ``root``. ``layout="idc"``: idc-index's
    default tree; ``"nbia"``: TCIA's NBIA Data Retriever tree
    (``manifest-<n>/NSCLC-Radiomics/LUNG1-001/<date>-NA-<n>/<n>.000000-NA-<n>/1-1.dcm``)."""
    rng = np.random.default_rng(seed)
    for number in range(1, n_cases + 1):
        patient = f"LUNG1-{number:03d}"
        key = f"nsclc-seg {patient}"
        if layout == "nbia":
            study_dir = (root / "manifest-1603198545583" / "NSCLC-Radiomics" / patient
                         / f"09-18-2008-StudyID-NA-{69330 + number}")
            ct_dir = study_dir / f"0.000000-NA-{82046 + number}"
            seg_dir = study_dir / f"300.000000-Segmentation-{91234 + number}"
        else:
            study_dir = root / COLLECTION / patient / uid(key, "study")
            ct_dir = study_dir / f"CT_{uid(key, 'ct series')}"
            seg_dir = study_dir / f"SEG_{uid(key, 'seg series')}"
        sources = real_ct_series(ct_dir, n_slices, patient_id=patient, key=key, step=3.0)
        if layout == "idc":
            _rename_uuid(ct_dir, key + " ct")
        if number == 3:
            continue  # partial download: no SEG series
        shape = (n_slices, int(sources[0].Rows), int(sources[0].Columns))
        write_seg(seg_dir / ("seg.dcm" if layout == "idc" else "1-1.dcm"), sources,
                  nsclc_segments(shape, rng), key=key, label_in_description="Segmentation")
        if layout == "idc":
            _rename_uuid(seg_dir, key + " seg")
    return root
