"""`harmonize export sat` in SAT-DS's own layout: every dataset SAT-DS has, read as SAT-DS reads it.

SAT-DS's ``loader.py`` (zhaoziheng/SAT-DS, ``Loader_Wrapper.<name>``) reads each dataset's mask in
one of two ways, transcribed here from its source (commit 492df0e, e.g. ``KiTS23`` lines
2402-2437, ``CHAOS_MRI`` 158-190, ``TotalSegmentator_v2`` 1262-1324, ``MSD_Prostate`` 463-506):

* ``AddChanneld(keys=['image', 'label'])`` then ``torch.where(mask == (i + 1))`` for
  ``datum['label'][:N]`` ("values");
* ``AddChanneld(keys=['image'])`` only: the mask file is already ``(C, X, Y, Z)``, channel ``i``
  is ``datum['label'][i]`` ("channels").

The mask is loaded here with MONAI's ``LoadImage`` as SAT-DS does. The oracle is independent of
the export: each SAT-DS name is resolved in the vocabulary, and the expected voxels come from
the source record's own mask by brute force (the class with the fewest values holding a voxel's
value, for "values"; every value of the class, for "channels").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harmonize.plugins.fabricators import sat_brain_b
from harmonize.plugins.fabricators.abdomen import make_abdomenct1k, make_flare22, make_word
from harmonize.plugins.fabricators.extra import make_sega
from harmonize.plugins.fabricators.sat_brain import make_brats2023_sub
from harmonize.plugins.fabricators.sat_ct import (
    make_couinaud,
    make_ct_org,
    make_ctpelvic1k,
    make_instance22,
    make_kipa22,
    make_parse2022,
    make_sliver07,
)
from harmonize.plugins.fabricators.sat_ct_b import make_btcv_cervix, make_covid19, make_lndb
from harmonize.plugins.fabricators.sat_heart import (
    make_cmrxmotion,
    make_lascarqs22,
    make_myops2020,
)
from harmonize.plugins.fabricators.sat_heart_hn import make_han_seg, make_pddca, make_segrap2023
from harmonize.plugins.fabricators.sat_heart_mr import make_mrspineseg, make_ski10
from harmonize.plugins.fabricators.sat_pet import (
    make_autopet,
    make_hecktor2022,
    make_totalsegmentator_v1,
)
from harmonize.plugins.fabricators.sat_small import make_promise12, make_segthor
from harmonize.plugins.fabricators.sat_small_b import make_crossmoda2021

from harmonize.engine.config import Target
from harmonize.engine.pipeline import run
from harmonize.export.sat import export_sat
from harmonize.labels.sat_ds import load_sat_ds
from harmonize.labels.vocabulary import load_vocabulary
from harmonize.manifest.build import read_manifest
from harmonize.plugin.catalog import load_catalog
from harmonize.read.case import read_case

CATALOG = load_catalog(entry_points=False)
SAT = load_sat_ds()
#: SAT-DS datasets whose loader.py reads a layout harmonize does not write (ACDC: value 3 is
#: label[0]; MM_WHS_CT, MM_WHS_MRI: their release values 205...850; SegRap2023_Task1: values
#: 1-54 include nine overlap values its label list does not name; BrainPTM: a 5-channel mask
#: whose "Brain" channel is a brain mask harmonize does not read; LUNA16: mask == i + 3;
#: DAP_Atlas: one below the release's values): exported under their own id
NO_SAT_LAYOUT = {"acdc", "brainptm", "dap-atlas", "luna16", "mm-whs-ct", "mm-whs-mri",
                 "segrap2023-task1"}
SAT_MAPPED = sorted(i for i, p in CATALOG.datasets.items()
                    if p.descriptor.sat_ds and i not in NO_SAT_LAYOUT)
FABRICATORS = {  # YAML-only datasets: their fabricators live beside the plugins
    "word": lambda root, seed: make_word(root, n_train=2, n_val=0, n_test=0, seed=seed),
    "flare22": lambda root, seed: make_flare22(root, n_cases=2, seed=seed),
    "abdomenct-1k": lambda root, seed: make_abdomenct1k(root, n_cases=2, seed=seed),
    "segthor": lambda root, seed: make_segthor(root, n_cases=2, seed=seed),
    "promise12": lambda root, seed: make_promise12(root, per_part=1, seed=seed),
    "crossmoda2021": lambda root, seed: make_crossmoda2021(root, cases=(1, 2), seed=seed),
    "myops2020": lambda root, seed: make_myops2020(root, cases=(101, 102), seed=seed),
    "cmrxmotion": lambda root, seed: make_cmrxmotion(root, volunteers=(1,), seed=seed,
                                                     unlabelled=(), scans=(1,)),
    "lascarqs22-task1": lambda root, seed: make_lascarqs22(root, task1=(1, 2), task2=(),
                                                           seed=seed),
    "lascarqs22-task2": lambda root, seed: make_lascarqs22(root, task1=(), task2=(1, 2),
                                                           seed=seed),
    "han-seg": lambda root, seed: make_han_seg(root, cases=(1, 2), seed=seed),
    "pddca": lambda root, seed: make_pddca(root, seed=seed),
    "segrap2023-task2": lambda root, seed: make_segrap2023(root, cases=(0, 1), seed=seed),
    "mrspineseg": lambda root, seed: make_mrspineseg(root, seed=seed),
    "ski10": lambda root, seed: make_ski10(root, training=(1,), validation=(79,), seed=seed),
    **{f"brats2023-{sub}": (lambda root, seed, sub=sub: make_brats2023_sub(root, sub, seed=seed))
       for sub in ("men", "met", "ped", "ssa")},
    **{dataset: (lambda root, seed, make=make: make(root, seed=seed)) for dataset, make in (
        ("atlasr2", sat_brain_b.make_atlasr2), ("isles2022", sat_brain_b.make_isles2022),
        ("wmh", sat_brain_b.make_wmh), ("feta2022", sat_brain_b.make_feta2022),
        ("atlas2023", sat_brain_b.make_atlas2023), ("brain-atlas", sat_brain_b.make_brain_atlas))},
    "kipa22": lambda root, seed: make_kipa22(root, cases=(0, 1), seed=seed),
    "ct-org": lambda root, seed: make_ct_org(root, cases=(0, 1), seed=seed),
    "ctpelvic1k": lambda root, seed: make_ctpelvic1k(root, seed=seed),
    "sliver07": lambda root, seed: make_sliver07(root, cases=(1, 2), seed=seed),
    "couinaud-liver": lambda root, seed: make_couinaud(root, seed=seed)[0],
    "lndb": lambda root, seed: make_lndb(root, seed=seed)[0],
    "parse2022": lambda root, seed: make_parse2022(root, seed=seed),
    "covid19": lambda root, seed: make_covid19(root, cases=(1, 2), seed=seed),
    "btcv-cervix": lambda root, seed: make_btcv_cervix(root, cases=("0507688",), seed=seed),
    "instance22": lambda root, seed: make_instance22(root, cases=(1, 2), seed=seed),
    "sega": lambda root, seed: make_sega(root, cases={"KiTS": ("K1",), "Dongyang": ("D1",)},
                                         seed=seed),
    "totalsegmentator-v1": lambda root, seed: make_totalsegmentator_v1(root, n_cases=2, seed=seed),
    "autopet": lambda root, seed: make_autopet(root, seed=seed),
    "hecktor2022": lambda root, seed: make_hecktor2022(root, seed=seed),
}


def test_only_the_listed_datasets_lack_a_sat_ds_mask_layout():
    lacking = {i for i, p in CATALOG.datasets.items()
               if any(SAT[n].mask is None for n in p.descriptor.sat_ds)}
    assert lacking == NO_SAT_LAYOUT


def _run_manifest(dataset: str, base: Path) -> Path:
    """A `harmonize run` manifest (native spacing) of two fabricated cases in the real layout."""
    plugin = CATALOG.get(dataset)
    if dataset in FABRICATORS:
        root = FABRICATORS[dataset](base / "src", 3)
    else:
        root = plugin.fabricate(base / "src", n_cases=2, seed=3)
    result = run([Target(dataset, root)], base / "run", workers=1, progress=False,
                 catalog=CATALOG)
    assert not result.errors, result.errors
    return result.manifests[dataset]


def _sat_channels(line: dict, out: Path, count: int, layout: str) -> list[np.ndarray]:
    """The first ``count`` mask channels as SAT-DS's loader makes them (before resampling)."""
    from monai.transforms import LoadImage

    mask = np.asarray(LoadImage(image_only=True)(str(out / line["mask"])))
    if layout == "values":
        return [mask == i + 1 for i in range(count)]
    assert mask.shape[0] == count  # (C, X, Y, Z): channel-first as SAT-DS wrote it
    return [mask[i] > 0.5 for i in range(count)]


def _expected(source: np.ndarray, labels: dict[str, list[int]], name: str, layout: str,
              sat_names: set[str]) -> np.ndarray:
    if name not in labels:
        return np.zeros(source.shape, bool)
    if layout == "channels":
        return np.isin(source, labels[name])
    specific = {}  # each value: the most specific of our classes that SAT-DS names
    for value in np.unique(source):
        holders = [(len(vs), n) for n, vs in labels.items()
                   if int(value) in vs and value and n in sat_names]
        if holders:
            specific[int(value)] = min(holders)[1]
    return np.isin(source, [v for v, n in specific.items() if n == name])


@pytest.mark.parametrize("dataset", SAT_MAPPED)
def test_every_sat_ds_dataset_reads_as_sat_ds_reads_it(dataset, tmp_path):
    manifest = _run_manifest(dataset, tmp_path)
    out = tmp_path / "sat"
    result = export_sat([manifest], out)
    assert not result.errors, result.errors
    vocabulary = load_vocabulary()
    records = {r.case_id: r for r in read_manifest(manifest)}
    named: dict[str, np.ndarray] = {}
    sources: dict[str, np.ndarray] = {}
    for sat_name in CATALOG.get(dataset).descriptor.sat_ds:
        sat = SAT[sat_name]
        assert sat.mask is not None
        lines = [json.loads(t) for t in (out / "jsonl" / f"{sat_name}.jsonl").read_text()
                 .splitlines()]
        assert lines and {line["dataset"] for line in lines} == {sat_name}
        for line in lines:
            assert line["label"] == list(sat.label)  # SAT-DS's list and terminology, verbatim
            assert line["modality"] in sat.modality
            assert not Path(line["image"]).is_absolute() and not Path(line["mask"]).is_absolute()
            record = records[line["harmonize"]["case_id"]]
            source = read_case(record, base=manifest.parent, image_voxels=False).label
            assert source is not None
            channels = _sat_channels(line, out, sat.mask.count, sat.mask.layout)
            sat_names = {vocabulary.resolve(n) for n in sat.label[: sat.mask.count]}
            for name, got in zip(sat.label, channels):
                want = _expected(source.data, record.labels, vocabulary.resolve(name),
                                 sat.mask.layout, sat_names)
                assert np.array_equal(got, want), (sat_name, record.case_id, name)
            named[record.case_id] = named.get(record.case_id, np.zeros(source.shape, bool))
            for got in channels:
                named[record.case_id] |= got
            sources[record.case_id] = source.data
    # voxels no SAT-DS dataset of the case can name are reported, never silently dropped
    for case_id, data in sources.items():
        unnamed = (data > 0) & ~named[case_id]
        reported = [n for n in result.notes
                    if n.startswith(f"{dataset}/{case_id}: class") and "no SAT-DS name" in n]
        assert bool(reported) == bool(unnamed.any()), (case_id, reported)


def test_prostate_channels_come_through_sat_ds_pseudo_paths(tmp_path):
    """MSD_Prostate: SAT-DS loads ``<4D file>`` with ensure_channel_first and picks channel
    {"T2": 0, "ADC": 1}[path.split('/')[-1]] (loader.py 468-486)."""
    from monai.transforms import LoadImage

    manifest = _run_manifest("msd-prostate", tmp_path)
    out = tmp_path / "sat"
    export_sat([manifest], out)
    lines = [json.loads(t) for t in (out / "jsonl" / "MSD_Prostate.jsonl").read_text()
             .splitlines()]
    records = {r.case_id: r for r in read_manifest(manifest)}
    for line in lines:
        path, _, token = line["image"].rpartition("/")
        assert line["modality"] == f"MRI {token}"
        image = np.asarray(LoadImage(image_only=True, ensure_channel_first=True)(str(out / path)))
        data = read_case(records[line["harmonize"]["case_id"]], base=manifest.parent).image.data
        want = data[..., ["T2", "ADC"].index(token)]
        np.testing.assert_allclose(image[{"T2": 0, "ADC": 1}[token]], want, rtol=0, atol=1e-4)


def test_kits23_mask_is_reused_when_its_values_already_are_sat_ds(tmp_path):
    manifest = _run_manifest("kits23", tmp_path)
    result = export_sat([manifest], tmp_path / "sat")
    assert not (tmp_path / "sat" / "masks").exists() and not result.notes


def test_a_sat_ds_name_in_a_descriptor_must_exist():
    from harmonize.errors import DescriptorError
    from harmonize.plugin.descriptor import parse_descriptor

    with pytest.raises(DescriptorError, match=r"sat_ds\[0\].*did you mean 'KiTS23'"):
        parse_descriptor({"id": "x", "name": "x", "modality": "CT", "values": {1: "kidney"},
                          "classes": {"kidney": [1]}, "sat_ds": "KiTs23"})


def test_every_sat_ds_label_name_resolves_in_the_vocabulary():
    """All 863 (dataset, label) pairs of SAT-DS's 72 JSONL files (registry/sat-ds.yaml, copied
    verbatim with its source commit) name a canonical structure or a synonym."""
    vocabulary = load_vocabulary()
    pairs = [(sat.name, label) for sat in SAT.values() for label in sat.label]
    assert len(SAT) == 72 and len(pairs) == 863
    unresolved = []
    for dataset, label in pairs:
        try:
            vocabulary.resolve(label)
        except Exception:  # noqa: BLE001 - collect them all
            unresolved.append((dataset, label))
    assert unresolved == []


def test_import_sat_says_why_a_channel_mask_export_is_not_imported(tmp_path):
    from harmonize.export.sat_import import import_sat

    manifest = _run_manifest("chaos-ct", tmp_path)
    exported = export_sat([manifest], tmp_path / "sat")
    result = import_sat(exported.jsonl["CHAOS_CT"], "sat-chaos", tmp_path / "imported")
    assert not result.records and result.skipped
    assert all("channel mask" in s.reason for s in result.skipped)
