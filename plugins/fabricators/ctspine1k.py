"""Fabricate a CTSpine1K tree in its released layouts (see plugins/ctspine1k.py).

Cases use real CTSpine1K names with their real ``data_split.txt`` sections, so every source's
naming quirk appears: a COLONOG UID on the sacral-lumbarization list (it has an L6), an HNSCC neck
scan, an MSD liver volume that is the same image as the fabricated LiTS ``volume-N``, a COVID-19
scan with a scan index (``..._0202_0_ct``), a ``CTC-`` COLONOG name, a lumbar-sacralization case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.lits import lits_volume

from harmonize.testing import ct_phantom, grid, write_nifti

#: Vertebra level names by label value (1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6).
LEVELS = (*(f"C{i}" for i in range(1, 8)), *(f"T{i}" for i in range(1, 13)), *(f"L{i}" for i in range(1, 7)))

#: (source key, file stem, data_split.txt section, first and last label value shown in the scan)
CASES = (
    ("colonog", "1.3.6.1.4.1.9328.50.4.0004", "trainset", 17, 25),   # sacral lumbarization: L6
    ("hnscc", "HN_P029", "test_private", 1, 9),
    ("liver", "liver_110", "test_public", 15, 22),
    ("covid", "volume-covid19-A-0202_0_ct", "trainset", 6, 19),
    ("colonog", "CTC-1018399231", "test_public", 18, 24),
    ("liver", "liver_83", "trainset", 17, 23),                        # lumbar sacralization
    ("hnscc", "HN_P001", "trainset", 1, 10),
    ("covid", "volume-covid19-A-0382_ct", "test_public", 7, 20),
)

#: Source folder names: Hugging Face mirror (from its download URLs) and the original download,
#: whose label folders are spelled differently from its data folders.
HF_FOLDERS = {"colonog": "COLONOG", "hnscc": "HNSCC-3DCT-RT", "liver": "MSD-T10", "covid": "COVID-19"}
ORIGINAL_DATA = {"colonog": "colon", "hnscc": "HNSCC-3DCT-RT_neck", "liver": "liver", "covid": "COVID-19"}
ORIGINAL_LABEL = {"colonog": "conlon", "hnscc": "HNSCC-3DCT-RT_neck", "liver": "Liver", "covid": "COVID-19"}
SECTIONS = ("trainset", "test_public", "test_private")


def spine_label(shape: tuple[int, int, int], first: int, last: int) -> np.ndarray:
    """uint8 vertebra labels ``first..last`` stacked head (high Z) to feet (low Z), L-P-S storage.

    Each vertebra is the bone of :func:`ct_phantom`'s spine column in one band of slices per level,
    with a one-slice gap for the disc, so labelling never changes the image.
    """
    label = np.zeros(shape, dtype=np.uint8)
    x, y, _ = grid(shape)
    column = (((x - 0.5) / 0.06) ** 2 + ((y - 0.72) / 0.06) ** 2) <= 1.0
    values = list(range(first, last + 1))
    bounds = np.linspace(shape[2], 0, len(values) + 1).round().astype(int)
    for value, top, bottom in zip(values, bounds[:-1], bounds[1:]):
        band = np.zeros(shape[2], dtype=bool)
        band[bottom: max(bottom + 1, top - 1)] = True
        label[np.broadcast_to(column, shape) & band[None, None, :]] = value
    return label


def ctspine_case(
    source: str, stem: str, first: int, last: int, rng: np.random.Generator, seed: int,
    shape: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image, label, affine)`` of one case.

    MSD liver images are the fabricated LiTS volumes (:func:`lits_volume` with its default shape),
    voxel for voxel: ``liver_110`` here is ``volume-110`` of ``make_lits(..., seed=seed)``.
    """
    if source == "liver":
        number = int(stem.split("_")[1])
        image, _, affine = lits_volume(number, seed=seed)
    else:
        dims = (shape[0], shape[1], shape[2] + 2 * int(rng.integers(0, 3)))
        image = ct_phantom(dims, rng, axial_axes=(0, 1))
        in_plane = round(float(rng.uniform(0.6, 0.95)), 4)
        thickness = float(rng.choice([0.8, 1.0, 1.25, 2.5]))
        # written by SimpleITK from DICOM (dicom2nii.py): LPS direction, RAS code L-P-S
        affine = np.diag([-in_plane, -in_plane, thickness, 1.0])
        affine[:3, 3] = (in_plane * dims[0] / 2, in_plane * dims[1] / 2, float(rng.uniform(-900, -100)))
    return image, spine_label(image.shape, first, last), affine


def data_split_text(sections: dict[str, list[str]], *, crlf: bool) -> str:
    """``data_split.txt``: ``section:`` headers, one ``<name>.nii.gz`` a line, a blank line between."""
    blocks = ["\n".join([f"{s}:", *(f"{n}.nii.gz" for n in sections.get(s, []))]) for s in SECTIONS]
    text = "\n\n".join(blocks)
    return text.replace("\n", "\r\n") + "\r\n" if crlf else text + "\n"


def make_ctspine1k(
    root: Path,
    *,
    n_cases: int = 3,
    seed: int = 0,
    layout: str = "huggingface",
    raw_folder: str = "raw_data",
    shape: tuple[int, int, int] = (32, 32, 36),
    missing_label: tuple[str, ...] = (),
    unlisted: tuple[str, ...] = (),
) -> Path:
    """Write the first ``n_cases`` of :data:`CASES` (at most 8) in one of the released layouts.

    ``layout="huggingface"``: ``<raw_folder>/{volumes,labels}/<COLONOG|HNSCC-3DCT-RT|MSD-T10|COVID-19>``
    and ``metadata/data_split.txt`` (LF line ends, as the mirror's loader requires);
    ``layout="original"``: ``data/<colon|...>``, ``label/<conlon|Liver|...>`` (+ a ``Verse`` label
    folder and a metadata spreadsheet) and a CRLF ``data_split.txt`` at the root.
    ``missing_label`` lists stems written without label; ``unlisted`` stems left out of the split file.
    """
    if layout not in ("huggingface", "original"):
        raise ValueError(f"layout must be 'huggingface' or 'original', not {layout!r}")
    if not 1 <= n_cases <= len(CASES):
        raise ValueError(f"n_cases must be 1-{len(CASES)}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    sections: dict[str, list[str]] = {}
    for source, stem, section, first, last in CASES[:n_cases]:
        image, label, affine = ctspine_case(source, stem, first, last, rng, seed, shape)
        if layout == "huggingface":
            image_dir = root / raw_folder / "volumes" / HF_FOLDERS[source]
            label_dir = root / raw_folder / "labels" / HF_FOLDERS[source]
        else:
            image_dir = root / "data" / ORIGINAL_DATA[source]
            label_dir = root / "label" / ORIGINAL_LABEL[source]
        write_nifti(image_dir / f"{stem}.nii.gz", image, affine)
        if stem not in missing_label:
            write_nifti(label_dir / f"{stem}_seg.nii.gz", label, affine)
        if stem not in unlisted:
            sections.setdefault(section, []).append(stem)
    if layout == "huggingface":
        split_file = root / "metadata" / "data_split.txt"
    else:
        split_file = root / "data_split.txt"
        verse = spine_label((16, 16, 12), 20, 24)
        write_nifti(root / "label" / "Verse" / "verse100_seg.nii.gz", verse, np.diag([1.0, 1.0, 1.0, 1.0]))
        (root / "data" / "metadata_colonog.xlsx").write_bytes(b"PK\x03\x04 fabricated spreadsheet")
    split_file.parent.mkdir(parents=True, exist_ok=True)
    text = data_split_text(sections, crlf=layout == "original")
    split_file.write_bytes(text.encode("utf-8"))
    return root

