"""Install a plugin module as a real (file-based) distribution, to test the entry-point path."""

from __future__ import annotations

from pathlib import Path

from harmonize.plugin.catalog import ENTRY_POINT_GROUP


def install_entry_point(site: Path, distribution: str, module: str, source: str, *,
                        entry: str | None = None, version: str = "0.1") -> Path:
    """Write ``module.py`` and a ``<distribution>-<version>.dist-info`` declaring it in the
    ``harmonize`` entry-point group into ``site``; put ``site`` on ``sys.path`` to "install" it."""
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{entry or module} = {module}\n", encoding="utf-8"
    )
    return site
