"""DICOM that a PACS files as one new, derived series: identity, references, padding, vendors.

Slices of each vendor (GE and Siemens from ``../shared/data/ct/tcga-luad``, Philips from
``../shared/data/ct/pancreas-ct-philips``, and pydicom-data's CT and MR files in JPEG 2000, JPEG
lossless and RLE) are read, changed inside the field of view as a denoiser changes them, written
back with :func:`write_dicom_like` and read with pydicom as a PACS sees them: one new series per
input series (with the input's UIDs or without), new unique instances, references to the source
instance, the series number, software, image type and derivation code, HU within one stored unit
and the padding exact. The same files come out of one call and of two shards.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr.codedict import codes

from lowdose import __version__
from lowdose.io.dicom_identity import DERIVATION_CODE, PURPOSE_CODE
from lowdose.io.dicom_read import read_dicom_file, rescale_of
from lowdose.io.dicom_write import write_dicom_like
from lowdose.io.images import read_ct
from lowdose.physics.field_of_view import field_of_view_mask

SHARED = Path(__file__).resolve().parents[3] / "shared/data/ct"
TCGA, PHILIPS = SHARED / "tcga-luad", SHARED / "pancreas-ct-philips"
DERIVATION = "denoised by lowdose test-model"
# GE: -2048 HU padding under a tag of -2000 stored (SS; US 63536), and -3024 HU under a right tag.
# Siemens: implicit VR, explicit VR, slope 1.0002441; none pads (full-field reconstructions).
VENDORS = {
    "ge": (
        TCGA,
        (
            "ID_0035_AGE_0059_CONTRAST_1_CT.dcm",
            "ID_0051_AGE_0063_CONTRAST_0_CT.dcm",
            "ID_0025_AGE_0074_CONTRAST_1_CT.dcm",
        ),
    ),
    "siemens": (
        TCGA,
        (
            "ID_0000_AGE_0060_CONTRAST_1_CT.dcm",
            "ID_0002_AGE_0074_CONTRAST_1_CT.dcm",
            "ID_0012_AGE_0061_CONTRAST_1_CT.dcm",
        ),
    ),
    "philips": (PHILIPS, ("1-001.dcm", "1-002.dcm", "1-003.dcm")),
}
# GE JPEG 2000 lossless + Siemens JPEG lossless (512^2), an RLE MR, and the plain CT_small.dcm
PYDICOM_DATA = (("693_J2KR.dcm", "bad_sequence.dcm"), ("MR_small_RLE.dcm",), ("CT_small.dcm",))
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom-data's odd values


def _vendor_params():
    for name, (folder, files) in VENDORS.items():
        missing = pytest.mark.skipif(not folder.is_dir(), reason=f"{folder} not found")
        yield pytest.param([folder / f for f in files], id=name, marks=missing)
    for names in PYDICOM_DATA:
        yield pytest.param([Path(get_testdata_file(f)) for f in names], id="+".join(names))


def _linked(folder: Path, sources) -> Path:
    """``folder`` with a symbolic link to each source (tests never write into ../shared)."""
    folder.mkdir(parents=True)
    for source in sources:
        (folder / source.name).symlink_to(source)
    return folder


def _denoised(stack) -> tuple[np.ndarray, np.ndarray]:
    """(HU changed inside the field of view as a denoiser does, the field of view (I, H, W))."""
    inside = np.stack(
        [
            field_of_view_mask(hu, padding_hu=info.padding_hu if info.modality == "CT" else None)
            for hu, info in zip(stack.hu, stack.slices, strict=True)
        ]
    )
    noise = np.random.default_rng(0).normal(0, 4.0, stack.hu.shape)
    return np.where(inside, stack.hu + noise, stack.hu), inside


def _source_key(header) -> str:
    uid = str(header.get("SeriesInstanceUID", "") or "")
    return uid or str(Path(header.filename).parent)


def _check_pacs(stack, hu, inside, paths) -> None:
    """What a PACS and a viewer rely on, file by file against its template."""
    written = [pydicom.dcmread(p) for p in paths]
    series: dict[str, set[str]] = {}
    for header, ds in zip(stack.headers, written, strict=True):
        series.setdefault(_source_key(header), set()).add(ds.SeriesInstanceUID)
    assert all(len(uids) == 1 for uids in series.values())  # one output series per input series
    assert len(set.union(*series.values())) == len(series)
    sources = {str(h.get("SOPInstanceUID", "")) for h in stack.headers}
    sops = [ds.SOPInstanceUID for ds in written]
    assert len(set(sops)) == len(sops) and not set(sops) & sources
    for row, (header, ds) in enumerate(zip(stack.headers, written, strict=True)):
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SeriesInstanceUID != header.get("SeriesInstanceUID")
        (reference,) = ds.SourceImageSequence
        assert reference.ReferencedSOPInstanceUID == header.SOPInstanceUID
        assert reference.ReferencedSOPClassUID == header.SOPClassUID == ds.SOPClassUID
        assert reference.PurposeOfReferenceCodeSequence[0].CodeValue == PURPOSE_CODE[0]
        assert ds.SeriesNumber == int(header.get("SeriesNumber") or 0) + 1000
        assert isinstance(ds.SeriesNumber, pydicom.valuerep.IS)
        assert len(str(ds.SeriesNumber)) <= 12
        versions = ds.SoftwareVersions
        versions = [versions] if isinstance(versions, str) else list(versions)
        scanner = header.get("SoftwareVersions") or []
        scanner = [scanner] if isinstance(scanner, str) else list(scanner)
        assert versions == [*scanner, f"lowdose {__version__}"]
        assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert ds.DerivationCodeSequence[0].CodeValue == DERIVATION_CODE[0]
        assert ds.StudyInstanceUID == header.StudyInstanceUID
        slope, intercept = rescale_of(header)
        back = ds.pixel_array * slope + intercept  # decodes
        info = np.iinfo(ds.pixel_array.dtype)  # unsigned Siemens pixels clip at -1024 HU
        stored = (hu[row] - intercept) / slope
        kept = inside[row] & (stored > info.min + 1) & (stored < info.max - 1)
        assert np.abs(back - hu[row])[kept].max() <= abs(slope) / 2 + 1e-3
        source = pydicom.dcmread(header.filename).pixel_array
        np.testing.assert_array_equal(ds.pixel_array[~inside[row]], source[~inside[row]])


@pytest.mark.parametrize("sources", _vendor_params())
def test_each_vendor_comes_back_as_a_derived_series_a_pacs_files(tmp_path, sources):
    stack = read_ct(_linked(tmp_path / "in", sources))
    hu, inside = _denoised(stack)
    paths = write_dicom_like(stack.headers, hu, tmp_path / "out", derivation=DERIVATION)
    assert len(paths) == len(sources)
    _check_pacs(stack, hu, inside, paths)
    padded = stack.hu.min(axis=(1, 2)) < -1500  # GE: -2048 or -3024 HU, whatever the tag says
    assert np.all((~inside).any(axis=(1, 2)) == padded)  # found, and kept exactly (above)
    # two shards (one slice, then the rest) give the bytes of one call
    shards = [
        write_dicom_like(stack.headers[part], hu[part], tmp_path / "shards", derivation=DERIVATION)
        for part in (slice(0, 1), slice(1, None))
        if len(stack.headers[part])
    ]
    shards += [[]] * (2 - len(shards))
    assert [p.name for p in shards[0] + shards[1]] == [p.name for p in paths]
    for one, shard in zip(paths, shards[0] + shards[1], strict=True):
        assert one.read_bytes() == shard.read_bytes()
    # another model: another series and other instances
    other = write_dicom_like(stack.headers[:1], hu[:1], tmp_path / "other", derivation="tta8")
    first, again = pydicom.dcmread(paths[0]), pydicom.dcmread(other[0])
    assert again.SeriesInstanceUID != first.SeriesInstanceUID
    assert again.SOPInstanceUID != first.SOPInstanceUID


def _blanked_series(folder: Path, sources, n_slices: int = 3) -> Path:
    """Copies with empty Study/Series/SOP UIDs (as anonymisers leave them), in ``folder``."""
    folder.mkdir(parents=True)
    for k in range(n_slices):
        ds = pydicom.dcmread(sources[k % len(sources)])
        ds.StudyInstanceUID = ds.SeriesInstanceUID = ds.SOPInstanceUID = ""
        ds.file_meta.MediaStorageSOPInstanceUID = ""
        ds.InstanceNumber = k + 1
        ds.save_as(folder / f"IM{k:04d}")
    return folder


@pytest.mark.parametrize(
    "sources",
    [
        pytest.param(
            [PHILIPS / f for f in VENDORS["philips"][1]],
            id="philips",
            marks=pytest.mark.skipif(not PHILIPS.is_dir(), reason=f"{PHILIPS} not found"),
        ),
        pytest.param([Path(get_testdata_file("CT_small.dcm"))], id="ct-small"),
    ],
)
def test_series_without_uids_stay_one_series_per_folder(tmp_path, sources):
    folders = [_blanked_series(tmp_path / name, sources) for name in ("a", "b")]
    stacks = [read_ct(folder) for folder in folders]
    written = []
    for stack, name in zip(stacks, ("a", "b"), strict=True):
        paths = write_dicom_like(stack.headers, stack.hu, tmp_path / "out" / name)
        written.append([pydicom.dcmread(p) for p in paths])
    series = [{ds.SeriesInstanceUID for ds in files} for files in written]
    assert [len(s) for s in series] == [1, 1] and series[0] != series[1]  # not 3 + 3 series
    every = [ds for files in written for ds in files]
    assert len({ds.SOPInstanceUID for ds in every}) == len(every)
    for ds in every:
        assert ds.SOPInstanceUID and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert pydicom.valuerep.validate_value("UI", ds.StudyInstanceUID, 2) is None
        assert ds.StudyInstanceUID  # a PACS refuses an empty study
        assert "SourceImageSequence" not in ds  # no source instance to name: no item
        _ = ds.pixel_array
    again = write_dicom_like(stacks[0].headers, stacks[0].hu, tmp_path / "again")
    assert pydicom.dcmread(again[0]).SeriesInstanceUID in series[0]  # a resumed run


def _ct_small_with(tmp_path: Path, **sequences) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, items in sequences.items():
        setattr(ds, keyword, items)
    path = tmp_path / "in" / "ct.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def _reference(uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = uid
    return item


def test_the_scanners_references_do_not_pose_as_the_link_to_the_source(tmp_path):
    source_sop = pydicom.dcmread(get_testdata_file("CT_small.dcm")).SOPInstanceUID
    path = _ct_small_with(
        tmp_path,
        SourceImageSequence=[_reference("1.2.3.4.5")],  # the scanner's raw data, say
        ReferencedImageSequence=[_reference("1.2.3.4.6"), _reference(source_sop)],  # localizer
    )
    stack = read_ct(path)
    (out,) = write_dicom_like(stack.headers, stack.hu, tmp_path / "out")
    ds = pydicom.dcmread(out)
    assert [r.ReferencedSOPInstanceUID for r in ds.SourceImageSequence] == [source_sop]
    assert [r.ReferencedSOPInstanceUID for r in ds.ReferencedImageSequence] == ["1.2.3.4.6"]

    del stack.headers[0].SOPInstanceUID  # a source without an instance UID anywhere
    stack.headers[0].file_meta.MediaStorageSOPInstanceUID = ""
    (out,) = write_dicom_like(stack.headers, stack.hu, tmp_path / "bare")
    ds = pydicom.dcmread(out)
    assert "SourceImageSequence" not in ds and ds.SOPInstanceUID
    assert len(ds.ReferencedImageSequence) == 2  # nothing names the source: all stay


def test_two_files_with_one_source_uid_stay_two_instances(tmp_path):
    # the shared TCGA set holds five pairs of identical files under two names
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("ID_0003.dcm", "ID_0006.dcm"):
        (folder / name).write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    stack = read_ct(folder)
    paths = write_dicom_like(stack.headers, stack.hu, tmp_path / "out")
    assert len({pydicom.dcmread(p).SOPInstanceUID for p in paths}) == 2


def test_series_number_stays_a_valid_integer_string(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    templates = []
    for number in ("", "000005", str(2**31 - 10)):
        template = copy.deepcopy(ds)
        template.SeriesNumber = number
        templates.append(template)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.RAISE)
        paths = write_dicom_like(templates, np.zeros((3, 128, 128)), tmp_path)
    assert [pydicom.dcmread(p).SeriesNumber for p in paths] == [1000, 1005, 1000]


def test_the_codes_are_those_of_the_dicom_context_groups():
    smoothing = codes.DCM.Smoothing  # no narrower "noise reduction" concept in CID 7203
    assert (smoothing.value, smoothing.scheme_designator, smoothing.meaning) == DERIVATION_CODE
    assert "Smoothing" in cid_concepts[7203]["DCM"]  # CID 7203 Image Derivation
    purpose = codes.DCM.SourceImageForImageProcessingOperation
    assert (purpose.value, purpose.scheme_designator, purpose.meaning) == PURPOSE_CODE
    assert "SourceImageForImageProcessingOperation" in cid_concepts[7202]["DCM"]


def test_written_files_read_back_through_lowdose(tmp_path):
    path = Path(get_testdata_file("CT_small.dcm"))
    stack = read_ct(path)
    (out,) = write_dicom_like(stack.headers, stack.hu, tmp_path)
    assert np.array_equal(read_dicom_file(out).hu, stack.hu)
