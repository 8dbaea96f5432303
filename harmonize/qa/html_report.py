"""``index.html`` of a QA report: summary, class, per-split, intensity and component tables, the
charts and montages (files written by :mod:`harmonize.qa.report`), and the flagged cases."""

from __future__ import annotations

import html
from typing import Any

from harmonize.qa.inspect import FLAG_CODES, THRESHOLDS
from harmonize.qa.summary import QAReport

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
             r["volume_ml"], r["components"]] for n, r in labels.items()]
    return _table(["class", "annotated cases", "present", "absent", "voxels", "volume (ml)",
                   "components"], rows)


def _split_table(splits: dict[str, dict[str, Any]]) -> str:
    """One row per class, per split: present / annotated cases and voxels."""
    if not any(splits.values()):
        return ""
    names = sorted({n for table in splits.values() for n in table})
    header = ["class"] + [f"{s}: present/annotated, voxels" for s in splits]
    rows = [[n] + [f"{t[n]['present_cases']}/{t[n]['annotated_cases']}, {t[n]['voxels']}"
                   if n in t else "-" for t in splits.values()] for n in names]
    return "<h3>Classes per split</h3>" + _table(header, rows)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _intensity_table(summary: dict[str, Any]) -> str:
    """Pooled foreground and per-class statistics per channel, with units."""
    keys = ("mean", "std", "percentile_00_5", "median", "percentile_99_5")
    units = summary.get("units", {})
    rows = []
    groups = [("foreground", summary.get("foreground_intensity", {}))]
    groups += list(summary.get("class_intensity", {}).items())
    for region, per_channel in groups:
        for channel, st in per_channel.items():
            unit = units.get(channel, {})
            clip = "; clipped to [" + ", ".join(f"{v:g}" for v in unit["clipped"][0]) + "]" \
                if unit.get("clipped") else ""
            rows.append([region, channel, unit.get("units", "?") + clip]
                        + [_num(st[k]) for k in keys])
    if not rows:
        return ""
    return ("<h3>Intensity over the foreground and per class (pooled sample, as nnU-Net's "
            "fingerprint)</h3>" + _table(["region", "channel", "units", "mean", "std", "p0.5",
                                          "p50", "p99.5"], rows, left=3))


def _component_table(components: dict[str, Any]) -> str:
    if not components:
        return ""
    rows = [[n, r["cases"], r["total"], _num(r["median_per_case"]), r["max_per_case"],
             _num(r["largest_mm3"]), _num(r["smallest_mm3"])] for n, r in components.items()]
    return ("<h3>Connected components (lesion counts) per class</h3>"
            + _table(["class", "cases present", "components", "median per case", "max per case",
                      "largest (mm\u00b3)", "smallest (mm\u00b3)"], rows))


def _images(files: dict[str, str]) -> str:
    return "".join(f"<p><a href='{html.escape(f)}'><img src='{html.escape(f)}' alt='{html.escape(k)}'>"
                   f"</a><br><small>{html.escape(k)}</small></p>" for k, f in files.items())


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
        _split_table(report.overall["splits"]), _images(files["overall"]),
    ]
    for dataset, summary in report.datasets.items():
        modality = ", ".join(summary["modality"])
        kind = "normalized (harmonize run)" if summary["normalized"] else "source files"
        parts += [f"<h2 id='ds-{html.escape(dataset)}'>{html.escape(dataset)}</h2>",
                  f"<p>{html.escape(modality)}; {html.escape(kind)}; {summary['cases']} cases.</p>",
                  _table(summary_header, [_summary_rows(dataset, summary)]),
                  _label_table(summary["labels"]), _split_table(summary["splits"]),
                  _intensity_table(summary), _component_table(summary["components"]),
                  _images(files["datasets"][dataset])]
    flag_rows = [[f["dataset"], f["case_id"], f["code"], f["message"]] for f in report.flags]
    parts += ["<h2 id='flags'>Flagged cases</h2>",
              _table(["dataset", "case", "flag", "detail"], flag_rows, left=4) if flag_rows
              else "<p>No case flagged.</p>",
              "<p>Flag codes: " + html.escape(", ".join(FLAG_CODES)) + " (see harmonize.qa.inspect).</p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


