"""The plugin contract is one public module: built-in plugins import nothing else from harmonize."""

from __future__ import annotations

import ast
from pathlib import Path

import harmonize
import harmonize.plugin

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
#: what plugin modules may import from harmonize (plus their own harmonize.plugins.* helpers)
ALLOWED = ("harmonize.plugin",)
#: fabricators write test data, so they may also use the public testing helpers
ALLOWED_FABRICATORS = ("harmonize.plugin", "harmonize.testing")


def harmonize_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a ``harmonize`` module in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return sorted((n, m) for n, m in found if m == "harmonize" or m.startswith("harmonize."))


def test_built_in_plugins_import_only_the_public_plugin_module():
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) > 15
    bad = []
    for path in files:
        allowed = ALLOWED_FABRICATORS if "fabricators" in path.parts else ALLOWED
        for line, module in harmonize_imports(path):
            if module.startswith("harmonize.plugins.") or module in allowed:
                continue
            bad.append(f"{path.relative_to(PLUGINS.parent)}:{line} imports {module}")
    assert bad == [], "plugins must import only harmonize.plugin:\n" + "\n".join(bad)


def test_the_checker_catches_internal_and_package_root_imports(tmp_path):
    module = tmp_path / "p.py"
    module.write_text("from harmonize import hookimpl\nimport harmonize.read.volume\n"
                      "def f():\n    from harmonize.errors import ReadError\n"
                      "from harmonize.plugin import Case\n")
    assert harmonize_imports(module) == [(1, "harmonize"), (2, "harmonize.read.volume"),
                                         (4, "harmonize.errors"), (5, "harmonize.plugin")]


def test_public_module_exports_what_a_plugin_needs():
    expected = {"hookimpl", "DatasetPlugin", "Case", "Skipped", "DiscoveryError", "ReadError",
                "LabelError", "PluginError", "Volume", "read_volume", "walk_files",
                "strip_nifti_suffix", "is_hidden", "check_identifier", "load_yaml", "Structure",
                "load_descriptor", "LayoutDataset"}
    assert expected <= set(harmonize.plugin.__all__)
    for name in harmonize.plugin.__all__:
        assert getattr(harmonize.plugin, name) is not None, name
    # the 0.1 top-level names are the same objects
    for name in ("Case", "DatasetPlugin", "Skipped", "hookimpl"):
        assert getattr(harmonize, name) is getattr(harmonize.plugin, name)
