"""The NPS against analytic truths: white noise is flat at sigma^2 dx dy, filtered noise follows
sigma^2 |H(f)|^2, and the integral of the 2-D NPS is the variance (ICRU 87)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lowdose.core.errors import LowdoseInputError
from lowdose.image_quality.nps import (
    noise_rois,
    nps_2d,
    nps_summary,
    nps_variance,
    radial_nps,
)

PIXEL_MM = 0.5
SIGMA_HU = 20.0


@pytest.fixture(scope="module")
def filtered_rois() -> tuple[np.ndarray, float]:
    """(384, 64, 64) ROIs of white noise (sigma 20 HU) filtered by a Gaussian of sd 0.75 px."""
    rng = np.random.default_rng(14)
    s_px = 0.75
    fields = rng.normal(0.0, SIGMA_HU, (24, 256, 256))
    # mode="wrap": a periodic field has no border, so its spectrum is exactly white x |H|^2
    filtered = np.stack([ndimage.gaussian_filter(f, s_px, mode="wrap") for f in fields])
    rois = filtered.reshape(24, 4, 64, 4, 64).transpose(0, 1, 3, 2, 4).reshape(-1, 64, 64)
    return rois, s_px * PIXEL_MM


def test_white_noise_has_a_flat_nps_at_sigma_squared_dx_dy():
    rng = np.random.default_rng(0)
    nps = nps_2d(rng.normal(0.0, SIGMA_HU, (64, 32, 32)), (0.4, 0.6), detrend="mean")
    level = SIGMA_HU**2 * 0.4 * 0.6
    assert nps.values.mean() == pytest.approx(level, rel=0.02)
    f, nps_r = radial_nps(nps)
    assert np.all(np.abs(nps_r / level - 1) < 0.12)  # flat: every annulus at the same level
    nyquist, bin_width = 1 / (2 * 0.6), 1 / (32 * 0.4)  # the coarser axis's, per mm
    assert f.min() > bin_width / 2 and f.max() <= nyquist + bin_width / 2  # no DC, no corners
    assert nps.fx[nps.fx.size // 2] == 0 and nps.fy[nps.fy.size // 2] == 0  # fftshifted


@pytest.mark.parametrize("detrend", ["mean", "plane"])
def test_integral_of_the_nps_is_the_mean_variance_of_the_detrended_rois(detrend):
    rng = np.random.default_rng(1)
    rois = rng.normal(0.0, 5.0, (7, 24, 20)) + np.linspace(0, 30, 20)  # noise on a ramp
    if detrend == "mean":
        residual = rois - rois.mean(axis=(1, 2), keepdims=True)
    else:  # the plane by an independent least-squares fit per ROI
        rows, cols = np.mgrid[0:24, 0:20]
        design = np.column_stack([np.ones(480), rows.ravel(), cols.ravel()])
        residual = np.stack(
            [r - (design @ np.linalg.lstsq(design, r.ravel())[0]).reshape(24, 20) for r in rois]
        )
    expected = (residual**2).mean()
    assert nps_variance(nps_2d(rois, 0.7, detrend=detrend)) == pytest.approx(expected, rel=1e-10)


def test_plane_detrending_removes_a_ramp_exactly():
    rng = np.random.default_rng(2)
    noise = rng.normal(0.0, 5.0, (10, 32, 32))
    ramp = 3.0 * np.arange(32)[None, :] - 2.0 * np.arange(32)[:, None]  # HU per pixel
    clean = nps_2d(noise, PIXEL_MM).values
    assert np.allclose(nps_2d(noise + ramp, PIXEL_MM).values, clean)
    # Removing only the mean leaves the ramp's power at the lowest frequencies.
    assert nps_2d(noise + ramp, PIXEL_MM, detrend="mean").values.max() > 10 * clean.max()


def test_gaussian_filtered_noise_follows_sigma2_h2(filtered_rois):
    rois, s_mm = filtered_rois
    f, nps_r = radial_nps(nps_2d(rois, PIXEL_MM, detrend="mean"))
    h2 = np.exp(-4 * np.pi**2 * s_mm**2 * f**2)  # |H(f)|^2 of a Gaussian of sd s
    ratio = nps_r / (SIGMA_HU**2 * PIXEL_MM**2 * h2)
    low, mid = (f < 0.2), (f >= 0.2) & (h2 > 0.2)
    # 64-px ROIs smooth the spectrum (leakage through the ROI's edges), which lowers this peaked
    # NPS by ~2 % at low frequencies and raises its tail; sampling adds ~1 % (20 seeds: worst
    # band 3.5 %, worst bin 6 %).
    assert abs(ratio[low].mean() - 1) < 0.05 and abs(ratio[mid].mean() - 1) < 0.05
    assert np.all(np.abs(ratio[low | mid] - 1) < 0.1)


def test_nps_summary_of_filtered_noise(filtered_rois):
    rois, s_mm = filtered_rois
    nps = nps_2d(rois, PIXEL_MM, detrend="mean")
    f, nps_r = radial_nps(nps)
    summary = nps_summary(f, nps_r)
    h2 = np.exp(-4 * np.pi**2 * s_mm**2 * f**2)
    # Leakage raises the tail a little: +2.4 % on average over seeds.
    assert summary.mean_frequency == pytest.approx((f * h2).sum() / h2.sum(), rel=0.04)
    assert summary.peak_frequency == f[0]  # a low-pass NPS peaks at its lowest bin
    # Nearly all of this noise lies inside the Nyquist disc: the radial integral is the variance.
    assert summary.variance == pytest.approx(nps_variance(nps), rel=0.03)
    assert nps_variance(nps) == pytest.approx(rois.var(axis=(1, 2)).mean(), rel=1e-10)


def test_nps_summary_finds_the_peak_of_a_band_pass_curve():
    f = np.linspace(0.01, 1.0, 100)
    summary = nps_summary(f, f * np.exp(-(f**2) / (2 * 0.3**2)))
    assert summary.peak_frequency == pytest.approx(0.3, abs=0.01)
    assert summary.mean_frequency > summary.peak_frequency  # the long tail pulls it up


def test_radial_bins_follow_the_bin_width():
    rng = np.random.default_rng(3)
    nps = nps_2d(rng.normal(0.0, 1.0, (4, 32, 32)), PIXEL_MM)
    f1, _ = radial_nps(nps)
    f2, _ = radial_nps(nps, bin_width=2 / (32 * PIXEL_MM))
    f3, _ = radial_nps(nps, max_frequency=0.5)
    assert len(f1) == 16 and len(f2) == 8 and f3.max() < 0.5 + 1 / 64


def test_noise_rois_cancel_the_object_and_keep_the_variance_of_one_realisation():
    rng = np.random.default_rng(4)
    rows, cols = np.mgrid[0:96, 0:96]
    obj = 1000.0 * ((rows - 48) ** 2 + (cols - 40) ** 2 < 30**2) + 0.3 * cols  # edge, ramp
    noise = rng.normal(0.0, SIGMA_HU, (2, 96, 96))
    centres = [(32, 32), (60, 64)]
    with_object = noise_rois(obj + noise, centres, 32)
    assert with_object.shape == (4, 32, 32)
    assert np.allclose(with_object, noise_rois(noise, centres, 32))
    # N = 2: the difference from the mean is scaled back to one realisation's variance.
    big = noise_rois(rng.normal(0.0, SIGMA_HU, (2, 256, 256)), [(128, 128)], 256)
    assert big.var() == pytest.approx(SIGMA_HU**2, rel=0.03)
    # Realisation-major order: ROI n * K + k is realisation n at centre k.
    expected = (noise[1] - noise.mean(axis=0))[60 - 16 : 60 + 16, 64 - 16 : 64 + 16] * np.sqrt(2)
    assert np.allclose(with_object[3], expected)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(5)
    stack = rng.normal(0.0, 1.0, (3, 40, 40)).astype(np.float32)
    before = stack.copy()
    rois = noise_rois(stack, [(20, 20)], 16)
    rois_before = rois.copy()
    radial_nps(nps_2d(rois, PIXEL_MM))
    assert np.array_equal(stack, before) and np.array_equal(rois, rois_before)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: noise_rois(s[0], [(20, 20)], 16),  # not a stack
        lambda s: noise_rois(s[:1], [(20, 20)], 16),  # N = 1
        lambda s: noise_rois(s, [(5, 20)], 16),  # ROI outside the image
        lambda s: noise_rois(s, [(20, 20)], 2),  # ROI too small
        lambda s: nps_2d(s[:, :, :, None], PIXEL_MM),  # 4-D
        lambda s: nps_2d(s, -1.0),  # bad pixel size
        lambda s: nps_2d(s, PIXEL_MM, detrend="quadratic"),
        lambda s: nps_summary([0.1], [1.0]),
    ],
)
def test_bad_input_raises_one_line_errors(call):
    stack = np.random.default_rng(6).normal(0.0, 1.0, (3, 40, 40))
    with pytest.raises(LowdoseInputError) as error:
        call(stack)
    assert "\n" not in str(error.value)
