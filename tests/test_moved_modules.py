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
