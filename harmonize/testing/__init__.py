"""Fabricated datasets in their real layouts, and checks for plugin authors.

``make_<dataset>(root, n_cases=...)`` writes a tiny copy of a dataset's released layout (real folder
and file names, realistic affines, spacings and label values, including the release's quirks).
:func:`check_plugin` runs a plugin's discovery on such a tree and validates every record::

    from harmonize.testing import check_plugin, make_kits23
    report = check_plugin(KiTS23(), make_kits23(tmp_path, n_cases=2))
    assert len(report.records) == 2
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from harmonize.errors import ErrorRecord
from harmonize.manifest.build import build_manifest, validate_manifest
from harmonize.manifest.records import ManifestRecord
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.discovery import Discovery, discover
from harmonize.testing.abdomen import make_abdomenct1k, make_flare22, make_word
from harmonize.testing.amos import make_amos
from harmonize.testing.brats import make_brats, make_brats2021, make_brats2023_gli
from harmonize.testing.btcv import make_btcv
from harmonize.testing.chaos import make_chaos
from harmonize.testing.ctspine1k import make_ctspine1k
from harmonize.testing.entrypoints import install_entry_point
from harmonize.testing.kits import make_kits, make_kits23
from harmonize.testing.lidc import make_lidc
from harmonize.testing.lits import make_lits
from harmonize.testing.msd import make_msd_task
from harmonize.testing.normalized import make_normalized_dataset
from harmonize.testing.pancreas_ct import make_pancreas_ct
from harmonize.testing.recist import make_recist
from harmonize.testing.totalsegmentator import make_totalsegmentator
from harmonize.testing.verse import make_verse
from harmonize.testing.volumes import ct_phantom, ellipsoid, slice_first_affine, write_nifti


@dataclass
class PluginCheck:
    """What :func:`check_plugin` found."""

    discovery: Discovery
    records: list[ManifestRecord]
    errors: list[ErrorRecord]
    schema_problems: list[str]


def check_plugin(plugin: DatasetPlugin, root: Path, *, allow_errors: bool = False) -> PluginCheck:
    """Discover ``root`` with ``plugin``, build and schema-validate a manifest in a temp folder.

    Raises ``AssertionError`` listing every problem unless ``allow_errors`` is set.
    """
    found = discover(plugin, root)
    with tempfile.TemporaryDirectory() as tmp:
        result = build_manifest(plugin, found, Path(tmp))
        # no manifest when discovery failed outright: its errors are in result.errors
        problems = validate_manifest(result.path) if result.path is not None else []
    check = PluginCheck(found, result.records, result.errors, problems)
    if not allow_errors and (check.errors or check.schema_problems):
        lines = [str(e) for e in check.errors] + check.schema_problems
        raise AssertionError("plugin check failed:\n  " + "\n  ".join(lines))
    return check


__all__ = [
    "PluginCheck",
    "check_plugin",
    "ct_phantom",
    "ellipsoid",
    "install_entry_point",
    "make_abdomenct1k",
    "make_amos",
    "make_brats",
    "make_brats2021",
    "make_brats2023_gli",
    "make_flare22",
    "make_word",
    "make_kits",
    "make_kits23",
    "make_btcv",
    "make_chaos",
    "make_ctspine1k",
    "make_lits",
    "make_lidc",
    "make_msd_task",
    "make_normalized_dataset",
    "make_pancreas_ct",
    "make_recist",
    "make_totalsegmentator",
    "make_verse",
    "slice_first_affine",
    "write_nifti",
]
