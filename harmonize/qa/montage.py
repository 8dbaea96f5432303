"""Per-case montages: every class present, cut through its largest connected component.

:func:`case_slices` reorients a case to RAS (no interpolation) and, for each class present
(up to ``max_classes``), picks in each plane the slice holding the most voxels of the class's
largest face-connected component (:mod:`harmonize.qa.components`), so every panel shows the class.
:func:`draw_case` lays the panels out in inches: one cell of axial/coronal/sagittal panels per
class (pixel aspect from the spacing, orientation letters on the edges, the component outlined in
white over the label overlay), and a legend below them whose column count and height are
measured with the renderer first, so 4 or 104 entries fit without overlapping any panel.

Display (radiological): axial and coronal have the patient's right on the left; sagittal has
anterior on the left; superior (axial: anterior) at the top.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmonize.manifest.records import ManifestRecord
from harmonize.qa.components import class_region, components, largest_component_slices, value_boxes
from harmonize.read.volume import Volume

DPI = 100
OVERLAY_ALPHA = 0.5
PANEL_IN = 1.55  # panel edge in inches
LEGEND_CHARS = 44  # longest legend entry (class names are shortened beyond)
VIEWS = ("axial", "coronal", "sagittal")
#: edge letters (left, right, top, bottom) of each view as displayed
LETTERS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"),
           "sagittal": ("A", "P", "S", "I")}
#: Overlay colours for mask values 1..12 (green, red, yellow first, as the 2D slices export);
#: values beyond get golden-ratio hues, so each value keeps one colour in every picture.
PALETTE = ("#00c000", "#ff2020", "#ffe000", "#2080ff", "#ff40ff", "#00e0e0", "#ff8000",
           "#9050ff", "#a0ff40", "#ff90b0", "#b07030", "#ffffff")


def colour(value: int) -> tuple[float, float, float]:
    """Overlay colour (RGB in [0, 1]) of a mask value; the same in every montage."""
    value = int(value)
    if 1 <= value <= len(PALETTE):
        code = PALETTE[value - 1]
        return (int(code[1:3], 16) / 255, int(code[3:5], 16) / 255, int(code[5:7], 16) / 255)
    hue = (value * 0.6180339887) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.75 + 0.25 * (value % 2), 0.7 + 0.3 * ((value // 2) % 2))


def overlay_rgba(mask: np.ndarray) -> np.ndarray:
    """RGBA image: each mask value in its :func:`colour`, background transparent."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
    for value in np.unique(mask):
        if value:
            rgba[mask == value] = (*colour(int(value)), OVERLAY_ALPHA)
    return rgba


@dataclass
class ClassPanels:
    """One class's three views: view -> (image 2D, mask 2D, largest component 2D, aspect)."""

    name: str
    index: tuple[int, int, int]  # RAS voxel indices (x, y, z) of the sagittal/coronal/axial cut
    components: int
    views: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]]


@dataclass
class Panels:
    """What a case's montage shows (see the module doc)."""

    dataset: str
    case_id: str
    classes: list[ClassPanels]
    display_range: tuple[float, float]
    value_names: dict[int, str]
    units: str = ""
    note: str | None = None
    hidden: list[str] = field(default_factory=list)  # present classes beyond max_classes


def _display(plane: np.ndarray) -> np.ndarray:
    return np.asarray(plane)[::-1, ::-1].T


def case_slices(record: ManifestRecord, image: Volume, mask: Volume | None,
                display_range: tuple[float, float], *, units: str = "",
                max_classes: int = 32) -> Panels:
    """The montage of one case (first channel of ``image``, in display units), see module doc.
    Without a usable mask the montage is one cell through the volume's centre."""
    from harmonize.engine.resample import reorient_to_ras
    from harmonize.export import specific_names

    data = image.data[..., 0] if image.data.ndim == 4 else image.data
    ras_image, _ = reorient_to_ras(Volume(data, image.affine))
    img = np.asarray(ras_image.data)
    sx, sy, sz = ras_image.spacing
    aspects = {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}
    ras_mask: np.ndarray | None = None
    note = None
    if mask is not None:
        ras_mask = np.asarray(reorient_to_ras(mask)[0].data)
        if ras_mask.shape != img.shape:
            ras_mask, note = None, "mask not shown: its grid differs from the image's"
    names = specific_names(record.labels)
    cells: list[ClassPanels] = []
    hidden: list[str] = []
    targets: list[tuple[str, np.ndarray | None, tuple[int, int, int], int]] = []
    if ras_mask is not None and ras_mask.any():
        boxes = value_boxes(ras_mask)
        for cls, values in record.labels.items():
            region = class_region(ras_mask, values, boxes)
            if region is None:
                continue
            if len(targets) >= max_classes:
                hidden.append(cls)
                continue
            comps = components(region)
            largest = np.zeros(img.shape, dtype=bool)
            largest[region.box] = comps.labels == 1
            targets.append((cls, largest, largest_component_slices(region, comps),
                            len(comps.sizes)))
    else:
        targets.append(("(no label)", None, (img.shape[0] // 2, img.shape[1] // 2,
                                             img.shape[2] // 2), 0))
    for cls, outline, (ix, iy, iz), n in targets:
        cuts: dict[str, Any] = {"axial": np.s_[:, :, iz], "coronal": np.s_[:, iy, :],
                                "sagittal": np.s_[ix, :, :]}
        views = {}
        for view in VIEWS:
            shown = _display(img[cuts[view]]).astype(np.float32)
            msk = (_display(ras_mask[cuts[view]]) if ras_mask is not None
                   else np.zeros(shown.shape, np.uint8))
            comp = (_display(outline[cuts[view]]) if outline is not None
                    else np.zeros(shown.shape, bool))
            views[view] = (shown, msk, comp, float(aspects[view]))
        cells.append(ClassPanels(cls, (ix, iy, iz), n, views))
    return Panels(record.dataset, record.case_id, cells, display_range,
                  value_names(record.labels, names), units,
                  note, hidden)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _short(text: str) -> str:
    return text if len(text) <= LEGEND_CHARS else text[: LEGEND_CHARS - 1] + "\u2026"


def value_names(labels: dict[str, list[int]], specific: dict[int, str]) -> dict[int, str]:
    """Legend name of each mask value: its most specific class, or, for a value overlapping
    structures share, every structure holding it ("lung tumor + left lung")."""
    sets = {name: {int(v) for v in values} for name, values in labels.items()}
    out = {}
    for value, name in specific.items():
        holders = [n for n, vs in sets.items() if value in vs]
        minimal = [n for n in holders if not any(sets[o] < sets[n] for o in holders)]
        out[value] = " + ".join(minimal) if len(minimal) > 1 else name
    return out


def _legend_kw() -> dict[str, Any]:
    return {"fontsize": 7, "frameon": False, "handlelength": 1.2, "columnspacing": 1.2,
            "borderaxespad": 0.0, "borderpad": 0.2}


def _legend_size(fig: Any, handles: list[Any], width_in: float) -> tuple[int, float]:
    """Columns and height (inches) of a legend of ``handles`` at most ``width_in`` wide."""
    renderer = fig.canvas.get_renderer()

    def measure(ncol: int) -> tuple[float, float]:
        legend = fig.legend(handles=handles, ncol=ncol, **_legend_kw())
        box = legend.get_window_extent(renderer)
        legend.remove()
        return box.width / fig.dpi, box.height / fig.dpi

    one, _ = measure(1)
    ncol = max(1, min(len(handles), int(width_in // max(one, 0.1))))
    while True:
        width, height = measure(ncol)
        if width <= width_in or ncol == 1:
            return ncol, height
        ncol -= 1


def draw_case(panels: Panels) -> Any:
    """The montage figure of one case (module doc); not saved."""
    from matplotlib.patches import Patch

    n = len(panels.classes)
    per_row = 1 if n <= 2 else 2 if n <= 8 else 3
    rows = math.ceil(n / per_row)
    gap, margin, top, cell_title, panel_title = 0.25, 0.15, 0.55, 0.2, 0.18
    cell_w = 3 * PANEL_IN + 2 * 0.08
    width = max(6.0, per_row * cell_w + (per_row - 1) * gap + 2 * margin)
    row_h = cell_title + panel_title + PANEL_IN + 0.12
    shown = sorted({int(v) for c in panels.classes for view in c.views.values()
                    for v in np.unique(view[1]) if v})
    handles = [Patch(facecolor=colour(v), edgecolor="#555555", linewidth=0.5,
                     label=_short(f"{v} {panels.value_names.get(v, 'undeclared')}"))
               for v in shown]
    fig = _figure(width, 1.0)
    ncol, legend_h = _legend_size(fig, handles, width - 2 * margin) if handles else (1, 0.0)
    notes = [t for t in (panels.note, f"{len(panels.hidden)} more classes present, not drawn: "
                         + _short(", ".join(panels.hidden)) if panels.hidden else None) if t]
    height = top + rows * row_h + 0.15 + legend_h + 0.2 * len(notes) + margin
    fig.set_size_inches(width, height)
    lo, hi = panels.display_range
    for i, cell in enumerate(panels.classes):
        r, c = divmod(i, per_row)
        x0 = margin + c * (cell_w + gap)
        y_top = height - top - r * row_h
        fig.text((x0 + cell_w / 2) / width, (y_top - 0.05) / height,
                 _short(f"{cell.name} ({cell.components} comp.)"), ha="center", va="top",
                 fontsize=8, weight="bold")
        for j, view in enumerate(VIEWS):
            image, mask, comp, aspect = cell.views[view]
            left = x0 + j * (PANEL_IN + 0.08)
            bottom = y_top - cell_title - panel_title - PANEL_IN
            ax = fig.add_axes((left / width, bottom / height, PANEL_IN / width, PANEL_IN / height))
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=aspect,
                      interpolation="nearest")
            if mask.any():
                ax.imshow(overlay_rgba(mask), aspect=aspect, interpolation="nearest")
            if comp.any() and min(comp.shape) > 1:
                ax.contour(comp.astype(np.float32), levels=[0.5], colors="white",
                           linewidths=0.6)
            pos = {"axial": 2, "coronal": 1, "sagittal": 0}[view]
            ax.set_title(f"{view} {'xyz'[pos]}={cell.index[pos]}", fontsize=7, pad=2)
            for (x, y, ha, va), letter in zip(((0.02, 0.5, "left", "center"),
                                               (0.98, 0.5, "right", "center"),
                                               (0.5, 0.98, "center", "top"),
                                               (0.5, 0.02, "center", "bottom")),
                                              LETTERS[view]):
                ax.text(x, y, letter, transform=ax.transAxes, ha=ha, va=va, fontsize=6,
                        color="#ffff66")
            ax.set_axis_off()
    y = margin + legend_h
    for text in notes:
        fig.text(margin / width, (y + 0.05) / height, text, fontsize=7, color="red")
        y += 0.2
    if handles:
        fig.legend(handles=handles, ncol=ncol, loc="lower left",
                   bbox_to_anchor=(margin / width, margin / height), **_legend_kw())
    units = f"; grey levels in {panels.units}" if panels.units else ""
    fig.suptitle(f"{panels.dataset} {panels.case_id}: each class through its largest component"
                 f"\n(RAS, radiological: patient's right on the left{units})", fontsize=9,
                 y=1 - 0.08 / height, va="top")
    return fig


def montage(panels: Panels, path: Path) -> None:
    """Draw :func:`draw_case` into the PNG ``path`` (atomic write)."""
    from harmonize.files import atomic_path

    fig = draw_case(panels)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
