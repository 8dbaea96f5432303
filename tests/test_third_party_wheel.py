"""A third-party plugin written only against ``harmonize.plugin``, built as a wheel and installed into
a fresh virtual environment, is discovered, read, normalized and loaded there (issue 12).

The new environment sees harmonize and its dependencies through a ``.pth`` file that adds this
environment's site-packages (no network); everything else runs in the new environment's python.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest

from harmonize.testing import write_nifti

PLUGIN = '''
"""ACME organs: a third-party harmonize plugin that imports only the public plugin module."""

from pathlib import Path

from harmonize.plugin import (
    Case, DatasetPlugin, DiscoveryError, Skipped, Structure, hookimpl, strip_nifti_suffix,
)


class AcmeOrgans(DatasetPlugin):
    id = "acme-organs"
    descriptor_file = Path(__file__).with_name("acme-organs.yaml")

    def discover(self, root):
        root = self.check_root(root)
        images = sorted((root / "images").glob("*.nii.gz"))
        if not images:
            raise DiscoveryError("no images/*.nii.gz", dataset=self.id, file=root)
        for image in images:
            case = strip_nifti_suffix(image.name)
            label = root / "labels" / image.name
            if not label.is_file():
                yield Skipped(image, "no label", case_id=case)
                continue
            yield Case(case_id=case, patient_id=case.split("-")[0], images=(image,),
                       label=label, ct_window=(-150.0, 250.0),
                       same_patient_as=(f"other-dataset:{case}",), metadata={"site": "acme"})


@hookimpl
def harmonize_vocabulary():
    return [Structure("acme gland", synonyms=("acme_gland",), parents=("kidney",))]


@hookimpl
def harmonize_datasets():
    yield AcmeOrgans()
'''

DESCRIPTOR = '''
id: acme-organs
name: ACME organs
modality: CT
licence: CC0-1.0
values: {0: background, 1: liver, 2: acme_gland}
classes: {liver: [1], acme gland: [2]}
ct_window: [-1000, 1000]
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "harmonize-acme"
version = "1.0"
dependencies = ["harmonize-med"]

[project.entry-points.harmonize]
acme = "harmonize_acme"

[tool.setuptools]
packages = ["harmonize_acme"]

[tool.setuptools.package-data]
harmonize_acme = ["*.yaml"]
'''

LOAD = '''
import json, sys
from harmonize.loader import HarmonizedDataset
from harmonize.plugin.catalog import load_catalog

catalog = load_catalog()
plugin = catalog.get("acme-organs")
dataset = HarmonizedDataset(sys.argv[1], classes=["liver", "acme gland", "kidney"], patch_size=None)
sample = dataset[0]
print(json.dumps({
    "source": plugin.source, "errors": [str(e) for e in catalog.errors],
    "module": type(plugin).__module__, "file": sys.modules[type(plugin).__module__].__file__,
    "n": len(dataset), "image": list(sample["image"].shape), "mask": list(sample["mask"].shape),
    "present": [bool(v) for v in sample["label_present"]], "labels": list(dataset.classes), "case": sample["case_id"],
    "foreground": [int(sample["mask"][k].sum()) for k in range(sample["mask"].shape[0])],
}))
'''


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", **kwargs.pop("env", {})}
    done = subprocess.run(args, capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=180, env=env, **kwargs)
    assert done.returncode == 0, f"{args}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def fabricate(root: Path) -> None:
    """Two cases of the plugin's layout."""
    for n, case in enumerate(("p1-a", "p2-a")):
        label = np.zeros((12, 10, 8), np.uint8)
        label[1:5, 1:5, 1:4] = 1
        label[6:10, 5:9, 4:7 - n] = 2
        image = np.where(label > 0, 60, -500).astype(np.int16)
        affine = np.diag([1.2, 1.2, 2.5, 1.0])
        write_nifti(root / "images" / f"{case}.nii.gz", image, affine)
        write_nifti(root / "labels" / f"{case}.nii.gz", label, affine)


def build_wheel(project: Path, dist: Path) -> Path:
    """``pip wheel --no-deps`` of ``project`` (offline: this environment's setuptools)."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(project)], env=OFFLINE, cwd=project.parent)
    (wheel,) = dist.glob("*.whl")
    return wheel


def fresh_venv(folder: Path, wheel: Path) -> tuple[Path, Path]:
    """A new virtual environment with ``wheel`` installed (a normal, non-editable install);
    returns its python and site-packages."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    fresh_site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
                          ).stdout.strip())
    # the new environment sees this one's packages (harmonize itself, numpy, torch ...)
    here = sysconfig.get_path("purelib")
    (fresh_site / "outer.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)], env=OFFLINE)
    return python, fresh_site


OFFLINE = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_wheel_plugin_in_a_fresh_venv_is_discovered_read_normalized_and_loaded(tmp_path):
    project = tmp_path / "harmonize-acme"
    package = project / "harmonize_acme"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (package / "acme-organs.yaml").write_text(textwrap.dedent(DESCRIPTOR))
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    wheel = build_wheel(project, tmp_path / "dist")
    assert wheel.name.startswith("harmonize_acme-1.0-")
    python, fresh_site = fresh_venv(tmp_path / "venv", wheel)
    assert (fresh_site / "harmonize_acme" / "acme-organs.yaml").is_file()

    data = tmp_path / "acme-data"
    fabricate(data)
    cli = [str(python), "-m", "harmonize"]
    listed = json.loads(run([*cli, "plugins", "--format", "json"], cwd=tmp_path).stdout)
    (acme,) = [d for d in listed["datasets"] if d["id"] == "acme-organs"]
    assert acme["source"] == "harmonize-acme 1.0"
    assert sorted(acme["labels"]) == ["acme gland", "liver"]

    manifests = tmp_path / "manifests"
    run([*cli, "manifest", "-d", "acme-organs", "-r", str(data), "-o", str(manifests)], cwd=tmp_path)
    source = [json.loads(x) for x in (manifests / "acme-organs.jsonl").read_text().splitlines()]
    assert [r["case_id"] for r in source] == ["p1-a", "p2-a"]
    assert source[0]["labels"] == [{"name": "liver", "values": [1]},
                                   {"name": "acme gland", "values": [2]}]
    assert source[0]["ct_window"] == [-150.0, 250.0]
    assert source[0]["same_patient_as"] == ["other-dataset:p1-a"]
    assert json.loads(source[0]["metadata"]) == {"site": "acme"}  # schema 3: JSON text

    out = tmp_path / "out"
    run([*cli, "run", "-d", "acme-organs", "-r", str(data), "-o", str(out), "--workers", "1"],
        cwd=tmp_path)
    normalized = [json.loads(x) for x in (out / "acme-organs.jsonl").read_text().splitlines()]
    assert len(normalized) == 2 and normalized[0]["orientation"] == "RAS"
    [intensity] = normalized[0]["intensity"]  # schema 3: one object per channel
    assert intensity["window_source"] == "series"
    assert intensity["clip"] == pytest.approx([-150.0, 250.0])

    loaded = json.loads(run([str(python), "-c", LOAD, str(out / "acme-organs.jsonl")],
                            cwd=tmp_path).stdout)
    assert loaded["errors"] == [] and loaded["source"] == "harmonize-acme 1.0"
    assert loaded["module"] == "harmonize_acme"
    assert Path(loaded["file"]).is_relative_to(fresh_site)  # imported from the installed wheel
    assert loaded["n"] == 2 and loaded["labels"] == ["liver", "acme gland", "kidney"]
    assert loaded["case"] == "p1-a"
    assert loaded["image"][0] == 1 and loaded["mask"][0] == 3
    assert loaded["image"][1:] == loaded["mask"][1:]
    # kidney is annotated through its new child "acme gland" (parents rule "sides" keeps it absent)
    assert loaded["present"][:2] == [True, True]
    first = counts_of_case(data, "p1-a")
    assert loaded["foreground"][:2] == [first[1], first[2]]


def counts_of_case(root: Path, case: str) -> dict[int, int]:
    import nibabel as nib

    label = np.asarray(nib.load(root / "labels" / f"{case}.nii.gz").dataobj)
    return {v: int((label == v).sum()) for v in (1, 2)}


README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def readme_file(language: str, first_line: str) -> str:
    """The README code block of ``language`` whose first line is ``first_line`` (the file it
    shows, as a comment)."""
    blocks = [b for b in re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)
              if b.splitlines()[0].strip() == first_line]
    assert len(blocks) == 1, f"README has {len(blocks)} {language} blocks starting {first_line!r}"
    return blocks[0]


def readme_recipe(project: Path) -> None:
    """The plugin package exactly as README's 'Add a dataset' shows it, file by file."""
    files = {"acme_harmonize/__init__.py": readme_file("python", "# acme_harmonize/__init__.py"),
             "acme_harmonize/acme-liver.yaml": readme_file("yaml", "# acme_harmonize/acme-liver.yaml"),
             "pyproject.toml": readme_file("toml", "# pyproject.toml of the plugin package")}
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, encoding="utf-8")


def fabricate_acme_liver(root: Path) -> None:
    """Cases of the README plugin's layout: ``<case>/ct.nii.gz`` + ``liver.nii.gz``; p2_a has no label."""
    for case in ("p1_a", "p1_b", "p2_a"):
        write_nifti(root / case / "ct.nii.gz", np.zeros((5, 5, 5), np.int16), np.eye(4))
        if case != "p2_a":
            write_nifti(root / case / "liver.nii.gz", np.ones((5, 5, 5), np.uint8), np.eye(4))


def test_readme_plugin_recipe_works_after_pip_install_of_its_wheel(tmp_path):
    project = tmp_path / "acme-harmonize"
    readme_recipe(project)
    wheel = build_wheel(project, tmp_path / "dist")
    python, fresh_site = fresh_venv(tmp_path / "venv", wheel)
    assert not (project / "acme_harmonize" / "__pycache__").exists()  # nothing ran from the source
    assert (fresh_site / "acme_harmonize" / "acme-liver.yaml").is_file()

    cli = [str(python), "-m", "harmonize"]
    listed = json.loads(run([*cli, "plugins", "--format", "json"], cwd=tmp_path).stdout)
    assert listed["errors"] == []
    (acme,) = [d for d in listed["datasets"] if d["id"] == "acme-liver"]
    assert acme["source"] == "acme-harmonize 0.1" and acme["labels"] == ["liver"]
    data = tmp_path / "acme-data"
    fabricate_acme_liver(data)
    found = json.loads(run([*cli, "discover", "-d", "acme-liver", "-r", str(data), "--format", "json"],
                           cwd=tmp_path).stdout)
    assert [c["case_id"] for c in found["cases"]] == ["p1_a", "p1_b"]
    assert "liver.nii.gz is missing" in found["skipped"][0]["reason"]


OLD_PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-harmonize"
version = "0.1"

[project.entry-points.harmonize]
acme = "acme_harmonize"

[tool.setuptools]
py-modules = ["acme_harmonize"]
'''


def test_a_descriptor_left_out_of_the_wheel_is_reported_missing_not_as_bad_yaml(tmp_path):
    """0.2's README recipe: one module with its YAML beside it. pip installs the module only, and
    the plugin's descriptor file is then missing: the error must say so."""
    project = tmp_path / "acme-harmonize"
    readme_recipe(project)
    (project / "acme_harmonize" / "__init__.py").rename(project / "acme_harmonize.py")
    (project / "acme_harmonize" / "acme-liver.yaml").rename(project / "acme-liver.yaml")
    (project / "acme_harmonize").rmdir()
    (project / "pyproject.toml").write_text(OLD_PYPROJECT)
    python, fresh_site = fresh_venv(tmp_path / "venv", build_wheel(project, tmp_path / "dist"))
    assert (fresh_site / "acme_harmonize.py").is_file()
    assert not (fresh_site / "acme-liver.yaml").exists()

    done = subprocess.run([str(python), "-m", "harmonize", "plugins", "--format", "json"],
                          capture_output=True, text=True, encoding="utf-8", cwd=tmp_path,
                          timeout=180, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 1
    (error,) = [e for e in json.loads(done.stdout)["errors"] if e["kind"] == "descriptor"]
    assert error["message"] == "descriptor file does not exist"
    assert error["file"] == str(fresh_site / "acme-liver.yaml")
    assert "package data" in error["hint"] and "YAML syntax" not in done.stdout + done.stderr
