"""Fabricate 3D-IRCADb-01: a DICOM CT series per patient and one DICOM mask series per structure.

Layout as registry/datasets/ircadb.yaml cites it: ``3Dircadb1.<n>/PATIENT_DICOM/image_<k>`` and
``3Dircadb1.<n>/MASKS_DICOM/<structure>/image_<k>`` (files without extension, masks 0/255),
beside LABELLED_DICOM/ and MESHES_VTK/ which are not read. Patient 1 has its liver tumours in
seven folders (livertumor01..07), patient 7 an adrenal ``tumor`` that is not a liver tumour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmonize.testing import SeriesGeometry, SliceFile, ct_phantom, ellipsoid, uid, write_series

#: per fabricated patient: its structure folders and, for tumours, (centre, radius) balls
IRCADB_PATIENTS: dict[int, tuple[str, ...]] = {
    1: ("liver", "livertumor01", "livertumor02", "portalvein", "bone"),
    7: ("liver", "portalvein", "tumor"),
}
#: where each structure is in the (X, Y, Z) volume: centre and radii as fractions
SHAPES = {
    "liver": ((0.35, 0.5, 0.5), (0.25, 0.3, 0.4)),
    "livertumor01": ((0.3, 0.45, 0.5), (0.06, 0.06, 0.12)),
    "livertumor02": ((0.42, 0.58, 0.45), (0.05, 0.05, 0.1)),
    "portalvein": ((0.5, 0.5, 0.5), (0.04, 0.2, 0.3)),  # overlaps the liver, as released
    "bone": ((0.5, 0.85, 0.5), (0.08, 0.08, 0.45)),
    "tumor": ((0.7, 0.4, 0.6), (0.06, 0.06, 0.1)),
}


def _series(folder: Path, volume: np.ndarray, geometry: SeriesGeometry, *, patient: str,
            series: str, rescale: tuple[float, float] | None) -> None:
    """Write an (X, Y, Z) volume as image_0 ... image_<Z-1> (rows are y, columns x)."""
    slices = [SliceFile(f"image_{k}", volume[:, :, k].T, k, k + 1) for k in range(volume.shape[2])]
    write_series(folder, slices, geometry, modality="CT", series_uid=uid(patient, series),
                 study_uid=uid(patient, "study"), patient_id=patient, rescale=rescale)


def make_ircadb(root: Path, *, seed: int = 0, shape: tuple[int, int, int] = (16, 14, 6)
                ) -> Path:
    """A tiny extracted ``3Dircadb1`` folder (patients of :data:`IRCADB_PATIENTS`)."""
    data = Path(root) / "3Dircadb1"
    rng = np.random.default_rng(seed)
    for number, structures in IRCADB_PATIENTS.items():
        folder, patient = data / f"3Dircadb1.{number}", f"ircadb{number:02d}"
        geometry = SeriesGeometry(rows=shape[1], columns=shape[0], pixel_spacing=(0.57, 0.57),
                                  origin=(-150.0, -160.0, 100.0 + number), step=1.6)
        image = ct_phantom(shape, rng).astype(float)
        for name in structures:
            centre, radii = SHAPES[name]
            mask = ellipsoid(shape, centre, radii)
            image[mask] = 60.0 if name == "liver" else image[mask]
            _series(folder / "MASKS_DICOM" / name, mask.astype(float) * 255.0, geometry,
                    patient=patient, series=name, rescale=None)
        _series(folder / "PATIENT_DICOM", np.rint(image), geometry, patient=patient,
                series="ct", rescale=(1.0, -1024.0))
        (folder / "LABELLED_DICOM").mkdir(parents=True, exist_ok=True)
        (folder / "MESHES_VTK").mkdir(parents=True, exist_ok=True)
        (folder / "MESHES_VTK" / "liver.vtk").write_text("# vtk DataFile Version 3.0\n")
    return data
