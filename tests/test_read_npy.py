"""The ``.npy`` reader (harmonize/read/npy.py): every case is compared with ``np.load``, the
independent oracle, on the same file: equal arrays where ``np.load`` reads the file, a
:class:`ReadError` naming the file where ``np.load`` fails or would unpickle."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from harmonize.errors import ReadError
from harmonize.plugin import read_npy
from harmonize.read.limits import MAX_VOXELS_ENV
from harmonize.read.npy import MAX_HEADER_BYTES, npy_header


def _volume(dtype: str = "<i2") -> np.ndarray:
    return (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 37 % 3001).astype(dtype)


def _raw_npy(path: Path, header: str, payload: bytes = b"") -> Path:
    """A version 1.0 ``.npy`` file with ``header`` as its header text, written by hand."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload)
    return path


@pytest.mark.parametrize("dtype", ["<i2", ">i2", ">f4", "<f8", "|u1", "|b1", ">u2"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_values_match_np_load_for_either_order_and_byte_order(tmp_path, dtype, order):
    path = tmp_path / "v.npy"
    np.save(path, np.asarray(_volume(dtype), order=order))
    want = np.load(path, allow_pickle=False)
    assert want.flags.f_contiguous == (order == "F") and want.dtype == np.dtype(dtype)
    got = read_npy(path)
    assert got.shape == want.shape and got.dtype.isnative
    assert got.dtype == want.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, want)  # exact: integers and floats are copied, not computed


def test_a_truncated_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, _volume())
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError):
        np.load(path, allow_pickle=False)  # the oracle: numpy cannot read it either
    with pytest.raises(ReadError) as info:
        read_npy(path)
    assert "truncated" in str(info.value) and "240 bytes, the file holds 233" in str(info.value)
    assert info.value.file == str(path) and info.value.hint


def test_an_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "o.npy"
    np.save(path, np.array([np.zeros(3), "x"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(path, allow_pickle=False)  # the oracle refuses it the same way
    with pytest.raises(ReadError, match=r"object array.*allow_pickle=False") as info:
        read_npy(path)
    assert info.value.file == str(path)


def test_a_header_longer_than_numpys_limit_is_refused(tmp_path):
    header = "{'descr': '<i2', 'fortran_order': False, 'shape': (1, 1, 1), }"
    path = _raw_npy(tmp_path / "h.npy", header + " " * (2 * MAX_HEADER_BYTES), b"\0\0")
    with pytest.raises(ValueError, match="max_header_size"):
        np.load(path, allow_pickle=False)
    with pytest.raises(ReadError, match=f"header longer than {MAX_HEADER_BYTES:,} bytes"):
        read_npy(path)


def test_a_header_declaring_too_many_voxels_is_refused_before_allocating(tmp_path):
    """The header declares 8 GiB in a 128-byte file: refused from the header alone (tracemalloc:
    under 1 MB allocated); ``np.load(mmap_mode='r')`` shows the file cannot hold that array."""
    header = "{'descr': '<i2', 'fortran_order': False, 'shape': (2048, 2048, 1024), }"
    path = _raw_npy(tmp_path / "big.npy", header)
    with pytest.raises(ValueError):
        np.load(path, mmap_mode="r", allow_pickle=False)
    tracemalloc.start()
    try:
        with pytest.raises(ReadError, match="above the limit of .* nothing was allocated"):
            read_npy(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_the_voxel_limit_is_the_one_every_reader_uses(tmp_path, monkeypatch):
    path = tmp_path / "v.npy"
    np.save(path, _volume())
    assert np.load(path).size == 120  # a valid file ...
    monkeypatch.setenv(MAX_VOXELS_ENV, "100")
    with pytest.raises(ReadError, match=f"raise the limit with {MAX_VOXELS_ENV}=120"):
        read_npy(path)  # ... above the run's limit


def test_not_npy_other_versions_and_non_numeric_types(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"PK\x03\x04 a zip, not an array")
    with pytest.raises(ReadError, match="not a NumPy .npy file"):
        read_npy(tmp_path / "x.npy")
    for name, array in (("c.npy", np.ones((2, 2, 2), complex)),
                        ("s.npy", np.zeros((2, 2, 2), "U3")),
                        ("r.npy", np.zeros((2, 2, 2), [("a", "<i2"), ("b", "<f4")]))):
        np.save(tmp_path / name, array)
        assert np.load(tmp_path / name).dtype == array.dtype  # numpy reads them ...
        with pytest.raises(ReadError, match="unsupported voxel type"):
            read_npy(tmp_path / name)  # ... they are no volume
    with pytest.raises(ReadError, match="does not exist"):
        read_npy(tmp_path / "missing.npy")


def test_nan_voxels_and_4d_arrays_get_the_volume_readers_errors(tmp_path):
    data = _volume("<f4")
    data[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", data)
    assert np.isnan(np.load(tmp_path / "nan.npy")).sum() == 1
    with pytest.raises(ReadError, match="1 NaN or infinite voxel"):
        read_npy(tmp_path / "nan.npy")
    np.save(tmp_path / "4d.npy", np.zeros((2, 3, 4, 5), np.int16))
    with pytest.raises(ReadError, match="4D array of shape"):
        read_npy(tmp_path / "4d.npy", "label")


def test_the_header_alone_gives_shape_dtype_and_order(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(_volume(">i2")))
    header = npy_header(path)
    assert header.shape == (4, 5, 6) and header.dtype == np.dtype(">i2") and header.fortran_order
    assert header.data_offset == path.stat().st_size - 240
