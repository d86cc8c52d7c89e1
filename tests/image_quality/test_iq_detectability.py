"""d' against closed forms: the matched filter of a known disc in white noise, and the CHO of a
signal its first channel spans."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.image_quality.cho import ChoResult, cho_dprime, laguerre_gauss_channels
from lowdose.image_quality.detectability import (
    disc_task,
    dprime_npw,
    dprime_npwe,
    eye_filter,
    ttf_2d,
)
from lowdose.image_quality.nps import Nps2D
from lowdose.image_quality.ttf import Ttf

PIXEL_MM = 0.5
SIGMA_HU = 10.0
N = 64


def white_nps(sigma_hu: float = SIGMA_HU, n: int = N) -> Nps2D:
    """The NPS of white noise of sd ``sigma_hu`` on 0.5 mm pixels: flat at sigma^2 dx dy."""
    f = np.fft.fftshift(np.fft.fftfreq(n, PIXEL_MM))
    return Nps2D(values=np.full((n, n), sigma_hu**2 * PIXEL_MM**2), fx=f, fy=f, n_rois=1)


def pixel_disc(diameter_mm: float, contrast_hu: float, n: int) -> np.ndarray:
    """(n, n) HU: contrast inside the disc (pixel centres), centred on pixel (n // 2, n // 2)."""
    axis_mm = (np.arange(n) - n // 2) * PIXEL_MM
    return contrast_hu * (axis_mm[:, None] ** 2 + axis_mm[None, :] ** 2 <= (diameter_mm / 2) ** 2)


def gaussian_ttf(blur_mm: float) -> Ttf:
    f = np.linspace(0, 2 / PIXEL_MM, 400)
    curve = np.exp(-2 * np.pi**2 * blur_mm**2 * f**2)
    return Ttf(f, curve, f, f, f, float("nan"), float("nan"), 1.0)


def test_disc_task_is_the_jinc_of_the_disc():
    f = np.linspace(0, 2, 2001)
    w = disc_task(10.0, 5.0, f, np.array([0.0]))[0]
    assert w[0] == pytest.approx(5.0 * np.pi * 25.0)
    first_zero = f[np.argmax(w < 0)]  # 2 pi r f = 3.8317, the first zero of J1
    assert first_zero == pytest.approx(3.8317 / (2 * np.pi * 5.0), abs=1e-3)
    grid = disc_task(10.0, 5.0, np.linspace(-1, 1, 9), np.linspace(-1, 1, 9))
    assert np.allclose(grid, grid[::-1]) and np.allclose(grid, grid.T)  # even, isotropic


def test_npw_of_the_pixelated_disc_is_exactly_the_matched_filter_snr():
    # W = dx dy DFT(s): Parseval gives sum |W|^2 df = dx dy sum s^2, so with white noise
    # (NPS = sigma^2 dx dy) and TTF = 1, d'^2 = sum s^2 / sigma^2 exactly.
    signal = pixel_disc(5.0, 3.0, N)
    task = np.fft.fftshift(np.abs(np.fft.fft2(signal))) * PIXEL_MM**2
    expected = math.sqrt((signal**2).sum()) / SIGMA_HU
    assert dprime_npw(task, 1.0, white_nps()) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("diameter_mm", "tolerance"), [(10.0, 0.02), (5.0, 0.03)])
def test_npw_of_the_analytic_disc_matches_the_closed_form(diameter_mm, tolerance):
    # Continuous Parseval: d'^2 = C^2 pi r^2 / (sigma^2 dx dy); the grid keeps the jinc's energy
    # below the Nyquist frequency only (99 % for 10 mm, 96 % for 5 mm at 0.5 mm pixels).
    nps = white_nps()
    contrast_hu = 4.0
    task = disc_task(diameter_mm, contrast_hu, nps.fx, nps.fy)
    area_mm2 = np.pi * (diameter_mm / 2) ** 2
    expected = math.sqrt(contrast_hu**2 * area_mm2 / (SIGMA_HU**2 * PIXEL_MM**2))
    d = dprime_npw(task, 1.0, nps)
    assert d == pytest.approx(expected, rel=tolerance) and d <= expected
    assert dprime_npw(-2 * task, 1.0, white_nps(2 * SIGMA_HU)) == pytest.approx(d)  # scaling


def test_npw_matches_an_empirical_matched_filter_on_simulated_samples():
    rng = np.random.default_rng(21)
    signal = pixel_disc(5.0, 3.0, 32)
    n_samples = 2000
    absent = rng.normal(0.0, SIGMA_HU, (n_samples, 32, 32))
    present = signal + rng.normal(0.0, SIGMA_HU, (n_samples, 32, 32))
    t1, t0 = (present * signal).sum(axis=(1, 2)), (absent * signal).sum(axis=(1, 2))
    empirical = (t1.mean() - t0.mean()) / math.sqrt((t1.var(ddof=1) + t0.var(ddof=1)) / 2)
    task = np.fft.fftshift(np.abs(np.fft.fft2(signal))) * PIXEL_MM**2
    assert dprime_npw(task, 1.0, white_nps(n=32)) == pytest.approx(empirical, rel=0.08)


def test_blur_lowers_npw_by_the_ttf_weighted_signal_energy():
    nps = white_nps()
    task = disc_task(5.0, 4.0, nps.fx, nps.fy)
    ttf = ttf_2d(gaussian_ttf(0.8), nps.fx, nps.fy)
    dfy, dfx = nps.df_per_mm
    expected = math.sqrt((task**2 * ttf**2).sum() * dfx * dfy / (SIGMA_HU**2 * PIXEL_MM**2))
    assert dprime_npw(task, ttf, nps) == pytest.approx(expected, rel=1e-10)
    assert expected < dprime_npw(task, 1.0, nps)


def test_ttf_2d_is_one_at_zero_follows_the_curve_and_is_zero_beyond_it():
    ttf = gaussian_ttf(0.8)
    fx = np.array([0.0, 0.3, 5.0])
    grid = ttf_2d(ttf, fx, np.array([0.0]))
    assert grid[0, 0] == 1 and grid[0, 2] == 0
    assert grid[0, 1] == pytest.approx(np.exp(-2 * np.pi**2 * 0.64 * 0.09), rel=1e-3)


def test_eye_filter_peaks_at_four_cycles_per_degree_on_the_retina():
    f = np.linspace(0, 2, 20001)
    eye = eye_filter(f, pixel_mm=PIXEL_MM)  # 0.2 mm display pixels seen from 500 mm
    cycles_per_degree_per_cycle_per_mm = PIXEL_MM / 0.2 * 500.0 * np.pi / 180
    peak = 4.0 / cycles_per_degree_per_cycle_per_mm
    assert f[np.argmax(eye)] == pytest.approx(peak, abs=1e-3)
    assert eye[0] == 0 and eye.max() == pytest.approx(1.0, abs=1e-6)
    # Zoomed twice, the image's frequencies reach the retina halved: the peak moves up twice.
    zoomed = eye_filter(f, pixel_mm=PIXEL_MM, zoom=2.0)
    assert f[np.argmax(zoomed)] == pytest.approx(2 * peak, abs=1e-3)


def test_npwe_reduces_to_npw_without_an_eye_and_is_at_most_npw_in_white_noise():
    nps = white_nps()
    task = disc_task(5.0, 4.0, nps.fx, nps.fy)
    ttf = ttf_2d(gaussian_ttf(0.6), nps.fx, nps.fy)
    npw = dprime_npw(task, ttf, nps)
    assert dprime_npwe(task, ttf, nps, 3.0) == pytest.approx(npw)  # a constant eye is no eye
    eye = eye_filter(np.hypot(nps.fx[None, :], nps.fy[:, None]), pixel_mm=PIXEL_MM)
    npwe = dprime_npwe(task, ttf, nps, eye)
    assert 0 < npwe <= npw  # Cauchy-Schwarz: in white noise no filter beats the matched filter
    assert dprime_npwe(task, ttf, nps, 5 * eye) == pytest.approx(npwe)  # the eye's scale cancels
    assert dprime_npwe(task, ttf, nps, eye, internal_noise=1.0) < npwe


def test_cho_reaches_the_ideal_observer_for_a_signal_in_its_first_channel():
    rng = np.random.default_rng(22)
    width_px, n = 8.0, 32
    axis = np.arange(n) - (n - 1) / 2
    signal = 4.0 * np.exp(-np.pi * (axis[:, None] ** 2 + axis[None, :] ** 2) / width_px**2)
    channels = laguerre_gauss_channels(n, 5, width_px)
    absent = rng.normal(0.0, SIGMA_HU, (1500, n, n))
    present = signal + rng.normal(0.0, SIGMA_HU, (1500, n, n))
    result = cho_dprime(present, absent, channels)
    ideal = math.sqrt((signal**2).sum()) / SIGMA_HU
    assert isinstance(result, ChoResult)
    assert result.dprime == pytest.approx(ideal, rel=0.07)
    assert result.auc == pytest.approx(0.5 * (1 + math.erf(result.dprime / 2)))  # Phi(d'/sqrt 2)
    null = cho_dprime(rng.normal(0.0, SIGMA_HU, (1500, n, n)), absent, channels)
    assert null.dprime < 0.25 and abs(null.auc - 0.5) < 0.07


def test_inputs_are_not_modified():
    nps = white_nps()
    task = disc_task(5.0, 4.0, nps.fx, nps.fy)
    copies = (nps.values.copy(), task.copy())
    dprime_npwe(task, 1.0, nps, 1.0, internal_noise=0.5)
    assert np.array_equal(nps.values, copies[0]) and np.array_equal(task, copies[1])


@pytest.mark.parametrize(
    "call",
    [
        lambda nps: dprime_npw(np.ones((3, 3)), 1.0, nps),  # task off the NPS grid
        lambda nps: dprime_npwe(np.ones((N, N)), 1.0, nps, 1.0, internal_noise=-1.0),
        lambda nps: disc_task(-5.0, 4.0, nps.fx, nps.fy),
        lambda nps: eye_filter(nps.fx, pixel_mm=0.0),
        lambda nps: cho_dprime(np.ones((5, 8, 8)), np.ones((5, 8, 9)), np.ones((2, 8, 8))),
        lambda nps: laguerre_gauss_channels(32, 0, 8.0),
    ],
)
def test_bad_input_raises_one_line_errors(call):
    with pytest.raises(LowdoseInputError) as error:
        call(white_nps())
    assert "\n" not in str(error.value)
