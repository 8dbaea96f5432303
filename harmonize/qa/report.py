"""Write a :class:`~harmonize.qa.summary.QAReport` to a folder: ``qa.json``, PNG charts, montages, HTML.

Layout of ``out``::

    index.html                  the report; links every picture below
    qa.json                     every number (QAReport.to_dict() plus the file names)
    overall/geometry.png        spacing and shape histograms (x, y, z)
    overall/intensity.png       intensity histograms per modality
    overall/labels.png          voxels and presence per class
    datasets/<id>/geometry.png, intensity.png, labels.png   the same per dataset
    datasets/<id>/montage.png   axial/coronal/sagittal slices of a few cases, mask overlaid

Charts are drawn with matplotlib's Agg canvas (no display, no pyplot global state).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from harmonize import jsonio
from harmonize.files import atomic_path, write_text_atomic
from harmonize.qa.inspect import AXES, FLAG_CODES, THRESHOLDS, Panels
from harmonize.qa.summary import QAReport

DPI = 80
OVERLAY_ALPHA = 0.5


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


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
    fig.suptitle(f"{title}: geometry of {summary['readable_cases']} readable cases", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def intensity_chart(summary: dict[str, Any], path: Path, title: str) -> None:
    """Estimated voxel-count histogram per channel (dataset) or modality (overall)."""
    groups = summary["intensity"] or {"(none)": {}}
    fig = _figure(max(4.0, 3.6 * len(groups)), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(groups)))
    for ax, (name, info) in zip(axes, groups.items()):
        label = name if not info else (f"{name}: min {info['min']:.4g}, mean {info['mean']:.4g}, "
                                       f"max {info['max']:.4g}")
        _stairs(ax, info.get("histogram", {}), label, "intensity")
        ax.set_ylabel("voxels (estimated)", fontsize=8)
    fig.suptitle(f"{title}: intensity", fontsize=10)
    fig.tight_layout()
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
            ax.invert_yaxis()
            ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"{title}: labels", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


#: Overlay colours for mask values 1, 2, 3, ... (cycled): distinct on grey; the first
#: three (green, red, yellow) as the 2D slices export colours values 1, 2, 3.
PALETTE = ("#00c000", "#ff2020", "#ffe000", "#2080ff", "#ff40ff", "#00e0e0", "#ff8000",
           "#9050ff", "#a0ff40", "#ff90b0", "#b07030", "#ffffff")


def colour(value: int) -> tuple[float, float, float]:
    """Overlay colour (RGB in [0, 1]) of a mask value."""
    code = PALETTE[(int(value) - 1) % len(PALETTE)]
    return tuple(int(code[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def overlay_rgba(mask: np.ndarray) -> np.ndarray:
    """RGBA image: each mask value in its :func:`colour`, background transparent."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
    for value in np.unique(mask):
        if value == 0:
            continue
        rgba[mask == value] = (*colour(int(value)), OVERLAY_ALPHA)
    return rgba


def montage(panels: list[Panels], path: Path, title: str) -> None:
    """One row per case: axial, coronal and sagittal slice (see qa.case_slices), mask overlaid."""
    from matplotlib.patches import Patch

    fig = _figure(9, 3.0 * len(panels) + 0.9)
    axes = np.atleast_2d(fig.subplots(len(panels), 3))
    shown: dict[int, str] = {}
    for row, case in zip(axes, panels):
        lo, hi = case.display_range
        for ax, (view, (image, mask, aspect)) in zip(row, case.views.items()):
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1,
                      aspect=aspect, interpolation="nearest")
            if mask is not None and mask.any():
                ax.imshow(overlay_rgba(mask), aspect=aspect, interpolation="nearest")
                for value in np.unique(mask):
                    if value:
                        shown[int(value)] = case.value_names.get(int(value), "undeclared")
            ax.set_title(f"{case.case_id} {view}", fontsize=8)
            ax.set_axis_off()
        if case.note:
            row[0].text(0, -0.08, case.note, transform=row[0].transAxes, fontsize=7, color="red")
    if shown:
        handles = [Patch(color=colour(v), label=f"{v}: {n}") for v, n in sorted(shown.items())]
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7)
    fig.suptitle(f"{title}: slices through the mask's centre (RAS; patient's right on the left)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if shown else 0, 1, 0.97))
    _save(fig, path)


# ------------------------------------------------------------------------------------------ HTML

_CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;
margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;font-size:90%}
th{background:#eee}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #ddd;
margin:4px 0}"""


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    head = "".join(f"<th class='l'>{html.escape(h)}</th>" if i < left else f"<th>{html.escape(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td class='l'>{html.escape(str(v))}</td>" if i < left
                         else f"<td>{html.escape(str(v))}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_rows(name: str, s: dict[str, Any]) -> list[Any]:
    return [name, s["cases"], s["patients"], s["labelled_cases"], s["readable_cases"],
            s["flagged_cases"], ", ".join(f"{k} {v}" for k, v in s["flags"].items()) or "-"]


def _label_table(labels: dict[str, Any]) -> str:
    if not labels:
        return "<p>No labelled cases.</p>"
    rows = [[n, r["annotated_cases"], r["present_cases"], r["absent_cases"], r["voxels"],
             r["volume_ml"]] for n, r in labels.items()]
    return _table(["class", "annotated cases", "present", "absent", "voxels", "volume (ml)"], rows)


def _images(files: dict[str, str]) -> str:
    return "".join(f"<p><a href='{html.escape(f)}'><img src='{html.escape(f)}' alt='{html.escape(k)}'>"
                   f"</a></p>" for k, f in files.items())


def render_html(report: QAReport, files: dict[str, Any]) -> str:
    """The text of ``index.html``."""
    summary_header = ["dataset", "cases", "patients", "labelled", "readable", "flagged", "flags"]
    rows = [_summary_rows(d, s) for d, s in report.datasets.items()]
    rows.append(_summary_rows("overall", report.overall))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>harmonize QA</title>",
        f"<style>{_CSS}</style></head><body><h1>harmonize QA</h1>",
        "<p>Manifests: " + ", ".join(html.escape(str(m)) for m in report.manifests) + "</p>",
        "<p>Numbers: <a href='qa.json'>qa.json</a>. Thresholds: "
        + html.escape(", ".join(f"{k} {v:g}" for k, v in THRESHOLDS.items())) + "</p>",
        "<ul>" + "".join(f"<li><a href='#ds-{html.escape(d)}'>{html.escape(d)}</a></li>"
                         for d in report.datasets) + "<li><a href='#flags'>flagged cases</a></li></ul>",
        "<h2>Summary</h2>", _table(summary_header, rows),
        "<h2>Overall</h2>", _label_table(report.overall["labels"]),
        _images(files["overall"]),
    ]
    for dataset, summary in report.datasets.items():
        modality = ", ".join(summary["modality"])
        kind = "normalized (harmonize run)" if summary["normalized"] else "source files"
        parts += [f"<h2 id='ds-{html.escape(dataset)}'>{html.escape(dataset)}</h2>",
                  f"<p>{html.escape(modality)}; {html.escape(kind)}; {summary['cases']} cases.</p>",
                  _table(summary_header, [_summary_rows(dataset, summary)]),
                  _label_table(summary["labels"]), _images(files["datasets"][dataset])]
    flag_rows = [[f["dataset"], f["case_id"], f["code"], f["message"]] for f in report.flags]
    parts += ["<h2 id='flags'>Flagged cases</h2>",
              _table(["dataset", "case", "flag", "detail"], flag_rows, left=4) if flag_rows
              else "<p>No case flagged.</p>",
              "<p>Flag codes: " + html.escape(", ".join(FLAG_CODES)) + " (see harmonize.qa.inspect).</p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


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
        if dataset is not None and report.panels.get(dataset):
            rel = f"{folder}/montage.png"
            montage(report.panels[dataset], out / rel, title)
            entry["montage"] = rel
        if dataset is None:
            files["overall"] = entry
        else:
            files["datasets"][dataset] = entry
    doc = report.to_dict()
    doc["files"] = {**files, "index": "index.html"}
    write_text_atomic(out / "qa.json", jsonio.dumps(doc, indent=1, allow_nan=False) + "\n")
    write_text_atomic(out / "index.html", render_html(report, files))
    return doc["files"]
