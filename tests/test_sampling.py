"""DatasetMixSampler weights, seeding and sharding; patch geometry and the foreground index."""

from __future__ import annotations

import math
import pickle
from collections import Counter

import numpy as np
import pytest

from harmonize.loader.patches import (
    ForegroundIndex,
    NpyFile,
    as_patch_size,
    crop,
    random_start,
    start_around,
    start_bounds,
)
from harmonize.loader.sampling import DatasetMixSampler, SamplingError, dataset_probabilities

GROUPS = {"big": list(range(100)), "small": list(range(100, 104)), "mid": list(range(104, 129))}
COUNTS = {d: len(ix) for d, ix in GROUPS.items()}


def test_weight_modes():
    assert dataset_probabilities(COUNTS, "uniform") == pytest.approx({d: 1 / 3 for d in COUNTS})
    assert dataset_probabilities(COUNTS, "size") == pytest.approx({"big": 100 / 129, "small": 4 / 129,
                                                                   "mid": 25 / 129})
    assert dataset_probabilities(COUNTS, "sqrt") == pytest.approx({"big": 10 / 17, "small": 2 / 17,
                                                                   "mid": 5 / 17})
    assert dataset_probabilities(COUNTS, {"big": 1, "small": 3, "mid": 0}) == pytest.approx(
        {"big": 0.25, "small": 0.75, "mid": 0.0})


@pytest.mark.parametrize("weights, match", [
    ("log", "one of"),
    ({"big": 1, "small": 1}, "miss \\['mid'\\]"),
    ({"big": 1, "small": 1, "mid": 1, "other": 1}, "unknown dataset\\(s\\) \\['other'\\]"),
    ({"big": -1, "small": 1, "mid": 1}, ">= 0"),
    ({"big": 0, "small": 0, "mid": 0}, "all dataset weights are zero"),
])
def test_bad_weights(weights, match):
    with pytest.raises(SamplingError, match=match):
        dataset_probabilities(COUNTS, weights)


def test_draw_frequencies_follow_weights():
    sampler = DatasetMixSampler(GROUPS, weights="sqrt", num_samples=17_000, seed=1)
    owner = {i: d for d, ix in GROUPS.items() for i in ix}
    counts = Counter(owner[i] for i, _ in sampler)
    for name, share in {"big": 10 / 17, "small": 2 / 17, "mid": 5 / 17}.items():
        assert counts[name] / 17_000 == pytest.approx(share, abs=0.015)
    small = Counter(i for i, _ in sampler if owner[i] == "small")
    assert set(small) == set(GROUPS["small"])  # every case of a dataset is drawn


def test_seed_epoch_and_default_length():
    sampler = DatasetMixSampler(GROUPS, seed=7)
    assert len(sampler) == 129
    first = list(sampler)
    assert list(DatasetMixSampler(GROUPS, seed=7)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(DatasetMixSampler(GROUPS, seed=8)) != first
    assert all(isinstance(i, int) for i in DatasetMixSampler(GROUPS, with_seeds=False))


def test_sharding_splits_one_shared_sequence():
    world = 3
    shards = [list(DatasetMixSampler(GROUPS, num_samples=100, seed=2, rank=r, world_size=world))
              for r in range(world)]
    assert [len(s) for s in shards] == [math.ceil(100 / world)] * world
    whole = DatasetMixSampler(GROUPS, num_samples=100, seed=2, rank=0, world_size=world).draws()
    interleaved = [shards[k % world][k // world] for k in range(len(whole))]
    assert interleaved == whole
    with pytest.raises(SamplingError, match="rank 3"):
        DatasetMixSampler(GROUPS, rank=3, world_size=3)


def test_sequence_source_groups_by_name():
    sampler = DatasetMixSampler(["a", "b", "a", "a"], weights="uniform", num_samples=400, with_seeds=False)
    drawn = Counter(sampler)
    assert set(drawn) == {0, 1, 2, 3}
    assert drawn[1] == pytest.approx(200, abs=40)


def test_patch_size_parsing():
    assert as_patch_size(None) is None
    assert as_patch_size(8) == (8, 8, 8)
    assert as_patch_size([4, 5, 6]) == (4, 5, 6)
    for bad in (0, (1, 2), (4, -1, 4), 96.0):
        with pytest.raises(ValueError):
            as_patch_size(bad)


def test_starts_keep_patch_inside_or_volume_inside():
    rng = np.random.default_rng(0)
    shape, patch = (20, 8, 5), (6, 8, 9)
    lo, hi = start_bounds(shape, patch)
    assert lo.tolist() == [0, 0, -4] and hi.tolist() == [14, 0, 0]
    for _ in range(200):
        start = random_start(shape, patch, rng)
        assert np.all(start >= lo) and np.all(start <= hi)
        location = rng.integers(0, shape)
        start = start_around(location, shape, patch, rng)
        assert np.all(start <= location) and np.all(location < start + np.array(patch))


def test_crop_pads_outside_and_reads_memmap(tmp_path):
    array = np.arange(2 * 4 * 5 * 6, dtype=np.float32).reshape(2, 4, 5, 6)
    np.save(tmp_path / "a.npy", array)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    inside = crop(mapped, (1, 1, 1), (2, 3, 4))
    assert isinstance(inside, np.ndarray) and not isinstance(inside, np.memmap)
    np.testing.assert_array_equal(inside, array[:, 1:3, 1:4, 1:5])
    padded = crop(mapped, (-1, 0, 4), (6, 5, 4), pad_value=-1)
    assert padded.shape == (2, 6, 5, 4)
    np.testing.assert_array_equal(padded[:, 1:5, :, :2], array[:, :, :, 4:6])
    assert np.all(padded[:, 0] == -1) and np.all(padded[:, 5] == -1) and np.all(padded[..., 2:] == -1)


def test_foreground_index():
    label = np.zeros((30, 30, 30), dtype=np.uint8)
    label[:20, :20, :20] = 1  # 8000 voxels
    label[25, 25, 25] = 7
    index = ForegroundIndex.from_label(label, max_per_value=1000)
    assert index.values.tolist() == [1, 7] and index.counts.tolist() == [8000, 1]
    ones = index.locations_for([1])
    assert ones.shape == (1000, 3) and np.all(label[tuple(ones.T)] == 1)
    assert index.locations_for([7, 9]).tolist() == [[25, 25, 25]]
    assert index.has_any([7]) and not index.has_any([2, 3]) and index.voxels([1, 7]) == 8001
    again = ForegroundIndex.from_arrays(index.to_arrays())
    np.testing.assert_array_equal(again.locations, index.locations)
    np.testing.assert_array_equal(ForegroundIndex.from_label(label, max_per_value=1000).locations,
                                  index.locations)  # deterministic
    with pytest.raises(ValueError, match="inconsistent"):
        ForegroundIndex.from_arrays(index.to_arrays() | {"offsets": np.array([0, 5])})
    empty = ForegroundIndex.from_label(np.zeros((4, 4, 4), dtype=np.uint8))
    assert not empty.has_any([1]) and empty.locations_for([1]).shape == (0, 3)
    assert empty.sample([1], np.random.default_rng(0)) is None


def test_foreground_sample_is_uniform_over_voxels_despite_the_cap():
    label = np.zeros((30, 30, 30), dtype=np.uint8)
    label[:20, :20, :20] = 1  # 8000 voxels, 500 stored
    label[25:, 25:, :] = 2  # 750 voxels, 500 stored
    index = ForegroundIndex.from_label(label, max_per_value=500)
    rng = np.random.default_rng(3)
    drawn = [index.sample([1, 2, 9], rng) for _ in range(4000)]
    values = label[tuple(np.array(drawn).T)]
    assert np.mean(values == 1) == pytest.approx(8000 / 8750, abs=0.02)  # not 1/2 as stored
    assert set(map(int, values)) == {1, 2}


@pytest.mark.parametrize("shape", [(7, 9, 11), (2, 7, 9, 11)])
def test_npy_file_crop_equals_array_crop(tmp_path, shape):
    rng = np.random.default_rng(1)
    array = rng.normal(size=shape).astype(np.float32)
    np.save(tmp_path / "a.npy", array)
    reader = NpyFile(tmp_path / "a.npy")
    assert reader.shape == shape and reader.dtype == np.float32
    for _ in range(40):
        size = tuple(int(v) for v in rng.integers(1, 14, size=3))
        start = random_start(shape[-3:], size, rng)
        np.testing.assert_array_equal(reader.crop(start, size, -2.0), crop(array, start, size, -2.0))
    whole = reader.crop((0, 0, 0), shape[-3:])
    np.testing.assert_array_equal(whole, array)
    copy = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(copy.crop((1, 1, 1), (3, 3, 3)), crop(array, (1, 1, 1), (3, 3, 3)))
    (tmp_path / "kept.npy").write_bytes((tmp_path / "a.npy").read_bytes())
    kept = NpyFile(tmp_path / "kept.npy")
    (tmp_path / "kept.npy").unlink()  # e.g. the cache entry rebuilt by another process
    np.testing.assert_array_equal(kept.crop((0, 0, 0), shape[-3:]), array)
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "b.npy").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="truncated"):
        NpyFile(tmp_path / "b.npy")
