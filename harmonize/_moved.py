"""Old flat module names (``harmonize.io``, ``harmonize.pipeline`` ...) keep importing, with a warning.

Version 0.1 kept every module directly in ``harmonize/``; they now live in subpackages that show the
architecture. An import of an old name returns the new module (the same object, so monkeypatching
works through either name) and emits a :class:`DeprecationWarning` naming the replacement.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

#: old module name -> the module that replaced it
MOVED: dict[str, str] = {
    "harmonize.hookspecs": "harmonize.plugin.hookspecs",
    "harmonize.dataset": "harmonize.plugin.dataset",
    "harmonize.descriptor": "harmonize.plugin.descriptor",
    "harmonize.layout": "harmonize.plugin.layout",
    "harmonize.catalog": "harmonize.plugin.catalog",
    "harmonize.discovery": "harmonize.plugin.discovery",
    "harmonize.vocabulary": "harmonize.labels.vocabulary",
    "harmonize.io": "harmonize.read.volume",
    "harmonize.dicom": "harmonize.read.dicom",
    "harmonize.caseio": "harmonize.read.case",
    "harmonize.normalize": "harmonize.engine.normalize",
    "harmonize.resample": "harmonize.engine.resample",
    "harmonize.intensity": "harmonize.engine.intensity",
    "harmonize.presets": "harmonize.engine.presets",
    "harmonize.pipeline": "harmonize.engine.pipeline",
    "harmonize.executors": "harmonize.engine.executors",
    "harmonize.config": "harmonize.engine.config",
    "harmonize.splits": "harmonize.manifest.splits",
    "harmonize.duplicates": "harmonize.manifest.duplicates",
    "harmonize.lesions": "harmonize.manifest.lesions",
    "harmonize.records": "harmonize.manifest.records",
    "harmonize.cache": "harmonize.loader.cache",
    "harmonize.patches": "harmonize.loader.patches",
    "harmonize.sampling": "harmonize.loader.sampling",
    "harmonize.torchio_bridge": "harmonize.loader.torchio_bridge",
    "harmonize.qa_report": "harmonize.qa.report",
    "harmonize.cli_cache": "harmonize.cli.cache",
    "harmonize.cli_export": "harmonize.cli.export",
    "harmonize.cli_qa": "harmonize.cli.qa",
    "harmonize.cli_run": "harmonize.cli.run",
    "harmonize.console": "harmonize.cli.console",
    "harmonize.demo": "harmonize.cli.demo",
}


#: 0.1 dataset fabricators ``harmonize.testing.<family>`` now live beside their plugins here
FABRICATORS = "harmonize.plugins.fabricators"


def new_name_of(fullname: str) -> str | None:
    """The module that replaced ``fullname``, or ``None`` when it did not move."""
    if fullname in MOVED:
        return MOVED[fullname]
    parent, _, name = fullname.rpartition(".")
    if parent == "harmonize.testing" and name:
        candidate = f"{FABRICATORS}.{name}"
        try:
            found = importlib.util.find_spec(candidate)
        except ImportError:
            return None
        return candidate if found is not None else None
    return None


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new_name}; import it from there "
            "(the old name will be removed in a future release)",
            DeprecationWarning, stacklevel=2,
        )
        module = importlib.import_module(self.new_name)
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module is already imported."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves the names in :data:`MOVED` (and old fabricator modules) to their new modules."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        new_name = new_name_of(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(new_name))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


def moved_names(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a package that replaced a 0.1 module of the same name:
    ``from <package> import X`` of a 0.1 name (a key of ``names``) returns ``X`` from the module
    that now holds it (its value), with a DeprecationWarning naming that module."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(f"{package}.{name} moved to {module}.{name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), name)

    return __getattr__
