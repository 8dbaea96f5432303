"""16-bit grey PNG slices, label masks, visible masks and overlays (the 2D slices export's pictures).

Masks keep their label values as 8-bit PNG grey levels; :data:`PALETTE` colours them for the
visible masks and overlays (the first three as the published 2D slice layout the export reproduces colours them).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harmonize.engine.intensity import clip_scale
from harmonize.files import atomic_path

#: The seed's colours for values 1, 2, 3 (green, red, yellow; e.g. kidney, tumor, cyst).
SEED_COLOURS = ((0, 255, 0), (255, 0, 0), (255, 255, 0))


_EXTRA_COLOURS = ((0, 0, 255), (255, 0, 255), (0, 255, 255), (255, 128, 0), (128, 0, 255),
                  (0, 128, 255), (255, 0, 128), (128, 255, 0), (0, 255, 128), (160, 82, 45),
                  (255, 160, 160), (160, 160, 255))


PNG_COMPRESS_LEVEL = 1


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


def to_uint16(data: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Clip to ``window`` and map it linearly to 0..65535 (the engine's clip-and-scale, then
    rounding to nearest)."""
    lo, hi = float(window[0]), float(window[1])
    unit = clip_scale(data, (lo, hi), lo, hi - lo)
    return np.rint(unit.astype(np.float64) * 65535.0).astype(np.uint16)


def visible(mask: np.ndarray) -> np.ndarray:
    """RGB uint8 image of a uint8 mask with :data:`PALETTE`."""
    return PALETTE[mask]


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """60 % CT (``image // 257`` as 8-bit) + 40 % colour where ``mask > 0``, integer rounding."""
    gray = (image // 257).astype(np.uint16)
    out = np.repeat(gray[..., None], 3, axis=-1)
    colour = PALETTE[mask].astype(np.uint16)
    blended = (6 * out + 4 * colour + 5) // 10
    out = np.where((mask > 0)[..., None], blended, out)
    return out.astype(np.uint8)


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
