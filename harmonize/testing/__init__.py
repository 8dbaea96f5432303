"""What any plugin author needs to test a plugin: volume fabrication and :func:`check_plugin`.

* :mod:`~harmonize.testing.volumes`: phantoms, ellipsoids, affines, :func:`write_nifti`;
  :mod:`~harmonize.testing.dicom`: real DICOM series (:func:`write_series`);
  :mod:`~harmonize.testing.rtstruct`: a CT series + RT Structure Set from pydicom's real headers
  (:func:`write_ct`, :func:`write_rtstruct`, :func:`voxel_box`);
* :func:`check_plugin` runs a plugin's discovery on a fabricated tree and validates every record;
* :func:`install_entry_point` installs a plugin module as a real distribution (entry-point tests);
* :func:`make_normalized_dataset` writes what ``harmonize run`` writes, for loader tests.

Fabricators of a *dataset's* released layout live beside its plugin, in
``harmonize.plugins.fabricators.<family>`` (``make_<dataset>(root, n_cases=...)``); a third-party
plugin keeps its own beside itself::

    from harmonize.testing import check_plugin
    report = check_plugin(MyDataset(), my_fabricator(tmp_path, n_cases=2))
    assert len(report.records) == 2

``from harmonize.testing import make_<dataset>`` and ``harmonize.testing.<family>`` still work for
a while, with a :class:`DeprecationWarning` naming the new place.
"""

from __future__ import annotations

import importlib
import pkgutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harmonize._moved import moved_names
from harmonize.errors import ErrorRecord
from harmonize.manifest.build import build_manifest, validate_manifest
from harmonize.manifest.records import ManifestRecord
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.discovery import Discovery, discover
from harmonize.testing.dicom import SeriesGeometry, SliceFile, uid, write_series
from harmonize.testing.dicom_seg import SegmentSpec, ball, box, real_ct_series, write_seg
from harmonize.testing.entrypoints import install_entry_point
from harmonize.testing.normalized import make_normalized_dataset
from harmonize.testing.rtstruct import voxel_box, voxel_polygon, write_ct, write_rtstruct
from harmonize.testing.volumes import (
    ct_phantom,
    ellipsoid,
    grid,
    slice_first_affine,
    write_nifti,
)

#: the package that holds the built-in plugins' dataset fabricators
FABRICATORS = "harmonize.plugins.fabricators"


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


def fabricator_module(name: str) -> str | None:
    """The fabricator module that defines ``name`` (e.g. a ``make_<dataset>`` function), if any."""
    package = importlib.import_module(FABRICATORS)
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{FABRICATORS}.{info.name}")
        if getattr(vars(module).get(name), "__module__", None) == module.__name__:
            return module.__name__
    return None


class _MovedFabricators(Mapping[str, str]):
    """0.1 ``make_<dataset>`` name -> its fabricator module, looked up on demand (so this package
    names no dataset)."""

    def __getitem__(self, name: str) -> str:
        module = fabricator_module(name) if name.startswith("make_") else None
        if module is None:
            raise KeyError(name)
        return module

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


#: ``from harmonize.testing import make_<dataset>`` of 0.1 keeps working, with a warning
__getattr__ = moved_names("harmonize.testing", _MovedFabricators())


__all__ = [
    "PluginCheck",
    "SegmentSpec",
    "SeriesGeometry",
    "SliceFile",
    "ball",
    "box",
    "check_plugin",
    "ct_phantom",
    "ellipsoid",
    "grid",
    "install_entry_point",
    "make_normalized_dataset",
    "real_ct_series",
    "slice_first_affine",
    "uid",
    "voxel_box",
    "voxel_polygon",
    "write_ct",
    "write_nifti",
    "write_rtstruct",
    "write_seg",
    "write_series",
]
