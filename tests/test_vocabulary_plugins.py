"""Plugins add structure names through ``harmonize_vocabulary`` without editing installed files;
conflicts are rejected naming both sources."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from harmonize.engine.pipeline import Target, run
from harmonize.errors import PluginError
from harmonize.labels.vocabulary import bundled_vocabulary, load_vocabulary
from harmonize.plugin import Structure
from harmonize.plugin.catalog import load_catalog
from harmonize.testing import check_plugin, install_entry_point, write_nifti

WIDGET_PLUGIN = '''
from pathlib import Path
from harmonize.plugin import Case, DatasetPlugin, Structure, hookimpl

@hookimpl
def harmonize_vocabulary():
    return [Structure("widget gland", synonyms=("glandula widgetica",)),
            Structure("left widget gland", synonyms=("widget_gland_L",), parents=("widget gland",))]

class Widgets(DatasetPlugin):
    id = "acme-widgets"

    def __init__(self):
        super().__init__({
            "id": "acme-widgets", "name": "ACME widgets", "modality": "CT",
            "values": {0: "background", 1: "widget_gland_L", 2: "liver"},
            "classes": {"left widget gland": [1], "glandula widgetica": [1], "liver": [2]},
            "ct_window": [-200, 300],
        })

    def discover(self, root):
        for image in sorted(Path(root).glob("*_img.nii.gz")):
            case = image.name[: -len("_img.nii.gz")]
            yield Case(case_id=case, patient_id=case, images=(image,),
                       label=image.with_name(case + "_seg.nii.gz"))

@hookimpl
def harmonize_datasets():
    yield Widgets()
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    return site


def widget_data(root: Path) -> Path:
    label = np.zeros((10, 10, 10), np.uint8)
    label[2:5, 2:5, 2:5] = 1
    label[6:9, 6:9, 6:9] = 2
    image = np.full((10, 10, 10), -100, np.int16)
    write_nifti(root / "w1_img.nii.gz", image, np.diag([1.5, 1.5, 2.0, 1.0]))
    write_nifti(root / "w1_seg.nii.gz", label, np.diag([1.5, 1.5, 2.0, 1.0]))
    return root


def test_plugin_adds_structures_and_its_dataset_uses_them(site, tmp_path):
    install_entry_point(site, "harmonize-widgets", "widget_plugin", WIDGET_PLUGIN)
    vocabulary = load_vocabulary()
    assert "widget gland" in vocabulary and "widget gland" not in bundled_vocabulary()
    assert vocabulary.resolve("Glandula_Widgetica") == "widget gland"
    assert vocabulary.ancestors("left widget gland") == ["widget gland"]
    assert vocabulary.origin("left widget gland") == "harmonize-widgets 0.1"
    catalog = load_catalog()
    assert catalog.errors == []
    plugin = catalog.get("acme-widgets")
    assert sorted(plugin.label_names) == ["glandula widgetica", "left widget gland", "liver"]

    data = widget_data(tmp_path / "widgets")
    (record,) = check_plugin(plugin, data).records
    assert record.labels == {"left widget gland": [1], "widget gland": [1], "liver": [2]}
    result = run([Target("acme-widgets", data)], tmp_path / "out", workers=1, progress=False,
                 catalog=catalog)
    assert result.ok and result.records[0].labels == record.labels


def test_without_the_plugin_the_name_is_unknown_and_the_hint_names_the_hook(tmp_path):
    from harmonize.labels.vocabulary import LabelError

    with pytest.raises(LabelError) as info:
        load_vocabulary().resolve("widget gland")
    assert "harmonize_vocabulary" in str(info.value)


def test_conflicting_structures_are_rejected_naming_both_sources(site):
    install_entry_point(site, "harmonize-widgets", "widget_plugin", WIDGET_PLUGIN)
    install_entry_point(site, "harmonize-zrival", "rival_plugin", textwrap.dedent('''
        from harmonize.plugin import Structure, hookimpl
        @hookimpl
        def harmonize_vocabulary():
            yield Structure("gadget", synonyms=("glandula widgetica",))
    '''))
    install_entry_point(site, "harmonize-liver", "liver_plugin", textwrap.dedent('''
        from harmonize.plugin import Structure, hookimpl
        @hookimpl
        def harmonize_vocabulary():
            return [Structure("liver")]
    '''))
    install_entry_point(site, "harmonize-orphan", "orphan_plugin", textwrap.dedent('''
        from harmonize.plugin import Structure, hookimpl
        @hookimpl
        def harmonize_vocabulary():
            return [Structure("orphan", parents=("no such parent",))]
    '''))
    catalog = load_catalog()
    messages = [str(e) for e in catalog.errors]
    assert len(messages) == 3, messages
    rival = next(m for m in messages if "harmonize-zrival 0.1" in m)
    assert "'glandula widgetica'" in rival and "harmonize-widgets 0.1" in rival
    liver = next(m for m in messages if "harmonize-liver 0.1" in m)
    assert "'liver'" in liver and "vocabulary.yaml" in liver
    orphan = next(m for m in messages if "harmonize-orphan 0.1" in m)
    assert "no such parent" in orphan
    # the first plugin's names load; the rejected plugins add nothing
    vocabulary = load_vocabulary()
    assert "widget gland" in vocabulary
    assert "gadget" not in vocabulary and "orphan" not in vocabulary


def test_extend_checks_types_cycles_and_duplicate_names():
    base = bundled_vocabulary()
    with pytest.raises(PluginError, match="not a Structure"):
        base.extend(["kidney"], source="p")  # type: ignore[list-item]
    with pytest.raises(PluginError, match="cycle"):
        base.extend([Structure("a", parents=("b",)), Structure("b", parents=("a",))], source="p")
    with pytest.raises(PluginError, match="'x' from p is already defined as 'x' by p"):
        base.extend([Structure("x"), Structure("x")], source="p")
    with pytest.raises(PluginError, match="synonyms must be a list"):
        Structure("x", synonyms="y")  # type: ignore[arg-type]
    extended = base.extend([Structure("x", parents=("kidney",))], source="p")
    assert "x" in extended and "x" not in base and "x" in extended.descendants("kidney")
