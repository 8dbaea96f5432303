"""16-bit grey PNG slices, label masks, visible masks and overlays (the 2D slices export's pictures).

Every picture is made the way the published 2D slice conversion (the seed) makes it (its
``convert_3d_to_2d_correct.py`` for images and masks, ``generate_overlays.py`` for
``masks_visible`` and ``overlays``), so an export of the seed's dataset equals the published one
pixel for pixel:

* images: ``(clip(x, lo, hi) - lo) / (hi - lo) * 65535`` in float64, then **truncated** to
  uint16 (``astype``), not rounded;
* visible masks: each label value, ascending, is filled with its :data:`PALETTE` colour and its
  outer contours (OpenCV ``findContours`` external, simple chain) are drawn over it in the same
  colour, 3 pixels thick, so a structure is outlined one pixel beyond its mask;
* overlays: the image as 8-bit (``uint8(float32(image) / 65535 * 255)``, truncated), blended
  60 % grey + 40 % colour (OpenCV ``addWeighted``, rounded) where the mask is > 0, then the
  same outer contours 2 pixels thick.

Contours and the blend use OpenCV (``opencv-python-headless``, the ``slices`` extra), the library
the published conversion draws them with; without it :func:`visible` and :func:`overlay` raise
an :class:`~harmonize.export.ExportError` saying what to install.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from harmonize.files import atomic_path

#: The seed's colours for values 1, 2, 3 (green, red, yellow; e.g. kidney, tumor, cyst).
SEED_COLOURS = ((0, 255, 0), (255, 0, 0), (255, 255, 0))


_EXTRA_COLOURS = ((0, 0, 255), (255, 0, 255), (0, 255, 255), (255, 128, 0), (128, 0, 255),
                  (0, 128, 255), (255, 0, 128), (128, 255, 0), (0, 255, 128), (160, 82, 45),
                  (255, 160, 160), (160, 160, 255))


PNG_COMPRESS_LEVEL = 1
#: Contour thickness in pixels: masks_visible, overlays (as the published generate_overlays.py).
VISIBLE_CONTOUR, OVERLAY_CONTOUR = 3, 2
#: Overlay weights: grey image, colour (addWeighted(grey, 0.6, colour, 0.4, 0)).
OVERLAY_GREY, OVERLAY_COLOUR = 0.6, 0.4


def palette() -> np.ndarray:
    """(256, 3) uint8 colours by mask value: 0 black, 1-3 the seed's, then fixed distinct
    colours, then golden-ratio hues (deterministic)."""
    colours = [(0, 0, 0), *SEED_COLOURS, *_EXTRA_COLOURS]
    index = len(colours)
    while len(colours) < 256:
        r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.85, 1.0)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
        index += 1
    return np.asarray(colours, dtype=np.uint8)


PALETTE = palette()


def opencv() -> ModuleType:
    """The ``cv2`` module, or an :class:`~harmonize.export.ExportError` naming the package."""
    try:
        import cv2
    except ImportError as exc:
        from harmonize.export import ExportError

        raise ExportError(
            f"the 2D slices export draws contours with OpenCV, which cannot be imported ({exc})",
            hint="pip install 'harmonize-med[slices]' (or opencv-python-headless)",
        ) from None
    return cv2


def to_uint16(data: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Clip to ``window = (lo, hi)`` and map it linearly to 0..65535, truncating: the published
    ``(normalized * 65535).astype(np.uint16)`` with ``normalized = (clip - lo) / (hi - lo)``, all
    in float64 (so a value maps to ``floor``, and only ``hi`` gives 65535)."""
    lo, hi = float(window[0]), float(window[1])
    clipped = np.clip(np.asarray(data, dtype=np.float64), lo, hi)
    normalized = (clipped - lo) / (hi - lo)
    return (normalized * 65535).astype(np.uint16)


def _contours(cv2: ModuleType, mask: np.ndarray, value: int) -> Sequence[np.ndarray]:
    """Outer contours of ``mask == value`` (external only: holes are not outlined)."""
    region = (mask == value).astype(np.uint8)
    found, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return list(found)


def _values(mask: np.ndarray) -> list[int]:
    """The non-zero values present in ``mask``, ascending."""
    return [int(v) for v in np.unique(mask) if v]


def visible(mask: np.ndarray) -> np.ndarray:
    """RGB uint8 picture of a uint8 mask: black background; for each present value, ascending,
    fill with :data:`PALETTE` then draw its outer contours :data:`VISIBLE_CONTOUR` pixels thick
    in the same colour (a later value's fill and contour go over an earlier one's outline)."""
    cv2 = opencv()
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    out = np.zeros(mask.shape + (3,), dtype=np.uint8)
    for value in _values(mask):
        colour = tuple(int(c) for c in PALETTE[value])
        out[mask == value] = colour
        cv2.drawContours(out, _contours(cv2, mask, value), -1, colour, thickness=VISIBLE_CONTOUR)
    return out


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB uint8: the uint16 ``image`` as 8-bit grey (``uint8(float32(image) / 65535 * 255)``),
    where ``mask > 0`` blended 60 % grey + 40 % :data:`PALETTE` colour (``addWeighted``, rounded),
    then every present value's outer contours :data:`OVERLAY_CONTOUR` pixels thick, ascending."""
    cv2 = opencv()
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    grey = (np.asarray(image).astype(np.float32) / 65535.0 * 255).astype(np.uint8)
    out = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
    values = _values(mask)
    if not values:
        return out
    colour = np.ascontiguousarray(PALETTE[mask])
    blended = cv2.addWeighted(out, OVERLAY_GREY, colour, OVERLAY_COLOUR, 0)
    inside = mask > 0
    out[inside] = blended[inside]
    for value in values:
        cv2.drawContours(out, _contours(cv2, mask, value), -1, tuple(int(c) for c in PALETTE[value]),
                         thickness=OVERLAY_CONTOUR)
    return out


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a 2D uint16/uint8 or (H, W, 3) uint8 array as PNG, atomically."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def read_png(path: Path) -> tuple[np.ndarray, str]:
    """Pixels and Pillow mode of a PNG (``I;16`` 16-bit gray, ``L`` 8-bit gray, ``RGB``)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return np.array(image), image.mode
