"""Datasets from one noisy acquisition: a one-patient DICOM series -> slabs, one image -> tiles."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import lowdose.cli
import lowdose.cli.dataset_cmd  # noqa: F401  (registers the commands)
from lowdose.core.errors import LowdoseInputError
from lowdose.core.noise_correlation import NoiseCorrelation
from lowdose.data.dataset import load_split, read_info
from lowdose.owndata.single import build_from_single
from lowdose.physics.noise_estimation import single_image_noise_sigma as estimate_noise_sigma

SIGMA_HU = 20.0
SIZE = 64
RADIUS_PX = 30  # the scanner's field of view; outside it -3024 HU padding


def _slice_hu(position: int, rng: np.random.Generator) -> np.ndarray:
    """A water disc in air whose insert encodes the slice position (40 + 30 k HU), with noise."""
    rows, cols = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    radius = np.hypot(rows, cols)
    hu = np.where(radius < 24, 0.0, -1000.0)
    hu[radius < 8] = 40.0 + 30.0 * position
    hu = np.round(hu + SIGMA_HU * rng.standard_normal(hu.shape))
    return np.where(radius < RADIUS_PX, hu, -3024.0)


def write_series(folder: Path, n_slices: int = 20, patient: str = "P1") -> Path:
    """One CT series of one patient, files named in shuffled order (position order != names)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    study, series = generate_uid(), generate_uid()
    for name, position in enumerate(rng.permutation(n_slices)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
            CTImageStorage,
            generate_uid(),
        )
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{name:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
            "CT",
            patient,
            study,
            series,
        )
        ds.InstanceNumber, ds.ImagePositionPatient = int(position) + 1, [0.0, 0.0, float(position)]
        ds.ImageOrientationPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [0.7, 0.7]
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = _slice_hu(int(position), rng).astype(np.int16).tobytes()
        ds.save_as(folder / f"{name:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    return write_series(tmp_path_factory.mktemp("single") / "series")


def test_one_patient_series_is_cut_into_slabs_in_position_order(series, tmp_path):
    summary = build_from_single([series], tmp_path / "slabs.h5")
    info = read_info(summary.path)
    assert info.shape == (20 - 2 * 2, 1, SIZE, SIZE) and not info.has_clean
    extra = info.attrs.extra
    assert extra["split_by"] == "slab" and extra["split_gap"] == 2
    assert extra["split_gap_unit"] == "slices" and info.attrs.raw_units == "hu"
    assert "split by slab" in summary.describe() and summary.split_note
    positions = {}
    for name in ("train", "val", "test"):
        part = load_split(summary.path, name)
        assert set(part.object_id.tolist()) == {f"P1:slab-{name}"}
        insert_hu = part.noisy[:, 0, 28:36, 28:36].mean(axis=(1, 2)) * summary.divisor - 1024
        positions[name] = np.round((insert_hu - 40) / 30).astype(int).tolist()
        inside = part.fov[:, SIZE // 2, SIZE // 2]  # the centre is in the field of view
        assert part.fov is not None and inside.all() and not part.fov[:, 0, 0].any()
        assert np.all(part.noisy[:, 0][~part.fov] == 0.0)  # padding -> -1024 HU -> 0
    assert positions["train"] == list(range(len(positions["train"])))  # slice order, not names
    after_train = len(positions["train"]) + 2
    assert positions["val"][0] == after_train and positions["test"][-1] == 19
    assert abs(summary.details.noise_sigma_raw / SIGMA_HU - 1) < 0.1
    correlation = NoiseCorrelation.from_attrs(extra)  # recorded (the padding edge biases it)
    assert correlation.source == "single-image" and np.isfinite(correlation.max_abs)


def test_one_2d_image_is_cut_into_tiles_that_can_be_put_back(tmp_path):
    rng = np.random.default_rng(1)
    clean = np.repeat(np.linspace(10.0, 200.0, 8), 32)[None].repeat(256, axis=0)  # steps
    image = clean + 4.0 * rng.standard_normal((256, 256))
    np.save(tmp_path / "photo.npy", image)
    summary = build_from_single([tmp_path / "photo.npy"], tmp_path / "tiles.h5")
    info = read_info(summary.path)
    assert info.attrs.extra["split_by"] == "region" and info.attrs.extra["split_gap"] == 8
    tile = info.attrs.extra["split_tile_px"]
    assert tile == 64 and info.shape == (9, 1, tile, tile)  # 3 x 3 tiles of 64 with 8 px gaps
    assert summary.split_counts == {"train": 7, "val": 1, "test": 1}
    assert info.attrs.raw_units == "as stored" and info.attrs.scaling_offset == 0.0
    for name in ("train", "val", "test"):
        part = load_split(summary.path, name)
        for noisy, (row, col) in zip(part.noisy[:, 0], part.tile_origin, strict=True):
            expected = image[row : row + tile, col : col + tile] / summary.divisor
            np.testing.assert_allclose(noisy, expected, rtol=1e-6)
        assert all(o.startswith("photo:img0:region-r") for o in part.object_id)
    with h5py.File(summary.path) as handle:
        assert handle["tile_origin"].shape == (9, 2) and "fov" not in handle
    assert abs(summary.details.noise_sigma_raw / 4.0 - 1) < 0.1
    correlation = NoiseCorrelation.from_attrs(info.attrs.extra)
    assert correlation.source == "single-image" and not correlation.is_correlated  # white


def test_cli_from_single_prints_the_split_and_the_noise(series, tmp_path):
    out = tmp_path / "cli.h5"
    result = CliRunner().invoke(
        lowdose.cli.app,
        [
            "dataset",
            "from-single",
            str(series),
            "--out",
            str(out),
            "--split-by",
            "slab",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "split by slab" in result.output and "single-image noise sigma" in result.output
    assert "noise lag-1 correlation" in result.output and "HU" in result.output


def test_impossible_splits_are_one_line_errors_and_write_nothing(tmp_path):
    np.save(tmp_path / "small.npy", np.random.default_rng(2).normal(size=(64, 64)))
    with pytest.raises(LowdoseInputError) as info:
        build_from_single([tmp_path / "small.npy"], tmp_path / "x.h5")
    assert "\n" not in str(info.value) and "--fractions 1,0,0" in str(info.value)
    with pytest.raises(LowdoseInputError, match="--split-by region"):
        build_from_single([tmp_path / "small.npy"], tmp_path / "x.h5", split_by="slab")
    assert not (tmp_path / "x.h5").exists()
    ok = build_from_single([tmp_path / "small.npy"], tmp_path / "x.h5", fractions=(1.0, 0, 0))
    assert ok.split_counts == {"train": 1, "val": 0, "test": 0}


def test_sigma_estimate_ignores_edges_and_flat_padding():
    rng = np.random.default_rng(3)
    image = np.zeros((128, 128))
    image[32:96, 32:96] = 500.0  # strong edges
    noisy = image + 10.0 * rng.standard_normal(image.shape)
    noisy[:, :40] = -3024.0  # a quarter of padding
    assert abs(estimate_noise_sigma(noisy) / 10.0 - 1) < 0.08
    assert estimate_noise_sigma(np.full((16, 16), 7.0)) == 0.0
    with pytest.raises(LowdoseInputError, match="2-D image"):
        estimate_noise_sigma(np.zeros((2, 8)))
