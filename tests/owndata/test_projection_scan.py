"""Instrument scans to datasets and through ``fit``: Data Exchange and TIFF stacks, end to end."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import lowdose.cli
from lowdose.data.dataset import read_info
from lowdose.owndata.projection_scan import (
    build_from_projections,
    is_instrument_scan,
    prepare_scan,
)
from lowdose.physics.radon import radon_2d
from lowdose.physics.rotation_centre import fbp_axis_px

ANGLES = np.arange(0.0, 180.0, 2.0)  # 90 views
OFFSET_PX = 2.4  # the rotation axis sits this far right of the detector's middle


def _counts(rows: int = 12, size: int = 96, photons: float = 2e4, seed: int = 0):
    """(angles, rows, n_det) Poisson counts of discs, axis off-centre; flats (5) and darks (3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    slices = []
    for row in range(rows):
        mu = np.where(np.hypot(yy, xx) < size * 0.4, 0.02, 0.0)
        mu = np.where(np.hypot(yy - 6, xx + 5 + row % 3) < size * 0.12, 0.05, mu)
        slices.append(mu)
    sino = radon_2d(np.stack(slices), ANGLES)  # (rows, angles, n_det), axis at the middle
    n_det = sino.shape[2]
    detector = np.arange(n_det, dtype=np.float64)
    # the axis OFFSET_PX right of the middle: each projection's content moves with it
    shifted = np.stack(
        [[np.interp(detector - OFFSET_PX, detector, p) for p in s] for s in sino]
    )  # (rows, angles, n_det)
    dark_level = 100.0
    expected = dark_level + photons * np.exp(-shifted)
    projections = rng.poisson(expected).astype(np.uint16).transpose(1, 0, 2)  # (angles, rows, det)
    flats = rng.poisson(dark_level + photons, (5, rows, n_det)).astype(np.uint16)
    darks = rng.poisson(dark_level, (3, rows, n_det)).astype(np.uint16)
    return projections, flats, darks


def _data_exchange(path, theta_deg=True):
    projections, flats, darks = _counts()
    with h5py.File(path, "w") as handle:
        handle["exchange/data"] = projections
        handle["exchange/data_white"] = flats
        handle["exchange/data_dark"] = darks
        handle["exchange/theta"] = ANGLES if theta_deg else np.deg2rad(ANGLES)
    return path


def _tiff_stack(folder):
    projections, flats, darks = _counts()
    (folder / "tiffs").mkdir(parents=True)
    for k, image in enumerate(projections):
        tifffile.imwrite(folder / "tiffs" / f"proj_{k:05d}.tif", image)
    tifffile.imwrite(folder / "flat_00001.tiff", flats[0])
    tifffile.imwrite(folder / "dark_00001.tiff", darks[0])
    np.savetxt(folder / "angles.txt", ANGLES)
    return folder


def test_a_data_exchange_scan_is_corrected_and_centred(tmp_path):
    path = _data_exchange(tmp_path / "scan.h5")
    assert is_instrument_scan(path)
    scan = prepare_scan(path)
    n_det = scan.sinograms.shape[2]
    assert scan.sinograms.shape[:2] == (12, len(ANGLES))
    # 12 noisy rows, 5 averaged: the estimator's own accuracy is tested in tests/physics
    assert abs(scan.centre_px - (fbp_axis_px(n_det) + OFFSET_PX)) < 0.5, scan.notes
    assert np.allclose(scan.angles_deg, ANGLES)
    assert any("centre" in line for line in scan.notes)
    given = prepare_scan(path, center=fbp_axis_px(n_det) + OFFSET_PX)
    assert given.centre_px == fbp_axis_px(n_det) + OFFSET_PX and "as given" in given.notes[-1]

    # centred: the 0 degree projection and the mirrored 180 degree one (not in ANGLES: the
    # last view, 178 degrees, mirrored, is the nearest) agree far better than before centring
    def mismatch(sinograms):
        return float(np.abs(sinograms[:, 0] - sinograms[:, -1, ::-1]).mean())

    raw = prepare_scan(path, center=fbp_axis_px(n_det))
    assert mismatch(given.sinograms) < 0.5 * mismatch(raw.sinograms)


def test_a_tiff_stack_with_flats_builds_a_split_dataset(tmp_path):
    folder = _tiff_stack(tmp_path / "stack")
    assert is_instrument_scan(folder) and not is_instrument_scan(tmp_path / "stack" / "tiffs")
    lines = []
    summary = build_from_projections([folder], tmp_path / "data.h5", log=lines.append,
                                     fractions=(0.6, 0.2, 0.2))  # fmt: skip
    assert summary.n_realisations == 2
    attrs = read_info(tmp_path / "data.h5").attrs
    assert "from-projections" in attrs.description
    assert float(attrs.extra["rotation_centre_px"]) > 0
    assert any("centre" in line for line in lines)


@pytest.mark.slow
def test_fit_takes_a_data_exchange_file_end_to_end(tmp_path):
    path = _data_exchange(tmp_path / "scan.h5")
    out = tmp_path / "fit"
    result = CliRunner().invoke(
        lowdose.cli.app,
        ["fit", str(path), "--out", str(out), "--budget", "00:00:08", "--fractions", "0.6,0.2,0.2"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "rotation centre estimated" in result.output
    record = json.loads((out / "fit.json").read_text())
    assert record["plan"]["route"] == "sinogram"
    with h5py.File(out / "denoised" / "scan_denoised.h5", "r") as handle:
        denoised, fbp = handle["denoised"][:], handle["fbp"][:]
    assert denoised.shape == fbp.shape and denoised.shape[0] == 12
    assert np.isfinite(denoised).all()
    stack = tifffile.imread(out / "denoised" / "scan_denoised.tif")
    np.testing.assert_array_equal(stack, denoised)
    assert (out / "report.html").exists()
