"""Structure names added by plugins: the ``harmonize_vocabulary`` hook, merged in one place.

Each plugin's structures are merged on their own, built-ins first, then entry points by source
name (so the outcome does not depend on the order entry points are found): a plugin whose structures conflict with the bundled vocabulary or with an earlier plugin
(same name or synonym), name an unknown parent or raise, is left out whole and reported as a
:class:`PluginError` naming both sources; the other plugins' structures still load (as duplicate
dataset ids are handled).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from harmonize.errors import HarmonizeError, PluginError
from harmonize.labels.vocabulary import Structure, Vocabulary

if TYPE_CHECKING:
    from harmonize.plugin.catalog import PluginManager

BUILTIN = "built-in"  # the source name of built-in plugins (harmonize.plugin.catalog.BUILTIN)


def merge_plugin_structures(base: Vocabulary, manager: PluginManager
                            ) -> tuple[Vocabulary, list[PluginError]]:
    """``base`` plus every registered plugin's structures, and the problems found."""
    vocabulary, errors = base, []
    impls = [(manager.sources.get(impl.plugin_name, impl.plugin_name), impl)
             for impl in manager.pm.hook.harmonize_vocabulary.get_hookimpls()]
    impls.sort(key=lambda item: (item[0] != BUILTIN, item[0], item[1].plugin_name))
    for source, impl in impls:
        try:
            # pluggy types hook implementations as returning object; see hookspecs
            structures = list(cast("Iterable[Structure] | None", impl.function()) or ())
            vocabulary = vocabulary.extend(structures, source=source)
        except HarmonizeError as exc:
            errors.append(exc if isinstance(exc, PluginError) else PluginError(str(exc)))
        except Exception as exc:  # noqa: BLE001 - isolate each plugin
            errors.append(PluginError(
                f"plugin {impl.plugin_name!r} ({source}) failed in harmonize_vocabulary: "
                f"{type(exc).__name__}: {exc}",
                hint="fix or uninstall that plugin; the other plugins' structures still load",
            ))
    return vocabulary, errors


def installed_vocabulary(base: Vocabulary) -> Vocabulary:
    """``base`` plus the structures of every installed plugin (problems are left out here and
    reported by :func:`harmonize.plugin.catalog.load_catalog`)."""
    from harmonize.plugin.catalog import get_plugin_manager

    return merge_plugin_structures(base, get_plugin_manager())[0]
