"""Reading CT in HU (DICOM, NIfTI, TIFF, PNG, .npy), one-line errors per bad file, write-back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import UID

from lowdose.core.errors import LowdoseInputError
from lowdose.io.dicom_write import write_dicom_like
from lowdose.io.images import read_ct, read_image_stack, write_like

TCGA = Path(__file__).parents[3] / "shared/data/ct/tcga-luad"
needs_tcga = pytest.mark.skipif(
    not TCGA.is_dir(), reason=f"real CT slices not found at {TCGA} (../shared of the repo)"
)


def ct_small(tmp_path: Path, name: str = "ct.dcm", **tags) -> Path:
    """A copy of pydicom's CT_small.dcm (128x128 int16 CT) with ``tags`` set."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for key, value in tags.items():
        setattr(ds, key, value)
    path = tmp_path / name
    ds.save_as(path)
    return path


def assert_one_line_naming(exc: pytest.ExceptionInfo, path: Path, phrase: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message
    assert phrase in message


def test_hu_comes_from_each_files_slope_and_intercept(tmp_path):
    plain = ct_small(tmp_path, "plain.dcm")
    edited = ct_small(tmp_path, "edited.dcm", RescaleSlope=2, RescaleIntercept=-1000)
    stored = pydicom.dcmread(plain).pixel_array.astype(np.float64)
    assert np.array_equal(read_ct(edited).hu[0], stored * 2 - 1000)
    assert np.array_equal(read_ct(plain).hu[0], stored - 1024)  # CT_small's own intercept


def test_missing_rescale_means_identity_not_minus_1024(tmp_path):
    path = ct_small(tmp_path)
    ds = pydicom.dcmread(path)
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.save_as(path)
    assert np.array_equal(read_ct(path).hu[0], ds.pixel_array.astype(np.float32))


def test_slices_are_ordered_by_position_not_file_name(tmp_path):
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    z_mm = [30.0, -10.0, 0.0, 20.0, 10.0]
    names = ["a.dcm", "e.dcm", "c.dcm", "b.dcm", "d.dcm"]  # name order disagrees with z
    for z, name in zip(z_mm, names, strict=True):
        ds = base.copy()
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = 99  # position must win over instance number
        ds.PixelData = np.full((128, 128), int(z) + 100, np.int16).tobytes()
        ds.save_as(tmp_path / name)
    stack = read_ct(tmp_path)
    assert [s.position_mm for s in stack.slices] == sorted(z_mm)
    assert np.array_equal(stack.hu[:, 0, 0], np.array(sorted(z_mm)) + 100 - 1024)


def test_instance_number_orders_slices_without_position(tmp_path):
    for number, name in [(3, "x.dcm"), (1, "y.dcm"), (2, "z.dcm")]:
        path = ct_small(tmp_path, name, InstanceNumber=number)
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        ds.PixelData = np.full((128, 128), number, np.int16).tobytes()
        ds.save_as(path)
    assert read_ct(tmp_path).hu[:, 0, 0].tolist() == [-1023.0, -1022.0, -1021.0]


def test_compressed_ct_from_pydicom_data_loads():
    lossless = read_ct(get_testdata_file("693_J2KR.dcm")).hu  # JPEG 2000 lossless CT
    reference = read_ct(get_testdata_file("693_UNCR.dcm")).hu  # the same slice uncompressed
    lossy = read_ct(get_testdata_file("693_J2KI.dcm")).hu
    jpeg_lossless = read_ct(get_testdata_file("bad_sequence.dcm")).hu  # JPEG lossless CT
    assert np.array_equal(lossless, reference)
    inside = reference > -2000  # the scanner's field of view (padding is -3024 outside)
    assert np.corrcoef(lossy[inside], reference[inside])[0, 1] > 0.95  # lossy, but this slice
    assert jpeg_lossless.shape == (1, 512, 512)
    assert -1100 < np.median(jpeg_lossless) < 1500


def test_not_dicom_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not an image")
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(path)
    assert_one_line_naming(exc, path, "not a DICOM file")


@pytest.mark.parametrize(("cut", "phrase"), [(0.5, "truncated"), (600, "no pixel data")])
def test_truncated_file_is_one_line_naming_the_file(tmp_path, cut, phrase):
    source = Path(get_testdata_file("693_UNCR.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(source[: int(len(source) * cut) if cut < 1 else cut])  # pixels or header
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(path)
    assert_one_line_naming(exc, path, phrase)
    assert "truncated" in str(exc.value)


def test_dicom_without_pixel_data_is_one_line_naming_the_file(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword in ("PixelData", "Rows", "Columns"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.88.11")
    path = tmp_path / "report.dcm"
    ds.save_as(path)
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(path)
    assert_one_line_naming(exc, path, "without pixel data")


def test_unsupported_compression_names_the_file_and_a_fix(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("693_J2KR.dcm"))
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder
    path = tmp_path / "mpeg.dcm"
    ds.save_as(path)
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(path)
    assert_one_line_naming(exc, path, "MPEG2")
    assert "uncompressed" in str(exc.value)


def test_missing_decoder_names_the_package(tmp_path, monkeypatch):
    def no_decoder(self):
        raise RuntimeError("Unable to decode: no plugins available")

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_decoder))
    path = Path(get_testdata_file("693_J2KR.dcm"))
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(path)
    assert_one_line_naming(exc, path, "pylibjpeg-openjpeg")


def test_mixed_shapes_in_a_series_name_the_odd_file(tmp_path):
    for k in range(3):
        ct_small(tmp_path, f"s{k}.dcm", InstanceNumber=k)
    odd = tmp_path / "s1.dcm"
    ds = pydicom.dcmread(odd)
    ds.Rows, ds.Columns = 64, 64
    ds.PixelData = np.zeros((64, 64), np.int16).tobytes()
    ds.save_as(odd)
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(tmp_path)
    assert_one_line_naming(exc, odd, "differs")
    stack = read_ct(tmp_path, skip_bad=True)
    assert stack.hu.shape == (2, 128, 128) and [p for p, _ in stack.skipped] == [odd]


def test_series_of_two_sizes_in_one_folder_name_both_sizes_and_the_fix(tmp_path):
    for k in range(3):
        ct_small(tmp_path, f"big{k}.dcm", InstanceNumber=k)
    small = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    small.Rows, small.Columns = 64, 96
    small.SeriesInstanceUID = "1.2.3.4.5"  # another series, not an odd slice of the first
    small.PixelData = np.zeros((64, 96), np.int16).tobytes()
    small.save_as(tmp_path / "small.dcm")
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(tmp_path)
    assert_one_line_naming(exc, tmp_path / "small.dcm", "size")
    message = str(exc.value)
    assert "64x96" in message and "128x128" in message
    assert "one series per folder" in message and "--skip-bad" in message
    stack = read_ct(tmp_path, skip_bad=True)
    assert stack.hu.shape == (3, 128, 128) and [p for p, _ in stack.skipped] == [
        tmp_path / "small.dcm"
    ]


def test_padding_value_and_modality_come_with_each_slice(tmp_path):
    padded = read_ct(get_testdata_file("CT_small.dcm"))  # PixelPaddingValue -2000, slope 1
    assert padded.slices[0].padding_hu == -2000 - 1024 and padded.slices[0].modality == "CT"
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelPaddingValue
    ds.RescaleSlope = "0.5"
    ds.save_as(tmp_path / "plain.dcm")
    assert read_ct(tmp_path / "plain.dcm").slices[0].padding_hu is None
    ds.add_new("PixelPaddingValue", "SS", -2000)
    ds.save_as(tmp_path / "half.dcm")
    assert read_ct(tmp_path / "half.dcm").slices[0].padding_hu == -2000 * 0.5 - 1024


def test_bad_file_in_a_folder_stops_unless_skip_bad(tmp_path):
    good = [ct_small(tmp_path, f"g{k}.dcm", InstanceNumber=k) for k in range(2)]
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(good[0].read_bytes()[:20000])
    (tmp_path / "README.md").write_text("documentation files are ignored, not bad")
    with pytest.raises(LowdoseInputError) as exc:
        read_ct(tmp_path)
    assert_one_line_naming(exc, bad, "truncated")
    stack = read_ct(tmp_path, skip_bad=True)
    assert [s.source for s in stack.slices] == good
    assert len(stack.skipped) == 1 and stack.skipped[0][0] == bad
    assert "truncated" in stack.skipped[0][1]


@needs_tcga
def test_tcga_folder_reads_in_hu_with_patients():
    stack = read_ct(TCGA)  # ATTRIBUTION.md beside the slices is ignored
    assert stack.hu.shape == (80, 512, 512) and stack.hu.dtype == np.float32
    assert len({s.patient_id for s in stack.slices}) == 43
    corners = stack.hu[:, :8, :8]
    assert np.all(corners <= -900)  # air or padding outside the body
    assert all(s.pixel_spacing_mm is not None for s in stack.slices)


def roundtrip_source(tmp_path: Path) -> list[Path]:
    if TCGA.is_dir():
        names = sorted(p.name for p in TCGA.glob("*.dcm"))[:2]
        return [TCGA / n for n in names]
    return [ct_small(tmp_path, "rt.dcm")]


def test_dicom_round_trip_keeps_tags_new_uids_hu_within_one_unit(tmp_path):
    sources = [*roundtrip_source(tmp_path), Path(get_testdata_file("CT_small.dcm"))]
    stacks = [read_ct(p) for p in sources]
    headers = [h for s in stacks for h in s.headers]
    rng = np.random.default_rng(0)
    hu = [s.hu[0] + rng.normal(0, 30, s.hu[0].shape) for s in stacks]
    before = [h.SeriesInstanceUID for h in headers]
    out = tmp_path / "out"
    paths = [
        write_dicom_like([h], x, out / str(k), derivation="denoised by lowdose, test-model")
        for k, (h, x) in enumerate(zip(headers, hu, strict=True))
    ]
    assert [h.SeriesInstanceUID for h in headers] == before  # templates untouched
    for template, values, (path,) in zip(headers, hu, paths, strict=True):
        back, written = read_ct(path), pydicom.dcmread(path)
        slope = float(template.RescaleSlope)
        inside = (values > -1024 + slope) & (values < 3000)  # away from the stored type's limits
        assert np.max(np.abs(back.hu[0] - values)[inside]) <= slope
        assert written.SeriesInstanceUID != template.SeriesInstanceUID
        assert written.SOPInstanceUID != template.SOPInstanceUID
        assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
        for keyword in (
            "PatientID",
            "PatientName",
            "StudyInstanceUID",
            "PixelSpacing",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "FrameOfReferenceUID",
        ):
            assert written.get(keyword) == template.get(keyword), keyword
        assert written.SeriesDescription.endswith(" lowdose")
        assert "test-model" in written.DerivationDescription
        assert written.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert written.pixel_array.dtype == pydicom.dcmread(template.filename).pixel_array.dtype


def test_dicom_write_clips_to_stored_range_and_shares_series_uid(tmp_path):
    stack = read_ct(get_testdata_file("CT_small.dcm"))
    headers = [stack.headers[0], stack.headers[0]]
    hu = np.stack([np.full((128, 128), 1e6), np.full((128, 128), -1e6)])
    paths = write_dicom_like(headers, hu, tmp_path)
    back = [pydicom.dcmread(p) for p in paths]
    assert back[0].SeriesInstanceUID == back[1].SeriesInstanceUID  # one new series
    assert back[0].SOPInstanceUID != back[1].SOPInstanceUID
    assert back[0].pixel_array.max() == 32767 and back[1].pixel_array.min() == -32768


def test_dicom_write_refuses_mismatched_stack_before_writing(tmp_path):
    stack = read_ct(get_testdata_file("CT_small.dcm"))
    with pytest.raises(LowdoseInputError, match="templates"):
        write_dicom_like(stack.headers, np.zeros((2, 128, 128)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["vol.npy", "vol.tif", "img.png", "vol.nii.gz"])
def test_other_formats_round_trip_through_write_like(tmp_path, name):
    import imageio.v3 as iio
    import nibabel
    import tifffile

    rng = np.random.default_rng(1)
    data = rng.integers(0, 4000, (3, 16, 20)).astype(np.uint16)
    path = tmp_path / "in" / name
    path.parent.mkdir()
    if name.endswith(".npy"):
        np.save(path, data.astype(np.float32) - 1024)
    elif name.endswith(".tif"):
        tifffile.imwrite(path, data)
    elif name.endswith(".png"):
        data = data[0]
        iio.imwrite(path, data)
    else:
        nibabel.save(nibabel.Nifti1Image(data.transpose(2, 1, 0).astype(np.int16), np.eye(4)), path)
    array, kind, meta = read_image_stack(path)
    expected = data.astype(np.float32) - (1024 if name.endswith(".npy") else 0)
    assert np.array_equal(array, expected) and kind in ("npy", "tiff", "png", "nifti")
    (written,) = write_like(path, array + 0.3, tmp_path / "out", meta)
    back, _, _ = read_image_stack(written)
    assert back.shape == array.shape
    assert np.max(np.abs(back - array - 0.3)) <= 0.31  # integer formats round to the stored dtype


def test_write_like_refuses_to_overwrite_the_input_folder(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((4, 4), np.float32))
    array, _, meta = read_image_stack(path)
    with pytest.raises(LowdoseInputError, match="input's folder"):
        write_like(path, array, tmp_path, meta)


def test_folder_of_one_other_format_is_a_stack(tmp_path):
    for k in range(3):
        np.save(tmp_path / f"slice{k}.npy", np.full((8, 8), k, np.float32))
    shutil.copy(tmp_path / "slice0.npy", tmp_path / ".hidden.npy")
    stack = read_ct(tmp_path)
    assert stack.kind == "npy" and stack.hu[:, 0, 0].tolist() == [0.0, 1.0, 2.0]
