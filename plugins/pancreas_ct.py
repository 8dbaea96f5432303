"""NIH Pancreas-CT (TCIA): one DICOM series per patient + one label NIfTI per patient.

Released layout (NBIA Data Retriever download + the label zip, extracted side by side)::

    Pancreas-CT/PANCREAS_0001/11-24-2015-PANCREAS0001-Pancreas-18957/Pancreas-99667/1-001.dcm ...
    TCIA_pancreas_labels-02-05-2017/label0001.nii.gz ...

The root may hold ``Pancreas-CT`` directly or inside the NBIA ``manifest-*`` folder. One scan per
patient: case id = patient id = ``PANCREAS_XXXX``; no official split.

Slice order: label slice ``k`` is the annotation of the DICOM slice with the (k+1)-th InstanceNumber,
voxel (i, j) = DICOM (column i, row j): the correspondence of OrganSegC2F/RSTN (``data[:, :,
InstanceNumber - 1] = pixel_array`` against ``label.transpose(1, 0, 2)``) and of ct82 (label slice
k <-> k-th file in name order ``1-001.dcm ...``). The files run from the top slice down, so a DICOM
reader's position-sorted volume has them reversed: SAT-DS reverses the image along z and gives it
the label's affine; nnU-Net reorients both NIfTI files. Here the label is put on the image's own
voxel grid by InstanceNumber, so neither the label header's affine nor the scanner's ordering
direction matters (``read_label``).

Duplicates: TCIA removed PANCREAS_0025 and PANCREAS_0070 in version 2 (2020-09-10) because they
are the scan of PANCREAS_0002, cropped differently; their label files stay in the label zip. Both
the labels and (in older downloads) the image folders are reported as skipped with that reason,
so a patient never appears twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from harmonize.plugins._dicom import dicom_files, read_series

from harmonize.plugin import (
    Case,
    DatasetPlugin,
    DiscoveryError,
    LabelError,
    Skipped,
    Volume,
    hookimpl,
    is_hidden,
    read_volume,
)

PATIENT = re.compile(r"^PANCREAS_(\d{4})$")
LABEL = re.compile(r"^label(\d{4})\.nii(\.gz)?$")
IMAGES_FOLDER = "Pancreas-CT"
LABELS_GLOB = "TCIA_pancreas_labels*"
#: TCIA Pancreas-CT version 2 (2020-09-10): removed as the same scan as PANCREAS_0002
DUPLICATES = {25: "PANCREAS_0002", 70: "PANCREAS_0002"}
DUPLICATE_REASON = ("TCIA removed PANCREAS_{n:04d} from Pancreas-CT in version 2 (2020-09-10): it "
                    "is the scan of {same}, cropped differently; kept out so that patient is not "
                    "counted twice")


class PancreasCT(DatasetPlugin):
    """NIH Pancreas-CT: 80 contrast-enhanced abdominal CTs (82 before TCIA removed two)."""

    id = "pancreas-ct"
    demo = False

    def folders(self, root: Path) -> tuple[Path, Path]:
        """The ``Pancreas-CT`` image folder and the label folder under ``root``."""
        root = self.check_root(root)
        bases = [root, *sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p))]
        images = None
        if any(PATIENT.match(p.name) for p in root.iterdir()):
            images = root
        for base in bases:
            if images is None and (base / IMAGES_FOLDER).is_dir():
                images = base / IMAGES_FOLDER
        if images is None:
            raise DiscoveryError(
                f"no {IMAGES_FOLDER}/PANCREAS_XXXX folders", dataset=self.dataset_id, file=root,
                hint=f"point --root at the folder laid out as {self.descriptor.expected_root}",
            )
        for base in (*bases, images.parent):
            labels = sorted(p for p in base.glob(LABELS_GLOB) if p.is_dir())
            if labels:
                return images, labels[0]
        raise DiscoveryError(
            "no TCIA_pancreas_labels-02-05-2017 folder next to the images",
            dataset=self.dataset_id, file=root,
            hint="download TCIA_pancreas_labels-02-05-2017.zip from the TCIA Pancreas-CT page and "
            "extract it next to Pancreas-CT/",
        )

    def discover(self, root: Path) -> Iterator[Case | Skipped]:
        images, labels_folder = self.folders(root)
        labels: dict[int, Path] = {}
        for entry in sorted(labels_folder.iterdir()):
            match = LABEL.match(entry.name)
            if is_hidden(entry) or match is None or not entry.is_file():
                yield Skipped(entry, "not a labelXXXX.nii.gz file",
                              hint="move unrelated files out of the label folder")
            else:
                labels[int(match.group(1))] = entry
        seen: set[int] = set()
        for entry in sorted(images.iterdir()):
            match = PATIENT.match(entry.name)
            if is_hidden(entry):
                yield Skipped(entry, "hidden or AppleDouble file, not data")
            elif match is None or not entry.is_dir():
                reason = ("a NIfTI conversion, not the released DICOM" if entry.name.endswith(
                    (".nii", ".nii.gz")) else "not a PANCREAS_XXXX patient folder")
                yield Skipped(entry, reason, hint="move unrelated files out of Pancreas-CT/")
            else:
                number = int(match.group(1))
                seen.add(number)
                yield self._case(entry, number, labels.get(number))
        for number, path in sorted(labels.items()):
            if number in seen:
                continue
            if number in DUPLICATES:
                yield Skipped(path, DUPLICATE_REASON.format(n=number, same=DUPLICATES[number]),
                              case_id=f"PANCREAS_{number:04d}")
            else:
                yield Skipped(path, f"no image folder PANCREAS_{number:04d} for this label",
                              case_id=f"PANCREAS_{number:04d}",
                              hint="download the patient's series with the NBIA Data Retriever")

    def _case(self, folder: Path, number: int, label: Path | None) -> Case | Skipped:
        case_id = folder.name
        if number in DUPLICATES:
            return Skipped(folder, DUPLICATE_REASON.format(n=number, same=DUPLICATES[number]),
                           case_id=case_id)
        series = sorted({p.parent for p in folder.rglob("*.dcm") if not is_hidden(p)})
        if not series:
            return Skipped(folder, "no .dcm files under the patient folder", case_id=case_id,
                           hint="re-download the patient with the NBIA Data Retriever")
        if len(series) > 1:
            return Skipped(folder, f"{len(series)} DICOM series folders, expected one: "
                           + ", ".join(str(s.relative_to(folder)) for s in series),
                           case_id=case_id, hint="remove the series that is not the CT scan")
        if label is None:
            return Skipped(folder, f"label{number:04d}.nii.gz is missing", case_id=case_id,
                           hint="re-extract TCIA_pancreas_labels-02-05-2017.zip")
        return Case(case_id=case_id, patient_id=case_id, images=(series[0],), label=label,
                    metadata={"series_folder": series[0].relative_to(folder).as_posix(),
                              "slices": len(dicom_files(series[0]))})

    def read_label(self, case: Case) -> Volume | None:
        """The label NIfTI on the DICOM volume's grid: slice k -> the (k+1)-th instance."""
        if case.label is None:
            return None
        series = read_series(case.images[0])
        label = read_volume(case.label, kind="label")
        expected = series.shape
        if label.data.shape != expected:
            raise LabelError(
                f"label shape {label.data.shape} does not match the series (columns, rows, "
                f"slices) = {expected} of {case.images[0]}",
                dataset=self.dataset_id, case=case.case_id, file=case.label,
                hint="check the label number matches the patient; slices may be missing from "
                "the download",
            )
        data = np.asarray(label.data)
        order = series.by_instance()
        out = np.zeros(expected, dtype=data.dtype)
        for k, item in enumerate(order):
            out[:, :, item.index] = data[:, :, k]
        return Volume(data=out, affine=series.affine, kind="label")

    def fabricate(self, root: Path, *, n_cases: int = 3, seed: int = 0) -> Path:
        from harmonize.plugins.fabricators.pancreas_ct import make_pancreas_ct

        return make_pancreas_ct(root, n_cases=n_cases, seed=seed)


@hookimpl
def harmonize_datasets() -> Iterator[DatasetPlugin]:
    yield PancreasCT()
