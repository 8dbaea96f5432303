"""README examples are executed, so the documentation cannot drift from the code."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import yaml

from harmonize.plugin.catalog import load_catalog
from harmonize.testing import check_plugin, write_nifti

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def block_containing(language: str, marker: str) -> str:
    (block,) = [b for b in code_blocks(language) if marker in b]
    return block


def test_readme_commands_are_what_ci_runs():
    commands = block_containing("bash", "pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    test_line = [line for line in commands.splitlines() if "pytest" in line][0]
    assert test_line in ci, "README's test command must be the one .ci/run runs"
    demo_line = [line for line in commands.splitlines() if "harmonize demo" in line][0]
    assert 'pip install -e ".[torch]"' in demo_line


def test_readme_yaml_descriptor_example_works(tmp_path):
    yaml_text = block_containing("yaml", "id: toy-organs")
    (tmp_path / "toy-organs.yaml").write_text(yaml_text)
    plugin = load_catalog(descriptors=[tmp_path / "toy-organs.yaml"], entry_points=False).get("toy-organs")
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    root = tmp_path / "data"
    write_nifti(root / "imagesTr/toy_001_0000.nii.gz", np.zeros((6, 6, 4), np.int16), affine)
    write_nifti(root / "labelsTr/toy_001.nii.gz", np.full((6, 6, 4), 2, np.uint8), affine)
    write_nifti(root / "imagesTs/toy_002_0000.nii.gz", np.zeros((6, 6, 4), np.int16), affine)
    check = check_plugin(plugin, root)
    assert [(r.case_id, r.official_split) for r in check.records] == [("toy_001", "train"), ("toy_002", "test")]


def test_readme_yaml_descriptor_example_runs_through_harmonize_run(tmp_path):
    """A dataset written from README's example descriptor goes through `harmonize run` with the
    default settings (CT needs the descriptor's ct_window)."""
    import json

    from typer.testing import CliRunner

    from harmonize.cli.app import app

    descriptor = tmp_path / "toy-organs.yaml"
    descriptor.write_text(block_containing("yaml", "id: toy-organs"))
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    root = tmp_path / "data"
    hu = np.linspace(-1000, 1000, 6 * 6 * 4).reshape(6, 6, 4).astype(np.int16)
    label = np.zeros((6, 6, 4), np.uint8)
    label[1:3, 1:3, 1:3], label[3:5, 3:5, 1:3] = 1, 2
    write_nifti(root / "imagesTr/toy_001_0000.nii.gz", hu, affine)
    write_nifti(root / "labelsTr/toy_001.nii.gz", label, affine)
    write_nifti(root / "imagesTs/toy_002_0000.nii.gz", hu, affine)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--descriptor", str(descriptor), "-d", "toy-organs",
                                      "-r", str(root), "-o", str(out), "--workers", "1",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert not (out / "errors.jsonl").read_text().strip()
    records = [json.loads(line) for line in (out / "toy-organs.jsonl").read_text().splitlines()]
    assert [(r["case_id"], r["official_split"]) for r in records] == [("toy_001", "train"), ("toy_002", "test")]
    assert records[0]["labels"] == [{"name": "liver", "values": [1]},
                                    {"name": "spleen", "values": [2]}]
    assert records[0]["intensity"][0]["clip"] == [-200.0, 300.0]  # the README's ct_window


def test_readme_python_plugin_example_works_as_an_installed_entry_point(tmp_path, monkeypatch):
    from harmonize.testing import install_entry_point

    site = tmp_path / "site"
    module = block_containing("python", "class AcmeLiver")
    install_entry_point(site, "acme-harmonize", "acme_harmonize", module, entry="acme")
    # the package's module and descriptor side by side (installed from a wheel in
    # tests/test_third_party_wheel.py)
    (site / "acme-liver.yaml").write_text(block_containing("yaml", "id: acme-liver"))
    entry = block_containing("toml", "entry-points.harmonize")
    assert 'acme = "acme_harmonize"' in entry
    monkeypatch.syspath_prepend(str(site))
    plugin = load_catalog().get("acme-liver")
    assert plugin.source == "acme-harmonize 0.1"
    root = tmp_path / "acme"
    for case in ("p1_a", "p1_b", "p2_a"):
        write_nifti(root / case / "ct.nii.gz", np.zeros((5, 5, 5), np.int16), np.eye(4))
        if case != "p2_a":
            write_nifti(root / case / "liver.nii.gz", np.ones((5, 5, 5), np.uint8), np.eye(4))
    check = check_plugin(plugin, root)
    assert {r.patient_id for r in check.records} == {"p1"}
    assert len({r.split for r in check.records}) == 1
    assert "liver.nii.gz is missing" in check.discovery.skipped[0].reason
    # the inline alternative README names: the same descriptor as a mapping, no file needed
    (site / "acme-liver.yaml").unlink()
    inline = type(plugin)(yaml.safe_load(block_containing("yaml", "id: acme-liver")))
    assert inline.descriptor.classes == {"liver": (1,)} and inline.descriptor.source_file is None
    assert len(check_plugin(inline, root).records) == 2


def test_readme_catalogue_is_the_generated_one():
    from typer.testing import CliRunner

    from harmonize.cli.app import app

    generated = CliRunner().invoke(app, ["plugins", "--format", "markdown"])
    assert generated.exit_code == 0, generated.output
    start, end = "<!-- catalogue:start -->\n", "<!-- catalogue:end -->"
    in_readme = README[README.index(start) + len(start): README.index(end)]
    assert in_readme.strip() == generated.stdout.strip(), (
        "README's dataset table drifted: paste `harmonize plugins --format markdown` between the markers"
    )


def test_readme_vocabulary_example_adds_names_a_descriptor_can_use(tmp_path, monkeypatch):
    from harmonize.labels.vocabulary import load_vocabulary
    from harmonize.testing import install_entry_point

    site = tmp_path / "site"
    install_entry_point(site, "acme-glands", "acme_glands", block_containing("python", "acme gland"))
    monkeypatch.syspath_prepend(str(site))
    vocabulary = load_vocabulary()
    assert vocabulary.resolve("Glandula Acme") == "acme gland"
    assert vocabulary.ancestors("left acme gland") == ["acme gland"]
    descriptor = tmp_path / "glands.yaml"
    descriptor.write_text(textwrap.dedent("""
        id: acme-glands
        name: ACME glands
        modality: CT
        values: {0: background, 1: acme_gland_L}
        classes: {left acme gland: [1]}
        layout:
          - {images: "images/*.nii.gz", label: "labels/{name}"}
    """))
    catalog = load_catalog(descriptors=[descriptor])
    assert catalog.errors == []
    root = tmp_path / "data"
    label = np.zeros((6, 6, 4), np.uint8)
    label[1:3, 1:3, 1:3] = 1
    write_nifti(root / "images/g1.nii.gz", np.zeros((6, 6, 4), np.int16), np.eye(4))
    write_nifti(root / "labels/g1.nii.gz", label, np.eye(4))
    (record,) = check_plugin(catalog.get("acme-glands"), root).records
    assert record.labels == {"left acme gland": [1]}


def test_readme_structure_codes_example_gives_plugin_structures_codes(tmp_path, monkeypatch):
    from pydicom.sr.codedict import codes

    from harmonize.labels.vocabulary import load_vocabulary
    from harmonize.testing import install_entry_point

    site = tmp_path / "site"
    install_entry_point(site, "acme-parotid", "acme_parotid", block_containing("python", "acme_parotid"))
    monkeypatch.syspath_prepend(str(site))
    vocabulary = load_vocabulary()
    left = vocabulary.code("left parotid gland")
    assert left is not None and left.modifier is not None
    assert (left.type.value, left.type.meaning) == (codes.SCT.ParotidGland.value, codes.SCT.ParotidGland.meaning)
    assert (left.category.value, left.category.meaning) == (
        codes.SCT.AnatomicalStructure.value, codes.SCT.AnatomicalStructure.meaning)
    assert left.modifier.value == codes.SCT.Left.value
    assert vocabulary.by_code(left) == "left parotid gland"


def test_readme_training_example_trains_with_the_partial_label_loss(tmp_path, monkeypatch):
    """README's training loop, run as written on fabricated releases of the two datasets it names
    (source manifests in out/), with a patch and an epoch count a test can afford."""
    import torch

    from harmonize.manifest.build import build_manifest
    from harmonize.plugin.discovery import discover

    example = block_containing("python", "PartialLabelLoss()")
    runnable = example
    for written, small in (("patch_size=(96, 96, 96)", "patch_size=(16, 16, 16)"),
                           ("range(100)", "range(1)"), ("num_workers=2", "num_workers=0")):
        assert runnable.count(written) == 1, f"README's training example no longer has {written}"
        runnable = runnable.replace(written, small)
    catalog = load_catalog(entry_points=False)
    for dataset in ("kits23", "msd-liver"):
        plugin = catalog.get(dataset)
        root = plugin.fabricate(tmp_path / "data" / dataset, n_cases=4, seed=0)
        build_manifest(plugin, discover(plugin, root), tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(runnable, "README.md", "exec"), namespace)  # noqa: S102 - README's own code
    ds, model, optimizer = namespace["ds"], namespace["model"], namespace["optimizer"]
    batch, loss = namespace["batch"], namespace["loss"]
    assert sorted(set(ds.datasets)) == ["kits23", "msd-liver"] and len(ds.classes) == 4
    assert torch.isfinite(loss) and loss.item() > 0
    assert (~batch["label_present"]).any()  # partial labels: no dataset annotates all four
    steps = {int(state["step"]) for state in optimizer.state.values()}
    assert steps == {len(namespace["loader"])} and steps != {0}  # one optimizer step per batch
    assert all(p.grad is not None for p in model.parameters())
