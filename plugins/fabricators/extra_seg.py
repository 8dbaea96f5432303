"""Fabricate HCC-TACE-Seg as TCIA's NBIA Data Retriever downloads it (see
``registry/datasets/hcc-tace-seg.yaml``)::

    manifest-<n>/HCC-TACE-Seg/HCC_001/<date>-NA-CT ABDOMEN-<n>/<n>.000000-<phase>-<n>/1-01.dcm
    manifest-<n>/HCC-TACE-Seg/HCC_001/<date>-NA-CT ABDOMEN-<n>/300.000000-Segmentation-<n>/1-1.dcm

Each pre-TACE study has three CT phases (copies of pydicom's real ``CT_small.dcm``, one series
each); the SEG (highdicom, ``harmonize.testing.write_seg``) segments the second phase with the
four segments Liver, Mass (inside the liver: overlapping segments), Portal vein and Abdominal
aorta. A post-TACE study has CT only. The last patient's SEG references a phase that is not
in the download (skipped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import SegmentSpec, ball, box, real_ct_series, write_seg

ANATOMY = ("SCT", "91723000", "Anatomical Structure")
ABNORMAL = ("SCT", "49755003", "Morphologically Abnormal Structure")
LIVER = ("SCT", "10200004", "Liver")
PHASES = ("PRE", "ARTERIAL", "PORTAL VENOUS")


def hcc_segments(shape: tuple[int, int, int], rng: np.random.Generator) -> list[SegmentSpec]:
    """The four segments of a case (Z, rows, cols), labelled as the collection describes."""
    z = shape[0]
    shift = int(rng.integers(-3, 4))
    liver = box(shape, (0, 30, 10), (z, 90, 60))  # image left = patient right
    return [
        SegmentSpec("Liver", ANATOMY, LIVER, liver),
        SegmentSpec("Mass", ABNORMAL, ("SCT", "4147007", "Mass"),
                    ball(shape, (z / 2, 55 + shift, 35), 3.5), region=LIVER),
        SegmentSpec("Portal vein", ANATOMY, ("SCT", "32764006", "Portal vein"),
                    box(shape, (0, 70, 60), (z, 76, 68))),
        SegmentSpec("Abdominal aorta", ANATOMY, ("SCT", "7832008", "Abdominal aorta"),
                    box(shape, (0, 90, 70), (z, 98, 78))),
    ]


def make_hcc_tace_seg(root: Path, *, n_cases: int = 3, seed: int = 0, n_slices: int = 6
                      ) -> Path:
    """Write ``n_cases`` patients HCC_001... under ``root``; return ``root``."""
    rng = np.random.default_rng(seed)
    collection = Path(root) / "manifest-1643035385102" / "HCC-TACE-Seg"
    for number in range(1, n_cases + 1):
        patient = f"HCC_{number:03d}"
        study = collection / patient / f"07-13-2002-NA-CT ABDOMEN-{17080 + number}"
        sources = []
        for k, phase in enumerate(PHASES):
            key = f"hcc {patient} {phase}"
            series = study / f"{k + 2}.000000-{phase}-{30500 + 10 * number + k}"
            ds = real_ct_series(series, n_slices, patient_id=patient, key=key, step=2.5)
            sources.append(ds)
        post = collection / patient / f"10-02-2002-NA-CT ABDOMEN-{27080 + number}"
        real_ct_series(post / f"2.000000-PORTAL VENOUS-{40500 + number}", n_slices,
                       patient_id=patient, key=f"hcc {patient} post", step=2.5)
        arterial = sources[1]
        shape = (n_slices, int(arterial[0].Rows), int(arterial[0].Columns))
        write_seg(study / f"300.000000-Segmentation-{50500 + number}" / "1-1.dcm", arterial,
                  hcc_segments(shape, rng), key=f"hcc {patient} seg",
                  label_in_description="Segmentation")
        if number == n_cases and n_cases > 1:  # a partial download: the segmented phase is missing
            for path in sorted((study).glob("3.000000-ARTERIAL-*")):
                for file in path.iterdir():
                    file.unlink()
                path.rmdir()
    return root
