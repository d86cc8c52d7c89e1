"""DICOM write-back that works for real series: every CT and grayscale file pydicom-data ships.

Each file is read, changed, written back and read again with pydicom's validation raising on any
invalid value: HU within one stored unit, new UIDs, the SOP class kept, private tags kept,
uncompressed Explicit VR Little Endian out whatever came in, multi-frame files back as one file.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import os
from pathlib import Path

import numpy as np
import pydicom
import pydicom.config
import pytest
from pydicom.data import get_testdata_file
from pydicom.data.data_manager import DATA_ROOT, DataTypes, external_data_sources
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from lowdose.core.errors import LowdoseInputError
from lowdose.io.dicom_read import read_dicom_file, rescale_of
from lowdose.io.dicom_write import stored_values, write_dicom_like
from lowdose.io.images import read_ct

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
OWN_KEYWORDS = (
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "SeriesDescription",
    "DerivationDescription",
    "ImageType",
    "BitsStored",
    "HighBit",
)
# pydicom's test files hold invalid values on purpose; its warnings about them are not ours
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _pydicom_test_files() -> list[Path]:
    """Every file of pydicom's own test data and of pydicom-data, without any download.

    (``pydicom.data.get_testdata_files`` also tries to download files it does not hold, which
    hangs for minutes without a network.)
    """
    files = glob.glob(os.path.join(DATA_ROOT, "test_files", "**", "*"), recursive=True)
    for source in external_data_sources().values():
        files += source.get_paths("**/*", DataTypes.DATASET)
    return sorted({Path(f) for f in files if os.path.isfile(f)}, key=lambda p: p.name)


def _grayscale_images() -> list[Path]:
    """The files holding one-channel images: Modality CT, or MONOCHROME1/2 of any modality."""
    found = []
    for path in _pydicom_test_files():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue  # not DICOM (charset files, palettes, DICOMDIR trees ...)
        if "Rows" not in ds or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            continue
        photometric = str(ds.get("PhotometricInterpretation", ""))
        if ds.get("Modality") == "CT" or photometric.startswith("MONOCHROME"):
            found.append(path)
    return found


GRAYSCALE = _grayscale_images()


@contextlib.contextmanager
def strict_validation():
    """pydicom raises on any invalid value it reads or is given to write."""
    settings = pydicom.config.settings
    before = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.RAISE
    try:
        yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = before


def read_strictly(path: Path) -> pydicom.Dataset:
    """Read ``path`` and every value in it (nested ones too) with validation raising."""
    with strict_validation():
        ds = pydicom.dcmread(path)
        for elem in ds.iterall():
            _ = elem.value
    return ds


def _is_strictly_valid(path: Path) -> bool:
    try:
        read_strictly(path)
    except (ValueError, KeyError):
        return False
    return True


def _changed(hu: np.ndarray, slope: float) -> np.ndarray:
    """``hu`` with values between the stored steps: what a denoiser returns."""
    rng = np.random.default_rng(0)
    return hu.astype(np.float64) + rng.normal(0, 3 * abs(slope), hu.shape)


def _check_round_trip(template, hu, written_path: Path, source: Path) -> None:
    """The written file: valid, new UIDs, same class, private tags, HU within one stored unit."""
    if _is_strictly_valid(source):
        written = read_strictly(written_path)
    else:  # invalid values inherited from the template would fail; lowdose's own must not
        with strict_validation():
            lazily = pydicom.dcmread(written_path)  # values are checked when first read
            for keyword in OWN_KEYWORDS:
                _ = lazily[keyword].value
        written = pydicom.dcmread(written_path)
    meta = template.file_meta
    assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert written.SOPInstanceUID != template.get("SOPInstanceUID", meta.MediaStorageSOPInstanceUID)
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
    assert written.SeriesInstanceUID != template.get("SeriesInstanceUID")
    sop_class = template.get("SOPClassUID") or meta.MediaStorageSOPClassUID
    assert written.SOPClassUID == sop_class == written.file_meta.MediaStorageSOPClassUID
    private = {e.tag for e in template if e.tag.is_private}
    assert private <= {e.tag for e in written if e.tag.is_private}
    if meta.TransferSyntaxUID != ExplicitVRLittleEndian:
        assert "Explicit VR Little Endian" in written.DerivationDescription
    assert int(written.get("NumberOfFrames", 1) or 1) == len(hu)
    back = read_dicom_file(written_path).hu
    slope, intercept = rescale_of(template)
    stored = (hu - intercept) / slope
    info = np.iinfo(stored_values(hu[:1, :1, :1], template).dtype)
    unclipped = (stored > info.min + 1) & (stored < info.max - 1)
    tolerance = abs(slope) / 2 + 1e-4 * (1 + np.abs(hu).max())  # half a step + float32 HU
    assert np.abs(back - hu)[unclipped].max(initial=0) <= tolerance
    # clipped to the stored type's range, not wrapped round
    assert np.all((back[stored <= info.min] - intercept) / slope <= info.min + 0.5)
    assert np.all((back[stored >= info.max] - intercept) / slope >= info.max - 0.5)


@pytest.mark.parametrize("path", GRAYSCALE, ids=lambda p: p.name)
def test_every_grayscale_file_of_pydicom_data_is_written_back(path, tmp_path):
    try:
        read = read_dicom_file(path)
    except LowdoseInputError as exc:  # no decoder, truncated or corrupt on purpose
        pytest.skip(f"lowdose cannot read it either: {exc}")
    before = copy.deepcopy(read.header)
    slope, _ = rescale_of(read.header)
    hu = _changed(read.hu, slope)
    templates = [read.header] * len(hu)  # frames of one file share one header, as read
    if int(read.header.BitsAllocated) not in (8, 16, 32):  # 1-bit segmentations
        with pytest.raises(LowdoseInputError, match="BitsAllocated"):
            write_dicom_like(templates, hu, tmp_path)
        return
    # pydicom's write validation re-checks what a template brings: strict for valid sources only
    valid = _is_strictly_valid(path)
    with strict_validation() if valid else contextlib.nullcontext():
        paths = write_dicom_like(templates, hu, tmp_path, derivation="denoised by lowdose, test")
    assert len(paths) == 1 and paths[0].name == path.name
    assert read.header == before  # the template is not modified
    _check_round_trip(read.header, hu, paths[0], path)


def test_enough_ct_files_and_transfer_syntaxes_are_exercised():
    exercised, syntaxes, undecodable = [], set(), []
    for path in GRAYSCALE:
        if pydicom.dcmread(path, stop_before_pixels=True).get("Modality") != "CT":
            continue
        try:  # what the round trip above runs on, or skips
            header = read_dicom_file(path).header
        except LowdoseInputError:
            undecodable.append(path.name)
            continue
        exercised.append(path.name)
        syntaxes.add(header.file_meta.TransferSyntaxUID)
    # pydicom 3.0 + pydicom-data 1.0: 20 CT files in 4 transfer syntaxes, all decodable
    assert len(exercised) >= 8, (exercised, undecodable)
    assert len(syntaxes) >= 3, syntaxes
    assert len(GRAYSCALE) >= 40


def _siemens_like(path: Path) -> Path:
    """A Siemens-like slice: unsigned 12-bit, lossless JPEG 2000, SOP class and instance only in
    the file meta (as DCMTK writes them), a private CSA block, slope 1.0002441 (as some series)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    stored = np.clip(ds.pixel_array.astype(np.int32), 0, 4095).astype(np.uint16)
    stored[:10] = 0  # the scanner's floor: clipped on reading back too
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
    ds.RescaleSlope, ds.RescaleIntercept = "1.0002441", "-1024"
    del ds.PixelPaddingValue
    block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    block.add_new(0x10, "OB", b"SV10\x04\x03\x02\x01" * 8)
    block.add_new(0x08, "CS", "IMAGE NUM 4")
    ds.compress(JPEG2000Lossless, stored, encoding_plugin="pylibjpeg")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = "1.2.276.0.7230010.3.0.3.6.4"
    ds.file_meta.ImplementationVersionName = "OFFIS_DCMTK_364"
    del ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=False)
    return path


def test_a_siemens_like_jpeg2000_series_is_written_back(tmp_path):
    source = _siemens_like(tmp_path / "IM-0001-0001.dcm")
    assert "SOPClassUID" not in pydicom.dcmread(source)  # the crash of the issue: no class here
    stack = read_ct(source)
    hu = _changed(stack.hu, 1.0002441)
    with strict_validation():
        (path,) = write_dicom_like(stack.headers, hu, tmp_path / "out")
    _check_round_trip(stack.headers[0], hu, path, source)
    written = read_strictly(path)
    assert written.SOPClassUID == CT_IMAGE_STORAGE
    assert "JPEG 2000" in written.DerivationDescription
    assert written.file_meta.ImplementationClassUID != "1.2.276.0.7230010.3.0.3.6.4"
    block = written.private_block(0x0029, "SIEMENS CSA HEADER")
    assert block[0x10].value == b"SV10\x04\x03\x02\x01" * 8 and block[0x08].value == "IMAGE NUM 4"
    assert written.PixelRepresentation == 0 and written.pixel_array.dtype == np.uint16
    below_floor = hu < -1024  # clipped to the unsigned floor, not wrapped round
    assert below_floor.any() and np.all(read_ct(path).hu[below_floor] == -1024)


def _multi_frame_source() -> Path:
    path = next(p for p in GRAYSCALE if p.name == "emri_small.dcm")
    assert int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames) == 10
    return path


def test_multi_frame_comes_back_as_one_multi_frame_file(tmp_path):
    stack = read_ct(_multi_frame_source())
    assert stack.hu.shape[0] == 10 and len({id(h) for h in stack.headers}) == 1
    hu = stack.hu + 7.0  # unsigned data: stay above the stored floor
    (path,) = write_dicom_like(stack.headers, hu, tmp_path)
    back = read_ct(path)
    assert int(pydicom.dcmread(path).NumberOfFrames) == 10
    assert np.abs(back.hu - hu).max() <= 0.5
    with pytest.raises(LowdoseInputError, match="frames"):
        write_dicom_like(stack.headers[:4], hu[:4], tmp_path / "part")
    assert not (tmp_path / "part").exists()
    copies = [copy.deepcopy(h) for h in stack.headers]  # copies of one file's header group too
    (again,) = write_dicom_like(copies, hu, tmp_path / "copies")
    assert int(pydicom.dcmread(again).NumberOfFrames) == 10


def test_an_image_type_of_one_value_is_not_split_into_letters(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.ImageType = "ORIGINAL"
    (path,) = write_dicom_like([ds], np.zeros((128, 128)), tmp_path)
    assert list(read_strictly(path).ImageType) == ["DERIVED", "SECONDARY"]


@pytest.mark.parametrize("signed", [True, False])
def test_signed_and_unsigned_pixels_clip_to_their_range(tmp_path, signed):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelRepresentation = int(signed)
    hu = np.stack([np.full((128, 128), 1e6), np.full((128, 128), -1e6)])
    paths = write_dicom_like([ds, ds], hu, tmp_path)
    high, low = (pydicom.dcmread(p).pixel_array for p in paths)
    assert high.dtype == (np.int16 if signed else np.uint16)
    assert high.max() == (32767 if signed else 65535)
    assert low.min() == (-32768 if signed else 0)


def test_missing_optional_tags_and_identifiers_anywhere(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword in (
        "SeriesDescription",
        "ImageType",
        "RescaleSlope",
        "RescaleIntercept",
        "PixelSpacing",
        "SeriesInstanceUID",
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "ImagePositionPatient",
        "PixelPaddingValue",
    ):
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    source = tmp_path / "bare.dcm"
    ds.save_as(source, implicit_vr=True, little_endian=True)
    stack = read_ct(source)
    hu = _changed(stack.hu, 1.0)
    with strict_validation():
        (path,) = write_dicom_like(stack.headers, hu, tmp_path / "out")
    written = read_strictly(path)
    assert written.SOPClassUID == CT_IMAGE_STORAGE  # Modality CT, no class anywhere
    assert written.SeriesDescription.strip() == "lowdose"
    assert list(written.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
    assert np.abs(read_ct(path).hu - hu).max() <= 0.5 + 1e-3


def test_long_texts_are_cut_to_their_value_representation(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SeriesDescription = "x" * 64
    with strict_validation():
        (path,) = write_dicom_like([ds], np.zeros((128, 128)), tmp_path, derivation="y" * 2000)
    written = read_strictly(path)
    assert len(written.SeriesDescription) == 64 and written.SeriesDescription.endswith("lowdose")
    assert len(written.DerivationDescription) == 1024


def test_padding_value_written_as_us_by_a_scanner_comes_back_typed_and_exact(tmp_path):
    # GE writes the signed padding -2000 as US 63536 in some series (the shared TCGA slices).
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    stored = ds.pixel_array.copy()
    stored[:, :20] = -2000
    ds.PixelData = stored.tobytes()
    del ds.PixelPaddingValue
    ds.add_new("PixelPaddingValue", "US", 63536)
    source = tmp_path / "in" / "ge.dcm"
    source.parent.mkdir()
    ds.save_as(source)
    stack = read_ct(source)
    assert stack.slices[0].padding_hu == -3024.0
    (path,) = write_dicom_like(stack.headers, stack.hu, tmp_path / "out")
    written = read_strictly(path)
    assert written["PixelPaddingValue"].VR == "SS" and written.PixelPaddingValue == -2000
    np.testing.assert_array_equal(written.pixel_array, stored)  # read values come back exactly
