"""Declared sizes are checked against a limit before any voxel is allocated."""

from __future__ import annotations

import gzip
import resource

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from harmonize.errors import ReadError
from harmonize.read.limits import DEFAULT_MAX_VOXELS, MAX_VOXELS_ENV
from harmonize.read.volume import read_volume


def bomb(path, shape):
    """A gzip NIfTI whose header declares ``shape`` int16 voxels but holds a few KB of zeros."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    with gzip.open(path, "wb") as fh:
        fh.write(header.binaryblock + b"\0" * 4 + b"\0" * 65536)
    return path


def test_a_decompression_bomb_is_refused_before_allocating(tmp_path):
    path = bomb(tmp_path / "bomb.nii.gz", (1600, 1000, 1000))
    assert path.stat().st_size < 10_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ReadError, match=r"1,600,000,000 voxels .* above the limit") as info:
        read_volume(path)
    assert info.value.file == str(path) and MAX_VOXELS_ENV in info.value.hint
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024  # nothing near the declared 3 GB was touched


def test_the_limit_can_be_lowered_and_raised(tmp_path, monkeypatch):
    path = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.int16), np.eye(4)), path)
    monkeypatch.setenv(MAX_VOXELS_ENV, "999")
    with pytest.raises(ReadError, match="1,000 voxels"):
        read_volume(path)
    monkeypatch.setenv(MAX_VOXELS_ENV, "1000")
    assert read_volume(path).data.shape == (10, 10, 10)
    monkeypatch.setenv(MAX_VOXELS_ENV, "lots")
    with pytest.raises(ReadError, match="not an integer"):
        read_volume(path)


def test_nrrd_and_mha_are_checked_too(tmp_path, monkeypatch):
    path = tmp_path / "vol.nrrd"
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkInt16), str(path))
    monkeypatch.setenv(MAX_VOXELS_ENV, "100")
    with pytest.raises(ReadError, match="512 voxels .*0.0 GiB"):
        read_volume(path)
    monkeypatch.delenv(MAX_VOXELS_ENV)
    assert read_volume(path).data.shape == (8, 8, 8) and DEFAULT_MAX_VOXELS == 1 << 30
