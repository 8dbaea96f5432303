"""Fabricate an AMOS22 post-challenge release (CT and MR in one ``amos22/`` folder).

Layout as on Zenodo 7262581: ``amos22/dataset.json`` with the release's label names ('arota',
'postcava', 'prostate/uterus') and training/validation/test lists, ``imagesTr``/``labelsTr``,
``imagesVa``/``labelsVa``, ``imagesTs`` (no labels), and ``labeled_data_meta_0000_0599.csv`` next
to ``amos22/``. Case ids up to 500 are CT (int16 HU), above 500 MR (int16 grey values).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from harmonize.plugins.fabricators.abdomen import abdomen_case, lps_affine

from harmonize.testing import write_nifti

#: The label names of AMOS22's dataset.json, typos included.
AMOS_LABELS: dict[str, str] = {
    "0": "background", "1": "spleen", "2": "right kidney", "3": "left kidney",
    "4": "gall bladder", "5": "esophagus", "6": "liver", "7": "stomach", "8": "arota",
    "9": "postcava", "10": "pancreas", "11": "right adrenal gland", "12": "left adrenal gland",
    "13": "duodenum", "14": "bladder", "15": "prostate/uterus",
}
_ORGANS = {
    1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "esophagus",
    6: "liver", 7: "stomach", 8: "aorta", 9: "inferior vena cava", 10: "pancreas",
    11: "right adrenal gland", 12: "left adrenal gland", 13: "duodenum", 14: "urinary bladder",
    15: "prostate or uterus",
}
#: Real case numbers per folder and modality (CT <= 500 < MR), from the SAT-DS split files.
IDS = {
    ("Tr", "CT"): (1, 4, 5, 6), ("Tr", "MR"): (507, 508, 510, 511),
    ("Va", "CT"): (8, 13, 18), ("Va", "MR"): (544, 545, 546),
    ("Ts", "CT"): (2, 3, 7), ("Ts", "MR"): (501, 502, 503),
}


def amos_geometry(modality: str, number: int) -> tuple[tuple[int, int, int], np.ndarray]:
    """Tiny shape and an affine with realistic spacing: CT ~0.7 x 0.7 x 5 mm, MR ~1.2 x 1.2 x 6 mm
    (MR often stored in a different orientation: here RAS, CT LPS)."""
    if modality == "CT":
        return (32, 32, 10 + number % 3), lps_affine((0.74, 0.74, 5.0), (190.0, 170.0, -420.0))
    affine = np.diag([1.19, 1.19, 6.0, 1.0])
    affine[:3, 3] = (-180.0, -160.0, -120.0)
    return (28, 28, 9 + number % 2), affine


def make_amos(
    root: Path, *, n_ct: int = 2, n_mr: int = 2, n_val: int = 1, n_test: int = 1, seed: int = 0,
    dataset_json: bool = True, metadata_csv: bool = True, missing_label: tuple[int, ...] = (),
    labels: dict[str, str] | None = None,
) -> Path:
    """Write ``root/amos22/...`` (+ the metadata CSV in ``root``); return ``root``.

    ``n_ct``/``n_mr`` training scans per modality, ``n_val``/``n_test`` validation and test scans
    per modality. ``missing_label`` lists case numbers whose label file is left out; ``labels``
    replaces dataset.json's label names (to test the cross-check).
    """
    root = Path(root)
    data = root / "amos22"
    rng = np.random.default_rng(seed)
    lists: dict[str, list[dict[str, str]]] = {"training": [], "validation": [], "test": []}
    rows = []
    for part, key, counts in (("Tr", "training", (n_ct, n_mr)), ("Va", "validation", (n_val, n_val)),
                              ("Ts", "test", (n_test, n_test))):
        for modality, count in zip(("CT", "MR"), counts):
            for number in IDS[(part, modality)][:count]:
                name = f"amos_{number:04d}.nii.gz"
                shape, affine = amos_geometry(modality, number)
                values = dict(_ORGANS) if number % 2 else {k: v for k, v in _ORGANS.items() if k != 15}
                image, label = abdomen_case(shape, rng, values, modality=modality)
                write_nifti(data / f"images{part}" / name, image, affine)
                entry = {"image": f"./images{part}/{name}"}
                if part != "Ts":
                    entry["label"] = f"./labels{part}/{name}"
                    if number not in missing_label:
                        write_nifti(data / f"labels{part}" / name, label, affine)
                lists[key].append(entry)
                rows.append((number, "M" if number % 2 else "F", modality))
    if dataset_json:
        doc = {
            "name": "AMOS", "description": "MICCAI2022 Multi-Modality Abdominal Multi-Organ Segmentation",
            "tensorImageSize": "3D", "licence": "CC-BY 4.0", "release": "1.0",
            "modality": {"0": "CT"}, "labels": labels or AMOS_LABELS,
            "numTraining": len(lists["training"]), "numValidation": len(lists["validation"]),
            "numTest": len(lists["test"]), **lists,
        }
        (data / "dataset.json").write_text(json.dumps(doc, indent=4) + "\n", encoding="utf-8")
    if metadata_csv:
        with open(root / "labeled_data_meta_0000_0599.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["amos_id", "Patient's Sex", "Patient's Age", "Manufacturer's Model Name", "Site"])
            for number, sex, modality in sorted(rows):
                writer.writerow([number, sex, f"0{40 + number % 30}Y",
                                 "Brilliance16" if modality == "CT" else "Ingenia", "LDCH"])
    return root
