"""Plugin manager factory, built-in plugins, entry points and the catalogue of datasets.

(DESIGN.md calls this module `registry.py`; it is `catalog.py` because `harmonize.registry` is the
installed package of registry/ data files and the two names would collide.)

Nothing happens at import. :func:`get_plugin_manager` registers :data:`DEFAULT_PLUGINS` and then the
``harmonize`` entry points *one at a time*, so a broken third-party plugin is reported by name and the
others still load. :func:`load_catalog` collects every :class:`DatasetPlugin` and rejects duplicate ids
with an error naming both sources, and reports plugins whose ``harmonize_vocabulary`` structures
conflict (:mod:`harmonize.plugin.structures`).
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import cast

import pluggy

from harmonize.errors import HarmonizeError, PluginError
from harmonize.labels.vocabulary import bundled_vocabulary
from harmonize.plugin import hookspecs
from harmonize.plugin.dataset import DatasetPlugin
from harmonize.plugin.descriptor import load_descriptor
from harmonize.plugin.structures import merge_plugin_structures

ENTRY_POINT_GROUP = "harmonize"
DESCRIPTORS_ENV = "HARMONIZE_DESCRIPTORS"


#: subpackages of ``harmonize.plugins`` that hold no plugin (dataset fabricators for tests/demo)
HELPER_PACKAGES = ("fabricators",)


def builtin_plugin_modules() -> tuple[str, ...]:
    """Every public module of the built-in plugin package ``harmonize.plugins`` (the repository's
    ``plugins/`` folder), in name order; ``_``-prefixed modules are shared helpers, not plugins,
    and :data:`HELPER_PACKAGES` hold each plugin's fabricator."""
    import harmonize.plugins as package

    return tuple(
        f"{package.__name__}.{module.name}"
        for module in pkgutil.iter_modules(package.__path__)
        if not module.name.startswith("_") and module.name not in HELPER_PACKAGES
    )


#: Built-in plugin modules, registered before any entry point (one module per dataset family).
DEFAULT_PLUGINS: tuple[str, ...] = builtin_plugin_modules()

BUILTIN = "built-in"


@dataclass
class PluginManager:
    """A pluggy manager plus what went wrong while loading plugins and where each came from."""

    pm: pluggy.PluginManager
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)


def get_plugin_manager(*, entry_points: bool = True) -> PluginManager:
    """A new plugin manager with the built-ins and (unless disabled) the installed entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    manager = PluginManager(pm)
    for module_name in DEFAULT_PLUGINS:
        try:
            module = importlib.import_module(module_name)
            pm.register(module, name=module_name)
        except Exception as exc:  # noqa: BLE001 - a broken built-in must not stop the others
            manager.errors.append(
                PluginError(
                    f"built-in plugin {module_name!r} failed to load: {type(exc).__name__}: {exc}",
                    hint="reinstall harmonize-med; the other datasets still work",
                )
            )
            continue
        manager.sources[module_name] = BUILTIN
    if entry_points:
        _load_entry_points(manager)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        manager.errors.append(
            PluginError(
                f"plugin {exc.plugin!r} implements an unknown hook: {exc}",
                hint="check the hook names against harmonize.plugin.hookspecs",
            )
        )
    return manager


def _load_entry_points(manager: PluginManager) -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        source = f"{dist.name} {dist.version}" if dist is not None else f"entry point {ep.value}"
        name = f"{ep.name} ({source})"
        try:
            plugin = ep.load()
            manager.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
            manager.errors.append(
                PluginError(
                    f"plugin {ep.name!r} from {source} failed to load: {type(exc).__name__}: {exc}",
                    hint=f"upgrade or uninstall {dist.name if dist else ep.value}",
                )
            )
            continue
        manager.sources[name] = source


@dataclass
class Catalog:
    """Every registered dataset by id, and the plugin problems found while building it."""

    datasets: dict[str, DatasetPlugin]
    errors: list[PluginError]

    def get(self, dataset_id: str) -> DatasetPlugin:
        """The plugin of ``dataset_id``. An unknown id is a :class:`PluginError` that names the
        closest known ids ("did you mean"), every known id and any plugin that failed to load
        (its datasets may be the one asked for). Every command that takes a dataset id
        (``discover``, ``manifest``, ``run``, ``demo``) looks it up here."""
        try:
            return self.datasets[dataset_id]
        except KeyError:
            close = similar_ids(dataset_id, self.datasets)
            names = ", ".join(repr(c) for c in close[:-1]) + (" or " if len(close) > 1 else "")
            guess = f" (did you mean {names}{close[-1]!r}?)" if close else ""
            known = ", ".join(sorted(self.datasets)) or "none"
            broken = "; ".join(str(e) for e in self.errors)
            raise PluginError(
                f"unknown dataset {dataset_id!r}{guess}",
                dataset=dataset_id,
                hint=f"known datasets: {known}"
                + (f". Plugin problems: {broken}" if broken else "")
                + ". Run `harmonize plugins` to list them",
            ) from None


def similar_ids(dataset_id: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` known ids closest to ``dataset_id`` (``difflib`` ratio at least 0.6, case
    ignored), best first; an id that differs only in case is always the first."""
    by_lower = {k.lower(): k for k in known}
    matches = difflib.get_close_matches(dataset_id.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[m] for m in matches]


def load_catalog(
    *, descriptors: Sequence[Path] = (), entry_points: bool = True
) -> Catalog:
    """Collect every dataset from the registered plugins, plus YAML-only ``descriptors``
    (files or folders; also read from the ``HARMONIZE_DESCRIPTORS`` environment variable)."""
    manager = get_plugin_manager(entry_points=entry_points)
    datasets: dict[str, DatasetPlugin] = {}
    errors = list(manager.errors)

    def add(plugin: object, source: str) -> None:
        if not isinstance(plugin, DatasetPlugin):
            errors.append(
                PluginError(
                    f"plugin {source} yielded {type(plugin).__name__}, not a DatasetPlugin",
                    hint="yield DatasetPlugin instances from harmonize_datasets()",
                )
            )
            return
        try:
            dataset_id = plugin.dataset_id
        except HarmonizeError as exc:
            errors.append(PluginError(f"plugin {source}: {exc}"))
            return
        if dataset_id in datasets:
            errors.append(
                PluginError(
                    f"duplicate dataset id {dataset_id!r}: registered by "
                    f"{datasets[dataset_id].source} and again by {source}; the second is ignored",
                    dataset=dataset_id,
                    hint="rename one of them or uninstall the older plugin",
                )
            )
            return
        plugin.source = source
        datasets[dataset_id] = plugin

    for impl in manager.pm.hook.harmonize_datasets.get_hookimpls():
        source = manager.sources.get(impl.plugin_name, impl.plugin_name)
        try:
            # pluggy types hook implementations as returning object; see hookspecs
            found = cast("Iterable[DatasetPlugin] | None", impl.function())
            for plugin in found or ():
                add(plugin, source)
        except Exception as exc:  # noqa: BLE001 - isolate each plugin
            errors.append(
                PluginError(
                    f"plugin {impl.plugin_name!r} ({source}) failed in harmonize_datasets: "
                    f"{type(exc).__name__}: {exc}",
                    hint="fix or uninstall that plugin; the other datasets still work",
                )
            )
    for path in _descriptor_files([*descriptors, *_env_descriptor_paths()]):
        try:
            add(_yaml_dataset(path), f"descriptor {path}")
        except HarmonizeError as exc:
            errors.append(exc if isinstance(exc, PluginError) else PluginError(str(exc)))
    errors.extend(merge_plugin_structures(bundled_vocabulary(), manager)[1])
    return Catalog(datasets=dict(sorted(datasets.items())), errors=errors)


def _yaml_dataset(path: Path) -> DatasetPlugin:
    from harmonize.plugin.layout import LayoutDataset

    return LayoutDataset(load_descriptor(path))


def _env_descriptor_paths() -> list[Path]:
    raw = os.environ.get(DESCRIPTORS_ENV, "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def _descriptor_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.y*ml") if not p.name.startswith(".")))
        else:
            files.append(path)
    return files
