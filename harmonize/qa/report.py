"""Write a :class:`~harmonize.qa.summary.QAReport` to a folder: ``qa.json``, PNG charts, montages, HTML.

Layout of ``out``::

    index.html                  the report; links every picture below
    qa.json                     every number (QAReport.to_dict() plus the file names; README)
    overall/geometry.png        spacing and shape histograms (x, y, z)
    overall/intensity.png       intensity histograms per modality
    overall/labels.png          voxels and presence per class
    datasets/<id>/geometry.png, intensity.png, labels.png   the same per dataset
    datasets/<id>/montage-<n>.png   montage case n: each class through its largest component
                                    (:mod:`harmonize.qa.montage`)

Charts are drawn with matplotlib's Agg canvas (no display, no pyplot global state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harmonize import jsonio
from harmonize.files import atomic_path, write_text_atomic
from harmonize.qa.html_report import render_html
from harmonize.qa.inspect import AXES
from harmonize.qa.montage import montage
from harmonize.qa.summary import QAReport

DPI = 80


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _title(fig: Any, text: str) -> None:
    """Suptitle in the top 0.3 inch, the subplots laid out below it (never under it)."""
    height = fig.get_figheight()
    fig.suptitle(text, fontsize=10, y=1 - 0.08 / height, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _stairs(ax: Any, hist: dict[str, list[float]], title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if not hist.get("counts"):
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    ax.stairs(hist["counts"], hist["edges"], fill=True, color="#4c72b0")


def geometry_chart(summary: dict[str, Any], path: Path, title: str) -> None:
    """Spacing (mm) and shape (voxels) histograms per axis."""
    fig = _figure(10, 5.5)
    axes = fig.subplots(2, 3)
    for row, (key, unit) in enumerate((("spacing", "mm"), ("shape", "voxels"))):
        for col, axis in enumerate(AXES):
            info = summary[key].get(axis) or {}
            name = f"{key} {axis}"
            if info:
                name += f" (median {info['median']:g})"
            _stairs(axes[row][col], info.get("histogram", {}), name, unit)
            axes[row][col].set_ylabel("cases", fontsize=8)
    _title(fig, f"{title}: geometry of {summary['readable_cases']} readable cases")
    _save(fig, path)


def intensity_chart(summary: dict[str, Any], path: Path, title: str) -> None:
    """Estimated voxel-count histogram per channel (dataset) or modality (overall)."""
    groups = summary["intensity"] or {"(none)": {}}
    fig = _figure(max(4.0, 3.6 * len(groups)), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(groups)))
    for ax, (name, info) in zip(axes, groups.items()):
        label = name if not info else (f"{name}: min {info['min']:.4g}, mean {info['mean']:.4g}, "
                                       f"max {info['max']:.4g}")
        units = summary.get("units", {}).get(name, {}).get("units", "intensity")
        _stairs(ax, info.get("histogram", {}), label, units)
        ax.set_ylabel("voxels (estimated)", fontsize=8)
    _title(fig, f"{title}: intensity")
    _save(fig, path)


def labels_chart(summary: dict[str, Any], path: Path, title: str) -> None:
    """Voxels per class (log scale) and the share of annotated cases where it is present."""
    labels = summary["labels"]
    names = list(labels)
    fig = _figure(10, max(2.5, 0.35 * len(names) + 1.5))
    ax_vox, ax_pres = fig.subplots(1, 2)
    if not names:
        for ax in (ax_vox, ax_pres):
            ax.text(0.5, 0.5, "no labelled cases", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
    else:
        y = np.arange(len(names))
        ax_vox.barh(y, [max(labels[n]["voxels"], 0) for n in names], color="#55a868")
        if any(labels[n]["voxels"] > 0 for n in names):
            from matplotlib.ticker import NullFormatter

            ax_vox.set_xscale("log")
            ax_vox.xaxis.set_minor_formatter(NullFormatter())
        ax_vox.set_title("voxels per class (all cases)", fontsize=9)
        share = [labels[n]["present_cases"] / labels[n]["annotated_cases"] for n in names]
        ax_pres.barh(y, share, color="#c44e52")
        ax_pres.set_xlim(0, 1)
        ax_pres.set_title("present in share of annotated cases", fontsize=9)
        for ax in (ax_vox, ax_pres):
            ax.set_yticks(y, names, fontsize=7)
            ax.margins(y=0.5 / len(names))
            ax.invert_yaxis()
            ax.tick_params(axis="x", labelsize=7)
    _title(fig, f"{title}: labels")
    _save(fig, path)


def write_report(report: QAReport, out: Path) -> dict[str, Any]:
    """Write every file listed in the module doc under ``out``; return the written file names
    (relative to ``out``), as also stored under ``files`` in ``qa.json``."""
    out = Path(out)
    files: dict[str, Any] = {"overall": {}, "datasets": {}}
    sections: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("overall", "overall", report.overall, None)]
    sections += [(f"datasets/{d}", d, s, d) for d, s in report.datasets.items()]
    for folder, title, summary, dataset in sections:
        entry: dict[str, str] = {}
        for name, draw in (("geometry", geometry_chart), ("intensity", intensity_chart),
                           ("labels", labels_chart)):
            rel = f"{folder}/{name}.png"
            draw(summary, out / rel, title)
            entry[name] = rel
        for n, panels in enumerate(report.panels.get(dataset or "", []) if dataset else []):
            rel = f"{folder}/montage-{n}.png"
            montage(panels, out / rel)
            entry[f"montage {panels.case_id}"] = rel
        if dataset is None:
            files["overall"] = entry
        else:
            files["datasets"][dataset] = entry
    doc = report.to_dict()
    doc["files"] = {**files, "index": "index.html"}
    write_text_atomic(out / "qa.json", jsonio.dumps(doc, indent=1, allow_nan=False) + "\n")
    write_text_atomic(out / "index.html", render_html(report, files))
    return doc["files"]
