"""Read one case's image and label as the engine needs them: channels stacked, the label checked
against the image's grid. Shared by manifests (fingerprints) and the pipeline."""

from __future__ import annotations

import numpy as np

from harmonize.engine.normalize import check_label_geometry
from harmonize.errors import HarmonizeError, LabelError, ReadError
from harmonize.manifest.records import Case
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.read.volume import Volume, read_volume


def case_channels(plugin: DatasetPlugin, case: Case) -> list[str] | None:
    """Channel names of the case (its own, else the descriptor's), or ``None``."""
    desc = plugin.descriptor
    if case.channel_names:
        return list(case.channel_names)
    return list(desc.channels) if desc.channels else None


def read_label_volume(plugin: DatasetPlugin, case: Case) -> Volume | None:
    """The case's label map via the plugin's reader, or nibabel for plain files."""
    custom = plugin.read_label(case)
    if custom is not None or case.label is None:
        return custom
    return read_volume(case.label, kind="label")


def rounded_affine(affine: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 6) for v in row] for row in affine]


def load_image(plugin: DatasetPlugin, case: Case) -> Volume:
    """The case's image as (X, Y, Z) or (X, Y, Z, C). One file per channel is stacked; a 4D image
    where the dataset declares no channels is a :class:`ReadError` (as are unreadable files,
    NaN/inf voxels and broken affines, from :func:`harmonize.read.volume.read_volume`)."""
    dataset = plugin.dataset_id
    channels = case_channels(plugin, case)
    n = len(channels) if channels else 1
    file = case.images[0] if len(case.images) == 1 else None
    volume = plugin.read_image(case)
    if volume is None and len(case.images) == 1:
        volume = read_volume(case.images[0], kind="image", allow_channels=n > 1)
    elif volume is None:
        parts = [read_volume(p, kind="image", allow_channels=False) for p in case.images]
        for path, part in zip(case.images[1:], parts[1:]):
            if part.data.shape != parts[0].data.shape or not np.allclose(
                part.affine, parts[0].affine, rtol=1e-3, atol=1e-3
            ):
                raise ReadError(
                    f"channel grid (shape {part.data.shape}, affine {rounded_affine(part.affine)}) "
                    f"differs from the first channel's ({parts[0].data.shape}, "
                    f"{rounded_affine(parts[0].affine)})", dataset=dataset, case=case.case_id, file=path,
                    hint="the channels of a case must be 3D volumes on one grid",
                )
        volume = Volume(np.stack([p.data for p in parts], axis=-1), parts[0].affine, "image")
    else:
        volume = Volume(np.asarray(volume.data), np.asarray(volume.affine), "image")
    shape = volume.data.shape
    if volume.data.ndim not in (3, 4) or (volume.data.ndim == 4) != (n > 1) or (
        n > 1 and shape[3] != n
    ):
        raise ReadError(
            f"image of shape {shape} where {'a 3D volume' if n == 1 else f'{n} channels'} "
            "was expected", dataset=dataset, case=case.case_id, file=file,
            hint="check the file, and the channels declared in the dataset's descriptor",
        )
    return volume


def load_label(plugin: DatasetPlugin, case: Case, image: Volume) -> Volume | None:
    """The case's label map on the image's grid (:func:`check_label_geometry`: same shape, affine
    within tolerance, non-negative integer values), or ``None``."""
    volume = read_label_volume(plugin, case)
    if volume is None:
        return None
    try:
        return check_label_geometry(image, Volume(volume.data, volume.affine, "label"))
    except HarmonizeError as exc:
        raise LabelError(exc.message, dataset=plugin.dataset_id, case=case.case_id,
                         file=exc.file or case.label, hint=exc.hint) from exc
