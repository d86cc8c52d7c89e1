"""Datasets from repeated acquisitions (no clean images) and clean-free scores.

Real data: a few shared TCGA-LUAD slices (../shared/data/ct/tcga-luad), read in HU, given
independent Gaussian noise of known sigma, and written as two DICOM series.
"""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import lowdose.cli
import lowdose.cli.dataset_cmd  # noqa: F401  (registers the commands)
from lowdose.core.errors import LowdoseInputError
from lowdose.core.noise_correlation import NoiseCorrelation
from lowdose.data.dataset import read_info
from lowdose.io.dicom_write import write_dicom_like
from lowdose.io.images import read_ct
from lowdose.owndata.repeats import build_from_repeats
from lowdose.physics.noise_estimation import (
    pair_noise_variance,
    same_object_statistics,
)

SIGMA_HU = 30.0


@pytest.fixture(scope="module")
def slices(tcga_dir):
    """Six 512^2 HU slices of distinct patients and their headers."""
    stack = read_ct(tcga_dir)
    rows, patients = [], set()
    for row, info in enumerate(stack.slices):
        if info.patient_id not in patients:
            patients.add(info.patient_id)
            rows.append(row)
    rows = rows[:6]
    return stack.hu[rows].astype(np.float64), [stack.headers[r] for r in rows]


def write_series(folder: Path, hu, headers, **tags) -> Path:
    """One DICOM series, signed int16 so noise below -1024 HU survives; ``tags`` override."""
    templates = [copy.deepcopy(h) for h in headers]
    for template in templates:
        template.PixelRepresentation = 1
        for key, value in tags.items():
            setattr(template, key, value)
    write_dicom_like(templates, hu, folder)
    return folder


@pytest.fixture(scope="module")
def repeats(tmp_path_factory, slices):
    hu, headers = slices
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("repeats")
    folders = [
        write_series(root / f"rep{k}", hu + SIGMA_HU * rng.standard_normal(hu.shape), headers)
        for k in (1, 2)
    ]
    return root, folders


def test_pair_estimated_noise_variance_matches_the_true_one(repeats):
    root, folders = repeats
    summary = build_from_repeats(folders, root / "data.h5", fractions=(0.5, 0.25, 0.25))
    assert abs(summary.details.noise_variance_raw / SIGMA_HU**2 - 1) < 0.05
    per_image_hu2 = summary.details.noise_variance_per_image * summary.divisor**2
    assert np.all(np.abs(per_image_hu2 / SIGMA_HU**2 - 1) < 0.05)
    info = read_info(summary.path)
    assert not info.has_clean and info.shape == (6, 2, 512, 512)
    assert info.attrs.scaling_rule == "dataset_max" and info.attrs.scaling_offset == 1024
    assert info.attrs.raw_units == "hu" and info.attrs.noise_model == "measured"
    assert info.attrs.extra["pair_noise_variance_raw"] == pytest.approx(
        summary.details.noise_variance_raw
    )
    with h5py.File(summary.path, "r") as handle:
        scale = handle["scale"][()]
        noisy = handle["noisy"][0]
    assert np.all(scale == np.float32(summary.divisor))
    # stored = (HU + 1024) / divisor, so the pair variance on that scale is HU^2 / divisor^2
    assert pair_noise_variance(noisy)[0] == pytest.approx(
        summary.details.noise_variance_per_image[0], rel=1e-3
    )
    # split by patient: every patient in exactly one split
    assert sum(summary.split_counts.values()) == 6 and min(summary.split_counts.values()) >= 1
    for patient in set(info.object_id):
        assert len(set(info.split[info.object_id == patient])) == 1


def test_cli_from_repeats_prints_the_noise_variance(repeats):
    root, folders = repeats
    out = root / "cli.h5"
    result = CliRunner().invoke(
        lowdose.cli.app, ["dataset", "from-repeats", *map(str, folders), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "pair-estimated noise variance" in result.output and "HU^2" in result.output
    value = float(result.output.split("Var(y1-y2)/2:")[1].split()[0])
    assert abs(value / SIGMA_HU**2 - 1) < 0.05


def _error(call) -> str:
    with pytest.raises(LowdoseInputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_single_realisation_is_a_clear_error(repeats, tmp_path):
    _root, folders = repeats
    message = _error(lambda: build_from_repeats([folders[0]], tmp_path / "x.h5"))
    assert str(folders[0]) in message and "two or more" in message
    result = CliRunner().invoke(
        lowdose.cli.app, ["dataset", "from-repeats", str(folders[0]), "--out", str(tmp_path / "y")]
    )
    assert result.exit_code == 1 and "two or more" in result.output
    assert not (tmp_path / "x.h5").exists()


def test_different_geometry_tags_name_both_files(repeats, slices, tmp_path):
    _root, folders = repeats
    hu, headers = slices
    other = write_series(tmp_path / "spacing", hu, headers, PixelSpacing=[0.5, 0.5])
    message = _error(lambda: build_from_repeats([folders[0], other], tmp_path / "x.h5"))
    assert "PixelSpacing" in message and str(folders[0]) in message and str(other) in message


def test_unrelated_images_with_matching_tags_are_refused(repeats, slices, tmp_path):
    _root, folders = repeats
    hu, headers = slices
    shuffled = write_series(tmp_path / "shuffled", np.roll(hu, 1, axis=0), headers)
    message = _error(lambda: build_from_repeats([folders[0], shuffled], tmp_path / "x.h5"))
    assert "do not show the same object" in message
    assert str(folders[0]) in message and str(shuffled) in message


def test_stacks_different_shapes_and_scale_mismatch(slices, tmp_path):
    hu = slices[0][:3, ::4, ::4]  # (3, 128, 128)
    rng = np.random.default_rng(1)
    first, second = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(first, hu + 20 * rng.standard_normal(hu.shape))
    np.save(second, hu[:, :96, :] + 20 * rng.standard_normal((3, 96, 128)))
    message = _error(lambda: build_from_repeats([first, second], tmp_path / "x.h5"))
    assert "a.npy" in message and "b.npy" in message and "same size" in message
    np.save(second, 1.1 * (hu + 1024) - 1024 + 20 * rng.standard_normal(hu.shape))
    message = _error(lambda: build_from_repeats([first, second], tmp_path / "x.h5"))
    assert "a.npy" in message and "b.npy" in message and "same object" in message
    np.save(second, hu + 20 * rng.standard_normal(hu.shape))
    summary = build_from_repeats([first, second], tmp_path / "ok.h5", split_by="image")
    assert summary.attrs.raw_units == "as stored" and summary.n_images == 3
    assert abs(summary.details.noise_variance_raw / 400 - 1) < 0.05


def test_same_object_statistics_separate_pairs_from_unrelated_slices(slices):
    hu = slices[0]
    rng = np.random.default_rng(2)
    noisy = [hu[0] + 200 * rng.standard_normal(hu[0].shape) for _ in range(2)]
    matched = same_object_statistics(*noisy)
    unrelated = same_object_statistics(hu[0], hu[1])
    assert abs(matched["difference_lag_corr"]) < 0.02 and matched["coarse_corr"] > 0.9
    assert unrelated["difference_lag_corr"] > 0.3


@pytest.mark.parametrize("scanner", ["clipped at -1024", "padded with -2048", "filled with air"])
def test_noise_variance_ignores_clip_floors_and_padding(scanner):
    """Noise-free floors (clip, field-of-view padding) are left out: the true variance remains."""
    rng = np.random.default_rng(3)
    clean = np.full((256, 256), -1000.0)
    rows, cols = np.mgrid[:256, :256]
    clean[(rows - 128) ** 2 + (cols - 128) ** 2 < 90**2] = 40.0
    noisy = clean + 25.0 * rng.standard_normal((2, 256, 256))
    if scanner == "clipped at -1024":
        noisy = np.maximum(noisy, -1024.0)
    else:
        fill = -2048.0 if scanner == "padded with -2048" else -1000.0  # inside the noise range
        noisy[:, (rows - 128) ** 2 + (cols - 128) ** 2 > 120**2] = fill
    assert pair_noise_variance(noisy)[0] == pytest.approx(625.0, rel=0.05)
    naive = np.var(noisy[0] - noisy[1]) / 2
    assert naive < 0.9 * 625.0  # the floor would bias a plain estimate


def test_two_noisy_images_of_one_object_are_cut_into_tiles(slices, tmp_path):
    hu = slices[0][0]  # one 512^2 slice
    rng = np.random.default_rng(4)
    pair = [tmp_path / "first.npy", tmp_path / "second.npy"]
    for path in pair:
        np.save(path, hu + 25.0 * rng.standard_normal(hu.shape))
    summary = build_from_repeats(pair, tmp_path / "tiles.h5")
    info = read_info(summary.path)
    extra = info.attrs.extra
    assert extra["split_by"] == "region" and extra["split_tile_px"] == 96
    assert info.shape == (25, 2, 96, 96) and summary.split_counts == {
        "train": 20,
        "val": 3,
        "test": 2,
    }
    with h5py.File(summary.path, "r") as handle:
        origin, noisy = handle["tile_origin"][()], handle["noisy"][()]
    row, col = origin[-1]
    expected = np.load(pair[1])[row : row + 96, col : col + 96] / summary.divisor
    np.testing.assert_allclose(noisy[-1, 1], expected, rtol=1e-5)
    assert "split by region" in summary.describe()
    assert not NoiseCorrelation.from_attrs(extra).is_correlated  # white noise, from the pairs
    by_volume = build_from_repeats(
        pair, tmp_path / "slab.h5", split_by="slab", fractions=(1.0, 0.0)
    )
    assert by_volume.n_images == 1 and by_volume.attrs.extra["split_by"] == "slab"
    with pytest.raises(LowdoseInputError, match="--split-by region"):
        build_from_repeats(pair, tmp_path / "x.h5", split_by="slab")
