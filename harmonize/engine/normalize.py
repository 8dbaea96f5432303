"""The normalization core: one case in, one normalized case out, everything recorded.

:func:`normalize_case` applies, in this order:

1. checks: the label shares the image's grid (shape equal, affine within tolerance; within
   tolerance the label takes the image's affine), label values are non-negative integers;
2. orientation: closest canonical RAS+, no interpolation (:mod:`harmonize.engine.resample`);
3. spacing: optional target spacing; images linear/B-spline, labels nearest neighbour;
   then, with ``crop_foreground``, both cut to the box of image voxels > 0
   (:mod:`harmonize.engine.crop`, MONAI ``CropForeground``);
4. intensity, by modality (:mod:`harmonize.engine.intensity`): CT clip to a window then [0, 1] or
   z-score; MR and CBCT (:data:`PERCENTILE_ZSCORE_MODALITIES`) percentile clip + z-score; PET per
   channel (:mod:`harmonize.engine.pet`: SUV clipped, CT of PET/CT windowed);
   ``intensity="raw"`` changes nothing. Labels are never intensity-scaled.

The returned :class:`Normalized` carries the ordered operations, the parameters that undo the
intensity mapping (:func:`harmonize.engine.intensity.undo_intensity`) and the input's geometry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.engine.intensity import (
    ct_window,
    ct_window_integer,
    dataset_statistics,
    percentile_zscore,
    undo_intensity,
)
from harmonize.engine.intensity import foreground_sample as _foreground_sample
from harmonize.engine.presets import PRESETS, PresetInfo, Settings, preset_settings
from harmonize.engine.resample import (
    needs_resampling,
    reorient_to_ras,
    resample,
    resample_to_ras,
)
from harmonize.errors import HarmonizeError
from harmonize.read.grid import label_on_image_grid as check_label_geometry
from harmonize.read.nifti_writer import write_volume
from harmonize.read.volume import ScaledVolume, Volume

__all__ = [
    "PERCENTILE_ZSCORE_MODALITIES",
    "PRESETS",
    "Normalized",
    "PresetInfo",
    "Settings",
    "check_label_geometry",
    "dataset_statistics",
    "fingerprint",
    "foreground_sample",
    "normalize_case",
    "preset_settings",
    "undo_intensity",
    "write_volume",
]
#: Modalities whose images get the per-image percentile clip + z-score (``mr_percentiles``): MR,
#: and cone-beam CT, whose grey values are not calibrated Hounsfield units (they vary with the
#: scanner and field of view), so a CT window in HU would cut them at arbitrary points.
PERCENTILE_ZSCORE_MODALITIES = ("MR", "CBCT")


@dataclass
class Normalized:
    """A normalized case.

    ``operations``: ordered records such as ``{"op": "reorient", "from": "LPS", "to": "RAS"}``,
    ``{"op": "resample", ...}``, ``{"op": "ct_window", ...}``. ``intensity``: parameters to undo
    the intensity mapping (``{"method": "none"}`` when nothing was changed). ``original``: shape,
    spacing, orientation code, affine and dtype of the input image.
    """

    image: Volume
    label: Volume | None
    operations: list[dict[str, Any]] = field(default_factory=list)
    intensity: dict[str, Any] = field(default_factory=dict)
    original: dict[str, Any] = field(default_factory=dict)


def describe(volume: Volume) -> dict[str, Any]:
    """Shape, spacing, orientation code, affine and dtype of a volume (JSON types, full
    float precision)."""
    return {
        "shape": [int(s) for s in volume.data.shape],
        "spacing": [float(v) for v in volume.spacing],
        "orientation": volume.orientation,
        "affine": [[float(v) for v in row] for row in volume.affine],
        "dtype": str(volume.data.dtype),
    }


def _ct_window_for(
    settings: Settings,
    series_window: tuple[float, float] | None,
    dataset_window: tuple[float, float] | None,
    dataset_stats: dict | None,
) -> tuple[tuple[float, float], str]:
    if isinstance(settings.ct_window, tuple):
        return settings.ct_window, "settings"
    if settings.ct_window == "foreground":
        if dataset_stats is None:
            raise HarmonizeError(
                "this CT normalization clips to the dataset's foreground percentiles, but no "
                "dataset statistics were given",
                hint="run the statistics pass first (the pipeline does it for nnunet-ct) or "
                "pass dataset_stats",
            )
        return (float(dataset_stats["percentile_00_5"]),
                float(dataset_stats["percentile_99_5"])), "dataset foreground percentiles"
    if series_window is not None:
        return (float(series_window[0]), float(series_window[1])), "series"
    if dataset_window is not None:
        return (float(dataset_window[0]), float(dataset_window[1])), "dataset"
    raise HarmonizeError(
        "CT window 'dataset' requested but neither the series nor the dataset descriptor "
        "defines one",
        hint="pass --ct-window LOW HIGH, add ct_window to the dataset descriptor, or use "
        "--ct-window none to keep raw HU",
    )


def normalize_intensity(
    image: Volume,
    *,
    modality: str,
    settings: Settings,
    dataset_window: tuple[float, float] | None = None,
    series_window: tuple[float, float] | None = None,
    dataset_stats: dict | None = None,
    inplace: bool = False,
    channels: Sequence[str] | None = None,
) -> tuple[Volume, dict[str, Any], dict[str, Any] | None]:
    """The intensity step alone: (new image, undo parameters, operation record or None).

    ``inplace=True`` allows overwriting ``image.data`` (only for arrays the caller owns);
    ``channels`` (canonical names) select each channel's rule in a PET dataset.
    """
    none: dict[str, Any] = {"method": "none"}
    if image.kind != "image":
        raise HarmonizeError("a label map is never intensity-scaled",
                             hint="this is a bug in the caller: pass the image volume")
    if settings.intensity == "raw":
        return image, none, None
    modality = modality.upper()
    if modality == "CT":
        if settings.ct_window is None and settings.ct_scaling != "dataset-zscore":
            return image, none, None
        if settings.ct_window is None:  # dataset z-score without clipping makes no sense
            raise HarmonizeError("ct_scaling 'dataset-zscore' needs a CT window",
                                 hint="use the nnunet-ct preset or give a window")
        window, source = _ct_window_for(settings, series_window, dataset_window, dataset_stats)
        if settings.ct_scaling == "dataset-zscore" and dataset_stats is None:
            raise HarmonizeError(
                "dataset-level CT z-score (nnunet-ct) needs dataset statistics",
                hint="run the statistics pass first or pass dataset_stats",
            )
        if image.data.ndim == 4:
            raise HarmonizeError(f"CT image with {image.channels} channels",
                                 hint="a CT image must be a single 3D volume")
        op = {"op": "ct_window", "window": list(window), "source": source,
              "scaling": settings.ct_scaling}
        exact = ct_window_integer(image.data, window, settings.ct_scaling, stats=dataset_stats)
        if exact is not None:  # integer HU: int16 + scl_slope/scl_inter, no float copy
            stored, slope, inter, params = exact
            params.update(window_source=source, modality="CT")
            scaled = ScaledVolume(stored, image.affine, slope, inter, kind="image")
            return scaled, params, op
        data, params = ct_window(image.data, window, settings.ct_scaling, stats=dataset_stats,
                                 inplace=inplace)
        params["window_source"] = source
    elif modality == "PET":  # per channel: SUV clip, CT window, MR rule (engine/pet.py)
        from harmonize.engine.pet import pet_intensity

        window = None
        if "CT" in (channels or ()) and settings.ct_window is not None:
            window = _ct_window_for(settings, series_window, dataset_window, dataset_stats)[0]
        data, params, op = pet_intensity(image.data, channels, settings=settings,
                                         ct_window_hu=window)
    elif modality in PERCENTILE_ZSCORE_MODALITIES:
        if settings.mr_percentiles is None:
            return image, none, None
        data, params = percentile_zscore(image.data, settings.mr_percentiles)
        op = {"op": "percentile_zscore", "percentiles": list(settings.mr_percentiles)}
    else:
        return image, {"method": "none", "reason": f"no intensity rule for {modality}"}, None
    params["modality"] = modality
    return Volume(data=data, affine=image.affine, kind="image"), params, op


def normalize_case(
    image: Volume,
    label: Volume | None,
    *,
    modality: str,
    settings: Settings,
    dataset_window: tuple[float, float] | None = None,
    series_window: tuple[float, float] | None = None,
    dataset_stats: dict | None = None,
    channels: Sequence[str] | None = None,
) -> Normalized:
    """Reorient, resample and intensity-normalize one case (see the module doc for the order).

    ``dataset_window`` is the descriptor's CT window, ``series_window`` a per-series window a
    plugin supplies (it wins over the dataset's); ``dataset_stats`` comes from
    :func:`dataset_statistics` and is required by the ``nnunet-ct`` preset. Raises
    :class:`LabelError` for a misaligned or non-integer label, :class:`HarmonizeError` for
    settings that cannot apply to this case.
    """
    if image.kind != "image":
        raise HarmonizeError("normalize_case got a label map as its image",
                             hint="pass the image first and the label second")
    original = describe(image)
    operations: list[dict[str, Any]] = []
    ras_view, reorient_op = reorient_to_ras(image)
    label_ras = None
    if label is not None:
        label = check_label_geometry(image, label)  # on the image's grid and in its axis order
        label_ras = reorient_to_ras(label)[0]

    if needs_resampling(ras_view, settings.spacing):
        assert settings.spacing is not None
        # resample from the stored array straight into the RAS grid (no reoriented copy)
        image_ras, ops = resample_to_ras(image, settings.spacing, settings.interpolation,
                                         settings.grid)
        operations.extend(ops)
        if label_ras is not None:
            label_ras, label_op = resample(label_ras, settings.spacing, settings.interpolation,
                                           settings.grid)
            label_ras.affine = image_ras.affine  # same grid by construction; make it exact
            operations.append(label_op)
    else:
        image_ras = ras_view
        if reorient_op:
            operations.append(reorient_op)

    if settings.crop_foreground:
        from harmonize.engine.crop import crop_to_foreground

        cropped, label_ras, crop_op = crop_to_foreground(image_ras, label_ras)
        operations.append(crop_op)
        if cropped is not image_ras:
            image_ras = cropped  # a copy: ours to overwrite below
    image_out, intensity, op = normalize_intensity(
        image_ras, modality=modality, settings=settings, dataset_window=dataset_window,
        series_window=series_window, dataset_stats=dataset_stats,
        inplace=image_ras is not ras_view,  # a resampled array is ours to overwrite
        channels=channels,
    )
    if op:
        operations.append(op)
    return Normalized(image=image_out, label=label_ras, operations=operations,
                      intensity=intensity, original=original)


def _hash_dtype(data: np.ndarray) -> np.dtype:
    """Canonical storage class for hashing: smallest signed int holding the values, or float."""
    if data.dtype.kind in "iub":
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        for cand in (np.int16, np.int32, np.int64):
            if np.iinfo(cand).min <= lo and hi <= np.iinfo(cand).max:
                return np.dtype(cand).newbyteorder("<")
    if data.dtype.itemsize <= 4:
        return np.dtype("<f4")
    return np.dtype("<f8")


def fingerprint(volume: Volume) -> str:
    """SHA-256 of the RAS-canonical voxels + shape + spacing (rounded to 0.001 mm).

    The same image stored as .nii or .nii.gz, in any axis order/flip, or as int16 vs int32 gives
    the same value (integers hash as the smallest signed type holding them, floats as float32
    unless stored as float64). Used to find the same case in two datasets.
    """
    ras, _ = reorient_to_ras(volume)
    data = ras.data
    dtype = _hash_dtype(data)
    digest = hashlib.sha256()
    spacing = ",".join(f"{v:.3f}" for v in ras.spacing)
    digest.update(f"{volume.kind}|{list(data.shape)}|{spacing}|{dtype.str}\n".encode())
    arrays = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    for arr in arrays:
        plane = max(1, arr.shape[0] * arr.shape[1] * dtype.itemsize)
        step = max(1, (1 << 24) // plane)
        for k in range(0, arr.shape[2], step):
            digest.update(arr[:, :, k : k + step].astype(dtype, copy=False).tobytes(order="F"))
    return digest.hexdigest()


def write_case(normalized: Normalized, image_path: Path, label_path: Path | None = None) -> None:
    """Write the normalized image (and label, when both exist) atomically."""
    write_volume(normalized.image, image_path)
    if normalized.label is not None and label_path is not None:
        write_volume(normalized.label, label_path)


def foreground_sample(
    image: Volume | np.ndarray, label: Volume | np.ndarray, *, max_voxels: int = 10000,
    seed: int = 0,
) -> np.ndarray:
    """``max_voxels`` raw intensities sampled (with replacement) where ``label > 0``.

    The nnU-Net fingerprint convention (see :func:`harmonize.engine.intensity.foreground_sample`); pool
    the samples of all cases with :func:`dataset_statistics` for the ``nnunet-ct`` preset.
    """
    image_data = image.data if isinstance(image, Volume) else np.asarray(image)
    label_data = label.data if isinstance(label, Volume) else np.asarray(label)
    return _foreground_sample(image_data, label_data, max_voxels=max_voxels, seed=seed)
