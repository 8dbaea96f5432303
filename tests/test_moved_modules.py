"""0.1's flat module names still import, warn, and give the very module that replaced them."""

from __future__ import annotations

import importlib
import sys

import pytest

from harmonize._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_name_warns_and_is_the_new_module(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_readme_documented_imports_work():
    from harmonize import Case, DatasetPlugin, Skipped, hookimpl  # noqa: F401
    from harmonize.loader import DatasetMixSampler, HarmonizedDataset, ThreadLoader  # noqa: F401

    sys.modules.pop("harmonize.pipeline", None)
    with pytest.warns(DeprecationWarning):
        from harmonize.pipeline import Target, run  # noqa: F401
    assert run is importlib.import_module("harmonize.engine.pipeline").run


@pytest.mark.parametrize("package,name,module", [
    ("harmonize.manifest", "read_manifest", "harmonize.manifest.build"),
    ("harmonize.labels", "class_values", "harmonize.labels.rules"),
    ("harmonize.qa", "collect_qa", "harmonize.qa.summary"),
])
def test_old_names_of_modules_that_became_packages(package, name, module):
    with pytest.warns(DeprecationWarning, match=module):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(module), name)


def test_dataset_fabricators_moved_beside_their_plugins_and_old_imports_warn():
    from harmonize.plugins.fabricators.kits import make_kits

    with pytest.warns(DeprecationWarning, match=r"harmonize\.plugins\.fabricators\.kits"):
        from harmonize.testing import check_plugin  # noqa: F401
        from harmonize.testing import make_kits as old
    assert old is make_kits
    sys.modules.pop("harmonize.testing.msd", None)
    with pytest.warns(DeprecationWarning, match=r"harmonize\.plugins\.fabricators\.msd"):
        module = importlib.import_module("harmonize.testing.msd")
    assert module is importlib.import_module("harmonize.plugins.fabricators.msd")
    with pytest.raises(AttributeError):
        importlib.import_module("harmonize.testing").make_nosuchdataset  # noqa: B018
    with pytest.raises(ImportError):
        importlib.import_module("harmonize.testing.nosuchfamily")


def test_core_packages_name_no_dataset():
    """The plugin contract and the testing helpers know no dataset (fabricators live in plugins/)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ids = {p.stem for p in (root / "registry" / "datasets").glob("*.yaml")}
    families = {p.stem for p in (root / "plugins").glob("*.py") if not p.stem.startswith("_")}
    names = {n for n in ids | families | {"kits", "brats", "msd", "verse"} if n != "descriptors"}
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names))) + r")", re.I)
    found = []
    for folder in ("testing", "plugin"):
        for path in sorted((root / "harmonize" / folder).glob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert found == []


def test_writer_names_moved_out_of_read_volume_still_import():
    import harmonize.read.nifti_writer as writer
    import harmonize.read.volume as volume

    with pytest.warns(DeprecationWarning, match="harmonize.read.nifti_writer"):
        assert volume.write_volume is writer.write_volume
    with pytest.raises(AttributeError):
        volume.no_such_name  # noqa: B018
