"""Fabricate CHAOS (CT and MR) in its released layout (see plugins/chaos.py, DATASETS.md section 6).

::

    Train_Sets/CT/<n>/DICOM_anon/i0000,0000b.dcm ...   Train_Sets/CT/<n>/Ground/liver_GT_000.png ...
    Train_Sets/MR/<n>/T1DUAL/DICOM_anon/{InPhase,OutPhase}/IMG-0004-00002.dcm ...
    Train_Sets/MR/<n>/T1DUAL/Ground/IMG-0004-00002.png ...   (shared by in- and opposed-phase)
    Train_Sets/MR/<n>/T2SPIR/DICOM_anon/IMG-0002-00001.dcm ...  T2SPIR/Ground/IMG-0002-00001.png ...
    Test_Sets/...  (same, without Ground)

Quirks reproduced, as in the real release:

* CT: file names ``i<k>,0000b.dcm`` in InstanceNumber order run from the top slice down (the
  organisers' CT sample, github.com/emrekavur/CHAOS-evaluation Data_3D, has z 1690.5 ... 1536.5),
  2 mm apart with SliceThickness 3.2 (overlapping slices), Rescale intercept -1000; Ground PNGs are
  1-bit (mode "1"), ``liver_GT_<k>.png`` belonging to the k-th DICOM file in name order.
* MR: Ground PNGs are 8-bit grey with liver 63, right kidney 126, left kidney 189, spleen 252; PNG
  ``k`` in name order belongs to the k-th slice in ascending z (nnU-Net's conversion); file names
  run in that order too. T1 in- and opposed-phase share one geometry and one Ground; T2-SPIR has
  its own geometry.

Organs are ellipsoids defined in patient (LPS) coordinates, asymmetric along every axis, and the
image carries each organ as one constant value (no noise inside organs), so a test can check that a
harmonized mask lies exactly on the voxels of its organ in the image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harmonize.testing import SeriesGeometry, SliceFile, uid, write_series

#: CHAOS patient folder numbers [U: from community splits, not checked against the release]
CT_TRAIN = (1, 2, 5, 6, 8, 10, 14, 16, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30)
CT_TEST = (3, 4, 7, 9, 11, 12, 13, 15, 17, 20, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
MR_TRAIN = (1, 2, 3, 5, 8, 10, 13, 15, 19, 20, 21, 22, 31, 32, 33, 34, 36, 37, 38, 39)
MR_TEST = (4, 6, 7, 9, 11, 12, 14, 16, 17, 18, 23, 24, 25, 26, 27, 28, 29, 30, 35, 40)

#: grey value of each organ in MR Ground PNGs, and its value in the image (per sequence)
MR_GREY = {"liver": 63, "right kidney": 126, "left kidney": 189, "spleen": 252}
MR_SIGNAL = {
    "inphase": {"liver": 610, "right kidney": 520, "left kidney": 540, "spleen": 470, "body": 250},
    "outphase": {"liver": 560, "right kidney": 480, "left kidney": 500, "spleen": 430, "body": 200},
    "t2spir": {"liver": 330, "right kidney": 720, "left kidney": 760, "spleen": 650, "body": 150},
}
CT_LIVER_HU = 130
#: organs as (centre, radii) in fractions of the series' LPS bounding box; x: 0 = patient right,
#: y: 0 = anterior, z: 0 = inferior. Each organ is two ellipsoids so no plane mirrors it.
ORGANS = {
    "liver": (((0.30, 0.40, 0.62), (0.22, 0.26, 0.30)), ((0.50, 0.32, 0.78), (0.14, 0.12, 0.14))),
    "spleen": (((0.78, 0.58, 0.66), (0.10, 0.14, 0.18)), ((0.74, 0.50, 0.80), (0.06, 0.06, 0.08))),
    "right kidney": (((0.30, 0.74, 0.30), (0.08, 0.10, 0.16)), ((0.34, 0.70, 0.40), (0.05, 0.05, 0.06))),
    "left kidney": (((0.70, 0.74, 0.42), (0.08, 0.10, 0.18)), ((0.66, 0.78, 0.30), (0.05, 0.05, 0.07))),
}


def organ_mask(geometry: SeriesGeometry, n_slices: int, name: str) -> Callable[[int], np.ndarray]:
    """A function of slice ``k`` giving the organ's (rows, columns) mask on that slice."""
    corners = np.array([geometry.position(0), geometry.position(n_slices - 1)])
    x, y, _ = geometry.world(0)
    lo = np.array([x.min(), y.min(), corners[:, 2].min()])
    hi = np.array([x.max(), y.max(), corners[:, 2].max()])

    def mask(k: int) -> np.ndarray:
        pts = geometry.world(k)
        inside = np.zeros((geometry.rows, geometry.columns), dtype=bool)
        for centre, radii in ORGANS[name]:
            c = lo + np.asarray(centre) * (hi - lo)
            r = np.asarray(radii) * (hi - lo)
            inside |= sum(((p - ci) / ri) ** 2 for p, ci, ri in zip(pts, c, r)) <= 1.0
        return inside

    return mask


def body_mask(geometry: SeriesGeometry) -> np.ndarray:
    r, c = np.meshgrid(np.linspace(-1, 1, geometry.rows), np.linspace(-1, 1, geometry.columns),
                       indexing="ij")
    return (c / 0.95) ** 2 + (r / 0.8) ** 2 <= 1.0


def _png(path: Path, array: np.ndarray, mode: str) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.astype(bool) if mode == "1" else array.astype(np.uint8))
    if mode == "1":
        image = image.convert("1")
    image.save(path)


def make_chaos_ct_case(folder: Path, number: int, rng: np.random.Generator, *, labelled: bool,
                       shape: tuple[int, int, int] = (32, 32, 12)) -> None:
    """One CT patient folder: ``DICOM_anon`` (+ ``Ground`` if ``labelled``)."""
    rows, cols, n = shape[0], shape[1], shape[2] + number % 3
    spacing = round(float(rng.uniform(0.62, 0.78)), 4)
    top = float(rng.uniform(1500, 1700))
    geometry = SeriesGeometry(rows=rows, columns=cols, pixel_spacing=(spacing, spacing),
                              origin=(-185.0, -98.0, top), step=-2.0, thickness=3.2)
    liver = organ_mask(geometry, n, "liver")
    body = body_mask(geometry)
    series = uid("chaos-ct", number, "series")
    slices = []
    for k in range(n):  # k = 0 is the top slice; file names and InstanceNumber follow k
        hu = np.where(body, 40.0 + rng.normal(0, 6, (rows, cols)), -1000.0)
        hu[liver(k)] = CT_LIVER_HU
        slices.append(SliceFile(name=f"i{k:04d},0000b.dcm", pixels=np.rint(hu).astype(np.int16),
                                k=k, instance=k + 1,
                                tags={"0020|1041": f"{61 + 2 * k:g}", "0018|5100": "FFS"}))
        if labelled:
            _png(folder / "Ground" / f"liver_GT_{k:03d}.png", liver(k), "1")
    write_series(folder / "DICOM_anon", slices, geometry, modality="CT", series_uid=series,
                 study_uid=uid("chaos-ct", number), patient_id=f"CHAOS^CT_SET_{number}",
                 rescale=(1.0, -1000.0))


def _mr_series(folder: Path, geometry: SeriesGeometry, n: int, rng: np.random.Generator,
               signal: dict[str, int], names: list[str], series: str, study: str,
               patient: str, echo_time: float) -> None:
    body = body_mask(geometry)
    organs = {name: organ_mask(geometry, n, name) for name in MR_GREY}
    slices = []
    for k in range(n):
        value = np.where(body, signal["body"] + rng.normal(0, 8, body.shape), 0.0)
        for name, mask in organs.items():
            value[mask(k)] = signal[name]
        slices.append(SliceFile(name=names[k], pixels=np.rint(value).astype(np.uint16), k=k,
                                instance=int(names[k].split("-")[-1].split(".")[0]),
                                tags={"0018|0081": f"{echo_time:g}"}))
    write_series(folder, slices, geometry, modality="MR", series_uid=series, study_uid=study,
                 patient_id=patient)


def _mr_ground(folder: Path, geometry: SeriesGeometry, n: int, names: list[str]) -> None:
    organs = {name: organ_mask(geometry, n, name) for name in MR_GREY}
    for k in range(n):
        grey = np.zeros((geometry.rows, geometry.columns), dtype=np.uint8)
        for name, mask in organs.items():
            grey[mask(k)] = MR_GREY[name]
        _png(folder / names[k], grey, "L")


def make_chaos_mr_case(folder: Path, number: int, rng: np.random.Generator, *, labelled: bool,
                       shape: tuple[int, int, int] = (32, 32, 10)) -> None:
    """One MR patient folder: T1DUAL (in/opposed phase, shared Ground) and T2SPIR."""
    study = uid("chaos-mr", number)
    patient = f"CHAOS^MR_SET_{number}"
    rows, cols = shape[0], shape[1]
    spacing = round(float(rng.uniform(1.4, 1.9)), 4)
    # T1DUAL: slices ascend in z with the file number; opposed phase odd, in phase even numbers
    n1 = shape[2] + number % 2
    t1 = SeriesGeometry(rows=rows, columns=cols, pixel_spacing=(spacing, spacing),
                        origin=(-180.0, -160.0, float(rng.uniform(-120, -80))), step=7.7,
                        thickness=7.0)
    out_names = [f"IMG-0004-{2 * k + 1:05d}.dcm" for k in range(n1)]
    in_names = [f"IMG-0004-{2 * k + 2:05d}.dcm" for k in range(n1)]
    t1_folder = folder / "T1DUAL"
    _mr_series(t1_folder / "DICOM_anon" / "InPhase", t1, n1, rng, MR_SIGNAL["inphase"], in_names,
               uid(study, "t1in"), study, patient, 4.6)
    _mr_series(t1_folder / "DICOM_anon" / "OutPhase", t1, n1, rng, MR_SIGNAL["outphase"],
               out_names, uid(study, "t1out"), study, patient, 2.3)
    if labelled:
        _mr_ground(t1_folder / "Ground", t1, n1, [n.replace(".dcm", ".png") for n in in_names])
    # T2SPIR: its own geometry (more slices, another origin)
    n2 = shape[2] + 2
    t2 = SeriesGeometry(rows=rows, columns=cols, pixel_spacing=(spacing, spacing),
                        origin=(-181.0, -162.0, float(rng.uniform(-130, -90))), step=6.6,
                        thickness=6.0)
    t2_names = [f"IMG-0002-{k + 1:05d}.dcm" for k in range(n2)]
    _mr_series(folder / "T2SPIR" / "DICOM_anon", t2, n2, rng, MR_SIGNAL["t2spir"], t2_names,
               uid(study, "t2"), study, patient, 80.0)
    if labelled:
        _mr_ground(folder / "T2SPIR" / "Ground", t2, n2, [n.replace(".dcm", ".png") for n in t2_names])


def make_chaos(root: Path, *, modality: str = "MR", n_cases: int = 3, n_test: int = 1,
               seed: int = 0) -> Path:
    """Write ``n_cases`` training and ``n_test`` test patients of CHAOS CT or MR under ``root``
    (``root/Train_Sets/<CT|MR>/<n>``, ``root/Test_Sets/<CT|MR>/<n>``); return ``root``."""
    if modality not in ("CT", "MR"):
        raise ValueError("modality must be 'CT' or 'MR'")
    root = Path(root)
    rng = np.random.default_rng(seed)
    train, test = (CT_TRAIN, CT_TEST) if modality == "CT" else (MR_TRAIN, MR_TEST)
    make_case = make_chaos_ct_case if modality == "CT" else make_chaos_mr_case
    for split, numbers, labelled in (("Train_Sets", train[:n_cases], True),
                                     ("Test_Sets", test[:n_test], False)):
        for number in numbers:
            make_case(root / split / modality / str(number), number, rng, labelled=labelled)
    return root
