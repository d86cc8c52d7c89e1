"""Instrument scans to datasets and through ``fit``: Data Exchange and TIFF stacks, end to end."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import lowdose.cli
from lowdose.data.dataset import load_split, read_info
from lowdose.data.scaling import NetworkScaling
from lowdose.evaluation.projection_compare import scored_rows
from lowdose.inference.projection_denoise import denoise_view_halves
from lowdose.models.unet import UNet
from lowdose.owndata.projection_domain import (
    build_from_projection_halves,
    interleave_halves,
    view_halves,
)
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
    summary = build_from_projections(
        [folder], tmp_path / "data.h5", log=lines.append, fractions=(0.6, 0.2, 0.2)
    )
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


def test_from_projections_reconstructs_with_astra(tmp_path):
    """``--backend astra`` (lowdose[astra], which `make test` installs) builds the same data."""
    path = _data_exchange(tmp_path / "scan.h5")
    datasets = {}
    for backend in ("builtin", "astra"):
        out = tmp_path / f"{backend}.h5"
        result = CliRunner().invoke(
            lowdose.cli.app,
            [
                "dataset",
                "from-projections",
                str(path),
                "--out",
                str(out),
                "--backend",
                backend,
                "--fractions",
                "0.6,0.2,0.2",
            ],
            env={"COLUMNS": "200"},
        )
        assert result.exit_code == 0, result.output
        with h5py.File(out, "r") as handle:
            datasets[backend] = handle["noisy"][:]
            assert handle.attrs["fbp_backend"] == backend
    assert datasets["astra"].shape == datasets["builtin"].shape
    difference = datasets["astra"] - datasets["builtin"]
    assert np.sqrt(np.mean(difference**2)) < 0.05 * np.sqrt(np.mean(datasets["builtin"] ** 2))


def test_view_halves_interleave_back_for_even_and_odd_view_counts():
    rng = np.random.default_rng(0)
    for n_angles in (90, 91):
        sinograms = rng.normal(size=(3, n_angles, 20))
        even, odd = view_halves(sinograms)
        assert even.shape[1] == (n_angles + 1) // 2 and odd.shape[1] == n_angles // 2
        np.testing.assert_array_equal(interleave_halves(even, odd), sinograms)


def test_denoised_even_views_do_not_depend_on_the_odd_views_noise():
    # what makes the odd half's FBP an independent, clean-free reference for the even half
    rng = np.random.default_rng(1)
    sinograms = rng.uniform(0.5, 1.5, (2, 40, 48)).astype(np.float32)
    changed = sinograms.copy()
    changed[:, 1::2] += rng.normal(0, 0.3, changed[:, 1::2].shape).astype(np.float32)
    model = UNet(width=4, residual=True).eval()
    scaling = NetworkScaling(scaling_rule="dataset_max", raw_units="line integral", divisor=2.0)
    first = denoise_view_halves(model, sinograms, scaling=scaling)
    second = denoise_view_halves(model, changed, scaling=scaling)
    np.testing.assert_array_equal(first[:, 0::2], second[:, 0::2])
    assert not np.allclose(first[:, 1::2], second[:, 1::2])


def test_projection_halves_are_single_acquisition_data_with_held_out_rows(tmp_path):
    path = _data_exchange(tmp_path / "scan.h5")
    summary = build_from_projection_halves(
        [path], tmp_path / "halves.h5", fractions=(0.6, 0.2, 0.2)
    )
    assert summary.n_realisations == 1 and summary.details.views_per_half == len(ANGLES) // 2
    info = read_info(tmp_path / "halves.h5")
    assert info.attrs.extra["projection_domain"] == "projection halves"
    assert not info.attrs.is_view_split  # training pairs come from the mode, not from halves
    rows, held_out = scored_rows(str(info.attrs.extra["test_rows"]), [12], 8)
    assert held_out and rows and all(scan == 0 and 0 <= row < 12 for scan, row in rows)
    # both halves of a held-out row are in the test split and nowhere else
    test = load_split(tmp_path / "halves.h5", "test", with_clean=False)
    assert len(test.noisy) >= 2 * len(rows)
    scan = prepare_scan(path)
    even, odd = view_halves(scan.sinograms)
    held = sorted(rows)[0][1]
    divisor = float(test.scale[0])
    matches = [
        np.allclose(image[0] * divisor, even[held, : odd.shape[1]], atol=1e-4)
        for image in test.noisy
    ]
    assert any(matches)


@pytest.mark.slow
def test_fit_denoises_the_projections_of_a_tiff_stack_end_to_end(tmp_path):
    folder = _tiff_stack(tmp_path / "stack")
    out = tmp_path / "fit"
    result = CliRunner().invoke(
        lowdose.cli.app,
        [
            "fit",
            str(folder),
            "--out",
            str(out),
            "--domain",
            "projections",
            "--budget",
            "00:00:08",
            "--fractions",
            "0.6,0.2,0.2",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "fit.json").read_text())
    # 90 views: halves of 45 views are too few for nb2nb's 64 px patches, so n2v trains
    assert (record["plan"]["route"], record["plan"]["mode"]) == ("projections", "n2v")
    with h5py.File(out / "denoised" / "stack_projections_denoised.h5", "r") as handle:
        projections, theta = handle["exchange/data"][:], handle["exchange/theta"][:]
    assert projections.shape[:2] == (len(ANGLES), 12)  # (angles, rows, detector)
    np.testing.assert_allclose(theta, ANGLES)
    with h5py.File(out / "denoised" / "stack_denoised.h5", "r") as handle:
        assert handle["denoised"].shape == handle["fbp"].shape
        assert np.isfinite(handle["denoised"][:]).all()
    scores = (out / "compare" / "scores.csv").read_text()
    assert "network-projections" in scores and (out / "report.html").exists()
