"""The PET intensity convention: SUV kept (clipped, never z-scored), CT channels of PET/CT windowed.

A PET dataset (descriptor ``modality: PET``) is normalized channel by channel, each channel by
the modality its canonical name has in ``registry/channels.yaml``:

* ``PET`` channels with ``Settings.pet_intensity == "suv-clip"`` (the default): the values stay in
  SUV units, clipped to :data:`SUV_CLIP` (below 0 is reconstruction noise; above 50 are only
  physiological peaks such as the bladder, never needed to tell a lesion). With
  ``"percentile-zscore"`` (the ``sat`` preset, as SAT-DS's ``Normalization``) they are clipped
  to the image's ``mr_percentiles`` and z-scored like MR;
* ``CT`` channels (the CT of a PET/CT case) follow the CT rule with the window the
  caller resolved (``None``: raw HU) and ``ct_scaling`` ``unit`` or ``zscore``;
* other channels (MR of PET/MR) follow the MR rule.

The parameters follow :func:`harmonize.engine.intensity.undo_intensity`'s contract (``offset``
and ``scale`` per channel, ``x = y * scale + offset``; exact inside each channel's ``clip``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harmonize.engine.intensity import clip_scale, ct_window, percentile_zscore
from harmonize.engine.presets import PET_INTENSITIES, Settings
from harmonize.errors import HarmonizeError
from harmonize.labels.channels import load_channels

__all__ = ["PET_INTENSITIES", "SUV_CLIP", "pet_intensity"]

#: SUV range kept by the default PET convention (``suv-clip``)
SUV_CLIP = (0.0, 50.0)


def pet_intensity(
    data: np.ndarray, channels: Sequence[str] | None, *, settings: Settings,
    ct_window_hu: tuple[float, float] | None,
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """``data`` (3D, or 4D with channels last) normalized per channel: (array, undo parameters,
    operation record). ``channels`` are the canonical names in the array's channel order
    (``None``: one PET channel)."""
    stack = [data] if data.ndim == 3 else [data[..., c] for c in range(data.shape[3])]
    names = list(channels) if channels else ["PET"] * len(stack)
    if len(names) != len(stack):
        raise HarmonizeError(f"{len(stack)} image channel(s) but {len(names)} channel name(s) "
                             f"{names}", hint="the descriptor's channels must name every channel")
    modalities = load_channels().modalities
    outs, rules, clips, offsets, scales = [], [], [], [], []
    for name, channel in zip(names, stack):
        out, rule, clip, offset, scale = _channel(channel, modalities.get(name, "MR"), settings,
                                                  ct_window_hu)
        outs.append(out)
        rules.append(rule)
        clips.append(clip)
        offsets.append(offset)
        scales.append(scale)
    params: dict[str, Any] = {"method": "pet", "pet_intensity": settings.pet_intensity,
                              "channels": names, "rules": rules}
    op = {"op": "pet", "pet_intensity": settings.pet_intensity, "channels": names,
          "rules": rules}
    if data.ndim == 3:
        params.update(clip=clips[0], offset=offsets[0], scale=scales[0])
        return outs[0], params, op
    params.update(clip=clips, offset=offsets, scale=scales)
    return np.stack(outs, axis=-1), params, op


def _channel(
    channel: np.ndarray, modality: str, settings: Settings, window: tuple[float, float] | None,
) -> tuple[np.ndarray, str, list[float] | None, float, float]:
    """(normalized channel, rule name, clip, offset, scale) of one channel."""
    if modality == "PET" and settings.pet_intensity == "suv-clip":
        return clip_scale(channel, SUV_CLIP, 0.0, 1.0), "suv-clip", list(SUV_CLIP), 0.0, 1.0
    if modality == "CT":
        if window is None:
            return np.asarray(channel, dtype=np.float32), "raw", None, 0.0, 1.0
        if settings.ct_scaling == "dataset-zscore":
            raise HarmonizeError("the CT channel of a PET/CT case cannot take a dataset-level "
                                 "z-score (nnunet-ct is CT only)",
                                 hint="use the default settings or the sat preset for PET/CT")
        out, p = ct_window(channel, window, settings.ct_scaling)
        return out, f"ct_window-{settings.ct_scaling}", list(window), p["offset"], p["scale"]
    if settings.mr_percentiles is None:
        return np.asarray(channel, dtype=np.float32), "raw", None, 0.0, 1.0
    out, p = percentile_zscore(channel, settings.mr_percentiles)
    return out, "percentile_zscore", p["clip"], p["offset"], p["scale"]
