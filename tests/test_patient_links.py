"""Plugins link the same patient across datasets, and the splits keep such patients together."""

from __future__ import annotations

from harmonize.plugins.fabricators.ctspine1k import make_ctspine1k
from harmonize.plugins.fabricators.verse import make_verse

from harmonize.manifest.build import build_manifest, read_manifest
from harmonize.manifest.splits import find_leaks
from harmonize.plugin.discovery import discover


def test_ctspine1k_liver_cases_link_to_msd_liver_and_lits(catalog, tmp_path):
    plugin = catalog.get("ctspine1k")
    cases = discover(plugin, make_ctspine1k(tmp_path / "ctspine", n_cases=8)).cases
    liver = [c for c in cases if c.metadata["source_collection"] == "MSD Task03_Liver"]
    assert liver, "the fabricator includes MSD liver cases"
    for case in liver:
        number = int(case.patient_id.split("_")[1])
        links = case.same_patient_as
        assert links[0] == f"msd-liver:{case.patient_id}"
        assert (f"lits:volume-{number}" in links) == (number <= 130)
    assert all(c.same_patient_as == () for c in cases if c not in liver)
    assert all("same_patient_as" not in c.metadata for c in cases)


def test_verse20_rereleased_subjects_share_splits_with_verse19(catalog, tmp_path):
    out = tmp_path / "out"
    for release in ("verse19", "verse20"):
        plugin = catalog.get(release)
        root = make_verse(tmp_path / release, release=release)
        result = build_manifest(plugin, discover(plugin, root), out)
        assert result.errors == []
    v19 = {r.patient_id: r for r in read_manifest(out / "verse19.jsonl")}
    v20 = read_manifest(out / "verse20.jsonl")
    linked = [r for r in v20 if r.same_patient_as]
    assert linked
    for record in linked:
        assert record.same_patient_as == [f"verse19:{record.patient_id}"]
    assert find_leaks([*v19.values(), *v20]) == []
