"""Plugin loading: built-ins, third-party entry points (a real installed distribution on sys.path),
broken plugins, duplicate ids, YAML-only descriptors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harmonize import DatasetPlugin, hookimpl
from harmonize.errors import PluginError
from harmonize.plugin.catalog import DEFAULT_PLUGINS, get_plugin_manager, load_catalog
from harmonize.testing import install_entry_point

ACME_PLUGIN = '''
from pathlib import Path
from harmonize import Case, DatasetPlugin, hookimpl

class Acme(DatasetPlugin):
    id = "acme-liver"

    def __init__(self):
        super().__init__({
            "id": "acme-liver", "name": "ACME liver", "modality": "CT",
            "values": {0: "bg", 1: "liver"}, "classes": {"liver": [1]},
            "licence": "CC0",
        })

    def discover(self, root):
        for image in sorted(Path(root).glob("*_img.nii.gz")):
            case = image.name[: -len("_img.nii.gz")]
            yield Case(case_id=case, patient_id=case, images=(image,),
                       label=image.with_name(case + "_seg.nii.gz"))

@hookimpl
def harmonize_datasets():
    yield Acme()
'''


def install_fake_distribution(site: Path, name: str, module: str, source: str,
                              entry: str | None = None) -> None:
    install_entry_point(site, name, module, source, entry=entry)


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    site.mkdir()
    return site


def test_builtins_load_without_entry_points():
    manager = get_plugin_manager(entry_points=False)
    names = {manager.pm.get_name(p) for p in manager.pm.get_plugins()}
    assert set(DEFAULT_PLUGINS) <= names
    assert manager.errors == []


def test_entry_point_plugin_is_registered_with_its_distribution(site, tmp_path):
    install_fake_distribution(site, "harmonize-acme", "acme_plugin", ACME_PLUGIN)
    catalog = load_catalog()
    plugin = catalog.get("acme-liver")
    assert plugin.source == "harmonize-acme 0.1"
    assert "kits23" in catalog.datasets and catalog.errors == []

    import numpy as np

    from harmonize.testing import write_nifti

    data = tmp_path / "acme"
    write_nifti(data / "a1_img.nii.gz", np.zeros((8, 8, 8), np.int16), np.eye(4))
    write_nifti(data / "a1_seg.nii.gz", np.ones((8, 8, 8), np.uint8), np.eye(4))
    from harmonize.testing import check_plugin

    check = check_plugin(plugin, data)
    assert check.records[0].labels == {"liver": [1]}


def test_broken_plugin_is_reported_by_name_and_others_still_load(site):
    install_fake_distribution(site, "harmonize-acme", "acme_plugin", ACME_PLUGIN)
    install_fake_distribution(site, "harmonize-broken", "broken_plugin",
                              "raise ImportError('missing dependency foo')\n")
    install_fake_distribution(site, "harmonize-raises", "raises_plugin", textwrap.dedent('''
        from harmonize import hookimpl
        @hookimpl
        def harmonize_datasets():
            raise RuntimeError("boom")
    '''))
    catalog = load_catalog()
    assert "acme-liver" in catalog.datasets and "kits23" in catalog.datasets
    messages = [str(e) for e in catalog.errors]
    assert any("broken_plugin" in m and "harmonize-broken 0.1" in m and "missing dependency foo" in m
               for m in messages)
    assert any("raises_plugin" in m and "boom" in m for m in messages)


def test_duplicate_dataset_id_is_rejected_naming_both_sources(site):
    install_fake_distribution(site, "harmonize-dupe", "dupe_plugin", textwrap.dedent('''
        from harmonize import hookimpl
        from harmonize.plugins.kits import KiTS23
        @hookimpl
        def harmonize_datasets():
            yield KiTS23()
    '''))
    catalog = load_catalog()
    assert catalog.datasets["kits23"].source == "built-in"
    (error,) = [e for e in catalog.errors if "duplicate" in str(e)]
    assert "built-in" in str(error) and "harmonize-dupe 0.1" in str(error)


def test_plugin_yielding_wrong_type_is_reported(monkeypatch):
    from harmonize.plugin import catalog as catalog_module

    class Module:
        @staticmethod
        @hookimpl
        def harmonize_datasets():
            return ["not a plugin"]

    original = catalog_module.get_plugin_manager

    def patched(**kwargs):
        manager = original(entry_points=False)
        manager.pm.register(Module, name="wrong-type")
        return manager

    monkeypatch.setattr(catalog_module, "get_plugin_manager", patched)
    catalog = catalog_module.load_catalog()
    assert any("not a DatasetPlugin" in str(e) for e in catalog.errors)


def test_unknown_hook_is_reported_by_check_pending(site):
    install_fake_distribution(site, "harmonize-typo", "typo_plugin", textwrap.dedent('''
        from harmonize import hookimpl
        @hookimpl
        def harmonize_dataset():  # missing "s"
            return []
    '''))
    manager = get_plugin_manager()
    assert any("unknown hook" in str(e) and "harmonize_dataset" in str(e) for e in manager.errors)


def test_unknown_dataset_lists_known_ones(catalog):
    with pytest.raises(PluginError, match="kits23"):
        catalog.get("kits24")


@pytest.mark.parametrize(("typed", "best"), [("kits32", "kits23"), ("KiTS23", "kits23"),
                                             ("msd-livr", "msd-liver"), ("totalsegmentor", "totalsegmentator")])
def test_misspelt_dataset_id_gets_did_you_mean(catalog, typed, best):
    with pytest.raises(PluginError) as error:
        catalog.get(typed)
    message = error.value.message
    assert message.startswith(f"unknown dataset {typed!r} (did you mean {best!r}"), message
    assert "Run `harmonize plugins`" in str(error.value)


def test_unrelated_dataset_id_gets_no_guess(catalog):
    with pytest.raises(PluginError) as error:
        catalog.get("xyzzy")
    assert "did you mean" not in str(error.value) and "kits23" in str(error.value)


@pytest.mark.parametrize("command", [["discover"], ["manifest", "-o", "OUT"], ["run", "-o", "OUT"]])
def test_every_command_taking_a_dataset_id_says_did_you_mean(tmp_path, command):
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    result = CliRunner().invoke(app, [*args, "-d", "kits32", "-r", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "unknown dataset 'kits32' (did you mean 'kits23'" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_cli_shows_entry_point_plugin_source(site):
    install_fake_distribution(site, "harmonize-acme", "acme_plugin", ACME_PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    out = subprocess.run([sys.executable, "-m", "harmonize", "plugins", "--format", "json"],
                         capture_output=True, text=True, env=env, check=True)
    rows = {row["id"]: row for row in json.loads(out.stdout)["datasets"]}
    assert rows["acme-liver"]["source"] == "harmonize-acme 0.1"
    assert rows["acme-liver"]["labels"] == ["liver"]
    assert rows["kits23"]["source"] == "built-in"


def test_dataset_plugin_without_descriptor_is_a_clear_error():
    class Orphan(DatasetPlugin):
        id = "orphan"

    with pytest.raises(PluginError, match="no descriptor registry/datasets/orphan.yaml"):
        _ = Orphan().descriptor


def test_plugin_id_must_match_its_descriptor_id():
    class Mislabelled(DatasetPlugin):
        id = "acme"

    with pytest.raises(PluginError, match="descriptor says 'acme-liver'"):
        Mislabelled({"id": "acme-liver", "name": "x", "modality": "CT",
                     "values": {0: "bg", 1: "liver"}, "classes": {"liver": [1]}})

    class WrongFile(DatasetPlugin):
        id = "acme"
        descriptor_file = Path(__file__).parents[1] / "registry" / "datasets" / "kits23.yaml"

    with pytest.raises(PluginError, match="has id 'acme' but its descriptor says 'kits23'"):
        _ = WrongFile().descriptor


def test_broken_builtin_module_is_reported_and_the_others_still_load(monkeypatch):
    from harmonize.plugin import catalog as catalog_module

    monkeypatch.setattr(catalog_module, "DEFAULT_PLUGINS",
                        ("harmonize.plugins.kits", "harmonize.plugins.no_such_family"))
    catalog = catalog_module.load_catalog(entry_points=False)
    assert "kits23" in catalog.datasets
    (error,) = catalog.errors
    assert "harmonize.plugins.no_such_family" in str(error) and "ModuleNotFoundError" in str(error)
