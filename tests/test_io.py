"""Reading volumes (NIfTI, NRRD/MHA, DICOM series) and rejecting bad input with a named file."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from harmonize.errors import ReadError
from harmonize.files import atomic_path
from harmonize.read.nifti_writer import write_volume
from harmonize.read.volume import read_header, read_volume, sitk_affine
from harmonize.testing.volumes import ct_phantom, slice_first_affine, write_nifti

AFFINE = slice_first_affine((0.8, 0.75, 2.5), origin=(10.0, -20.0, 30.0))


def nifti(path: Path, data: np.ndarray, affine=AFFINE) -> Path:
    return write_nifti(path, data, affine)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["<i2", ">i2", "<f4", ">f8", "u1"])
def test_nifti_matches_nibabel(tmp_path: Path, suffix, dtype):
    rng = np.random.default_rng(0)
    data = ct_phantom((12, 10, 8), rng).astype(dtype)
    path = nifti(tmp_path / f"x{suffix}", data)
    volume = read_volume(path)
    reference = nib.load(str(path))
    np.testing.assert_array_equal(volume.data, np.asanyarray(reference.dataobj))
    np.testing.assert_allclose(volume.affine, reference.affine)
    assert volume.data.dtype.isnative
    header = read_header(path)
    assert header.shape == (12, 10, 8)
    np.testing.assert_allclose(header.affine, reference.affine)
    assert header.orientation == "".join(nib.aff2axcodes(reference.affine))


def test_scl_slope_inter(tmp_path: Path):
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 3000, size=(6, 7, 5)).astype(np.uint16)
    img = nib.Nifti1Image(stored, AFFINE)
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / "hu.nii.gz"))
    volume = read_volume(tmp_path / "hu.nii.gz")
    assert volume.data.dtype == np.int16  # integer scaling keeps integer HU exact
    np.testing.assert_array_equal(volume.data, stored.astype(np.int32) - 1024)

    img.header.set_slope_inter(0.5, 3.0)
    nib.save(img, str(tmp_path / "f.nii"))
    volume = read_volume(tmp_path / "f.nii")
    np.testing.assert_allclose(volume.data, nib.load(str(tmp_path / "f.nii")).get_fdata(),
                               rtol=1e-6)


def test_multichannel_kept_as_channels(tmp_path: Path):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(8, 9, 7, 4)).astype(np.float32)  # MSD BrainTumour: 4 modalities
    path = nifti(tmp_path / "BRATS_001.nii.gz", data, np.diag([-1.0, -1.0, 1.0, 1.0]))
    volume = read_volume(path)
    assert volume.data.shape == (8, 9, 7, 4) and volume.channels == 4 and volume.shape == (8, 9, 7)
    np.testing.assert_array_equal(volume.data, data)
    with pytest.raises(ReadError, match="4D") as info:
        read_volume(path, allow_channels=False)
    assert info.value.file == str(path)
    with pytest.raises(ReadError, match="label"):
        read_volume(path, kind="label")
    single = nifti(tmp_path / "one.nii", data[..., :1])
    assert read_volume(single, kind="label").data.shape == (8, 9, 7)
    vector = nifti(tmp_path / "vec.nii", data[:, :, :, None, :2])  # NIfTI vector (X,Y,Z,1,C)
    np.testing.assert_array_equal(read_volume(vector).data, data[..., :2])


def test_nrrd_and_mha_via_simpleitk(tmp_path: Path):
    rng = np.random.default_rng(3)
    array = rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16)  # (z, y, x)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 3.0))
    image.SetOrigin((5.0, -6.0, 7.0))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    for name in ("ct.nrrd", "ct.mha"):
        sitk.WriteImage(image, str(tmp_path / name))
        volume = read_volume(tmp_path / name)
        np.testing.assert_array_equal(volume.data, array.transpose(2, 1, 0))
        expected = sitk_affine(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
        np.testing.assert_allclose(volume.affine, expected)
        assert read_header(tmp_path / name).shape == (7, 6, 5)
    vector = sitk.GetImageFromArray(rng.normal(size=(4, 5, 6, 2)).astype(np.float32),
                                    isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "two.mha"))
    assert read_volume(tmp_path / "two.mha").data.shape == (6, 5, 4, 2)


def write_dicom_series(folder: Path, hu: np.ndarray, *, series_uid: str, spacing=(0.7, 0.8),
                       thickness=2.5, origin=(-100.0, -120.0, 50.0), intercept=-1024.0,
                       slope=1.0, names=None, slice_thickness=None) -> None:
    """Write ``hu`` (rows, cols, slices) as CT DICOM slices, one file per slice."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study = "1.2.826.0.1.3680043.8.498.1"
    stored = np.rint((hu - intercept) / slope).astype(np.uint16)
    for k in range(hu.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = study + ".9"
        ds.Modality = "CT"
        ds.PatientID = "P001"
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = hu.shape[0], hu.shape[1]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = thickness if slice_thickness is None else slice_thickness
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * thickness]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = slope
        ds.PixelData = stored[:, :, k].tobytes()
        name = names[k] if names else f"{k:03d}.dcm"
        ds.save_as(str(folder / name), enforce_file_format=True)


def test_dicom_series_sorted_by_position_with_rescale(tmp_path: Path):
    rng = np.random.default_rng(4)
    hu = rng.integers(-1000, 2000, size=(10, 12, 6)).astype(np.float64)
    order = rng.permutation(6)  # file names do not follow slice order
    names = [f"IM{int(i):04d}" for i in order]
    write_dicom_series(tmp_path / "series", hu, series_uid="1.2.3.4.5", names=names)
    volume = read_volume(tmp_path / "series")
    # (rows, cols, slices) -> (X=col, Y=row, Z=slice)
    np.testing.assert_array_equal(volume.data, hu.transpose(1, 0, 2))
    np.testing.assert_allclose(volume.spacing, (0.8, 0.7, 2.5))
    np.testing.assert_allclose(volume.affine[:3, 3], [100.0, 120.0, 50.0])
    assert volume.orientation == "LPS"
    header = read_header(tmp_path / "series")
    assert header.shape == (12, 10, 6)
    np.testing.assert_allclose(header.affine, volume.affine)


def test_dicom_header_spacing_is_the_slice_step_not_thickness(tmp_path: Path):
    # CHAOS-like: slices 2.0 mm apart but SliceThickness 3.2 (overlapping reconstruction)
    hu = np.zeros((8, 8, 5))
    write_dicom_series(tmp_path / "s", hu, series_uid="1.2.3.9", thickness=2.0,
                       slice_thickness=3.2)
    header = read_header(tmp_path / "s")
    assert header.spacing[2] == pytest.approx(2.0)
    np.testing.assert_allclose(header.affine, read_volume(tmp_path / "s").affine)


def test_dicom_two_series_and_unreadable(tmp_path: Path):
    rng = np.random.default_rng(5)
    hu = rng.integers(-1000, 1000, size=(6, 6, 3)).astype(np.float64)
    write_dicom_series(tmp_path / "mixed", hu, series_uid="1.2.3.1", names=["a1", "a2", "a3"])
    write_dicom_series(tmp_path / "mixed", hu, series_uid="1.2.3.2", names=["b1", "b2", "b3"])
    with pytest.raises(ReadError, match="2 DICOM series") as info:
        read_volume(tmp_path / "mixed")
    assert info.value.file == str(tmp_path / "mixed")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.dcm").write_bytes(b"not a dicom file" * 20)
    with pytest.raises(ReadError, match="no readable DICOM"):
        read_volume(tmp_path / "junk")


def test_corrupt_and_truncated_files(tmp_path: Path):
    rng = np.random.default_rng(6)
    data = ct_phantom((32, 32, 16), rng)
    good = nifti(tmp_path / "good.nii.gz", data)
    raw = good.read_bytes()

    corrupt = tmp_path / "corrupt.nii.gz"
    middle = len(raw) // 2
    corrupt.write_bytes(raw[:middle] + bytes(b ^ 0xFF for b in raw[middle : middle + 64])
                        + raw[middle + 64 :])
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(raw[: len(raw) // 2])
    plain = nifti(tmp_path / "plain.nii", data)
    short = tmp_path / "short.nii"
    short.write_bytes(plain.read_bytes()[:1000])
    not_gzip = tmp_path / "fake.nii.gz"
    not_gzip.write_bytes(b"hello" * 100)
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    for path in (corrupt, truncated, short, not_gzip, empty):
        with pytest.raises(ReadError) as info:
            read_volume(path)
        assert info.value.file == str(path), path
        assert info.value.hint
    with pytest.raises(ReadError, match="truncated"):
        read_volume(short)
    with pytest.raises(ReadError, match="does not exist"):
        read_volume(tmp_path / "missing.nii.gz")


def test_nan_and_inf_voxels(tmp_path: Path):
    data = np.zeros((4, 5, 6), dtype=np.float32)
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = np.inf
    path = nifti(tmp_path / "nan.nii.gz", data)
    with pytest.raises(ReadError, match="2 NaN or infinite") as info:
        read_volume(path)
    assert info.value.file == str(path)


def header_variant(tmp_path: Path, name: str, edit) -> Path:
    """A NIfTI file whose header ``edit`` changed, written byte by byte (nib.save would fix it)."""
    data = np.zeros((4, 5, 6), dtype=np.int16)
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(np.int16)
    header.set_sform(np.eye(4), code=1)
    header.set_qform(np.eye(4), code=1)
    header["vox_offset"] = 352
    edit(header)
    blob = header.binaryblock + b"\0" * 4 + data.tobytes(order="F")
    path = tmp_path / name
    path.write_bytes(gzip.compress(blob) if name.endswith(".gz") else blob)
    return path


def test_bad_geometry(tmp_path: Path):
    def zero_spacing(h):
        h["sform_code"] = 0
        h["qform_code"] = 0
        h["pixdim"][1:4] = [0.0, 1.0, 1.0]

    def negative_spacing(h):
        h["sform_code"] = 0
        h["pixdim"][1:4] = [1.0, -2.0, 1.0]

    def singular(h):
        h["srow_x"] = [1.0, 1.0, 0.0, 0.0]
        h["srow_y"] = [1.0, 1.0, 0.0, 0.0]

    for name, edit, message in (("zero.nii", zero_spacing, "spacing"),
                                ("negative.nii.gz", negative_spacing, "spacing"),
                                ("singular.nii", singular, "singular")):
        path = header_variant(tmp_path, name, edit)
        with pytest.raises(ReadError, match=message) as info:
            read_volume(path)
        assert info.value.file == str(path)
        with pytest.raises(ReadError):
            read_header(path)


def test_not_nifti_and_gzip_roundtrip(tmp_path: Path):
    path = tmp_path / "text.nii"
    path.write_bytes(b"x" * 400)
    with pytest.raises(ReadError, match="not a NIfTI"):
        read_volume(path)
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    out = tmp_path / "o.nii.gz"
    from harmonize.read.volume import Volume

    write_volume(Volume(data, AFFINE), out)
    with gzip.open(out) as fh:  # a standard gzip stream, no file name, mtime 0
        assert len(fh.read()) == 352 + data.nbytes
    assert out.read_bytes()[4:8] == b"\0\0\0\0"
    np.testing.assert_array_equal(read_volume(out).data, data)


def test_outputs_are_readable_by_others(tmp_path: Path):
    import os
    import stat

    mask = os.umask(0o022)  # read the umask (and put it back)
    os.umask(mask)
    target = tmp_path / "v.nii.gz"
    from harmonize.read.volume import Volume

    write_volume(Volume(np.zeros((2, 2, 2), dtype=np.int16), np.eye(4)), target)
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o666 & ~mask  # not the 0600 of a temporary file


def test_atomic_path_cleans_up_on_error(tmp_path: Path):
    target = tmp_path / "deep" / "file.nii.gz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list((tmp_path / "deep").iterdir()) == []
