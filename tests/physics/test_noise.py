"""Noise models and target-PSNR solvers: statistics, determinism, purity, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import projection_like
from lowdose.core.errors import LowdoseInputError
from lowdose.physics import noise, noise_levels


def test_poisson_transmission_mean_and_variance_match_the_photon_count():
    photons, t, n = 50.0, 0.3, 200_000
    out = noise.add_poisson_transmission(np.full(n, t), photons, rng=np.random.default_rng(1))
    # counts ~ Poisson(lam): mean lam, variance lam, var of the sample variance (lam + 2 lam^2)/n
    lam = photons * t
    counts = out * photons
    assert np.allclose(counts, np.round(counts))  # integer counts / photons
    assert abs(counts.mean() - lam) < 5 * np.sqrt(lam / n)
    assert abs(counts.var() - lam) < 5 * np.sqrt((lam + 2 * lam**2) / n)
    assert abs(out.var() - t / photons) < 5 * np.sqrt((lam + 2 * lam**2) / n) / photons**2


def test_post_log_floor_replaces_zero_counts_and_mean_follows_the_line_integral():
    rng = np.random.default_rng(2)
    dark = noise.add_poisson_post_log(np.full(1000, 30.0), 10.0, rng=rng, floor=0.5)
    assert np.all(dark == pytest.approx(np.log(10.0 / 0.5)))  # every count was 0
    bright = noise.add_poisson_post_log(np.full(100_000, 1.0), 1e5, rng=rng)
    # delta method: sd of -log(counts/I0) ~ 1/sqrt(I0 e^-1)
    assert abs(bright.mean() - 1.0) < 5 * np.sqrt(np.e / 1e5) / np.sqrt(bright.size) + 1e-4
    sino = noise.add_poisson_sinogram(np.full((4, 5), 1.0), 1e5, rng=np.random.default_rng(3))
    again = noise.add_poisson_post_log(np.full((4, 5), 1.0), 1e5, rng=np.random.default_rng(3))
    assert np.array_equal(sino, again)


@pytest.mark.parametrize(
    ("function", "level"),
    [
        (noise.add_poisson_transmission, 100.0),
        (noise.add_poisson_post_log, 100.0),
        (noise.add_gaussian, 0.1),
    ],
)
def test_seeded_calls_reproduce_exactly_and_seeds_differ(function, level):
    clean = np.random.default_rng(0).uniform(0.1, 1.0, (32, 32)).astype(np.float32)
    first = function(clean, level, rng=np.random.default_rng(7))
    second = function(clean, level, rng=np.random.default_rng(7))
    other = function(clean, level, rng=np.random.default_rng(8))
    assert first.dtype == np.float32 and first.shape == clean.shape
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("model", "level"), [("poisson", 200.0), ("gaussian", 0.05)])
def test_realisations_are_uncorrelated_and_shaped(model, level):
    clean = projection_like(2, 256, 256, rng=np.random.default_rng(4)).astype(np.float32)
    stack = noise.realisations(clean, level, 3, np.random.default_rng(5), model=model)
    assert stack.shape == (2, 3, 256, 256) and stack.dtype == np.float32
    residual = stack - clean[:, None]  # (2, 3, H, W) noise only
    # 131,072 pixels: the standard error of r is 0.0028, so 0.02 is 7 standard errors
    r = np.corrcoef(residual[:, 0].ravel(), residual[:, 1].ravel())[0, 1]
    assert abs(r) < 0.02
    assert noise.realisations(clean[0], level, 4, np.random.default_rng(0), model=model).shape == (
        4,
        256,
        256,
    )


def test_inputs_are_never_modified():
    clean = np.random.default_rng(0).uniform(0.1, 1.0, (2, 16, 16))
    copy = clean.copy()
    rng = np.random.default_rng(1)
    noise.add_poisson_transmission(clean, 10.0, rng=rng)
    noise.add_poisson_post_log(clean, 10.0, rng=rng)
    noise.add_gaussian(clean, 0.1, rng=rng)
    noise.realisations(clean, 10.0, 2, rng, model="poisson")
    noise_levels.solve_photons_for_psnr(clean, 30.0)
    noise_levels.solve_sigma_for_psnr(clean, 30.0, data_range=1.0)
    noise_levels.achieved_psnr_db(clean, clean + 0.01, scaling="per_image_max")
    assert np.array_equal(clean, copy)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: noise.add_poisson_transmission(np.array([-0.1, 0.5]), 10, rng=r), "negative"),
        (lambda r: noise.add_poisson_transmission(np.array([np.nan]), 10, rng=r), "NaN"),
        (lambda r: noise.add_poisson_post_log(np.array([np.inf]), 10, rng=r), "NaN or Inf"),
        (lambda r: noise.add_poisson_transmission(np.ones(3), 0, rng=r), "photons_per_pixel"),
        (lambda r: noise.add_poisson_transmission(np.ones(3), -5, rng=r), "photons_per_pixel"),
        (lambda r: noise.add_poisson_post_log(np.ones(3), 10, rng=r, floor=0), "floor"),
        (lambda r: noise.add_gaussian(np.ones(3), 0.0, rng=r), "sigma"),
        (lambda r: noise.add_gaussian(np.ones(3), float("nan"), rng=r), "sigma"),
        (lambda r: noise.add_gaussian(np.array(["a"]), 0.1, rng=r), "dtype"),
        (lambda r: noise.realisations(np.ones((4, 4)), 0.1, 0, r), "realisations"),
        (lambda r: noise.realisations(np.ones((4, 4)), 0.1, 2, r, model="speckle"), "speckle"),
        (lambda r: noise_levels.solve_photons_for_psnr(np.zeros((1, 4, 4)), 30.0), "all zero"),
        (
            lambda r: noise_levels.solve_sigma_for_psnr(np.ones((4, 4)), 30.0, data_range=0),
            "data_range",
        ),
        (
            lambda r: noise_levels.solve_sigma_for_psnr(np.ones((4, 4)), np.nan, data_range=1),
            "target",
        ),
    ],
)
def test_bad_inputs_raise_a_message_naming_the_problem(call, message):
    with pytest.raises(LowdoseInputError, match=message):
        call(np.random.default_rng(0))


def test_a_noise_level_is_exactly_one_of_five_and_resolves_a_dose_to_photons_per_ray():
    NoiseLevel = noise_levels.NoiseLevel
    level = NoiseLevel(dose_fraction=0.25)
    assert (level.kind, level.value, level.is_dose, level.is_target) == (
        "dose_fraction",
        0.25,
        True,
        False,
    )
    assert (
        repr(level) == "NoiseLevel(dose_fraction=0.25)" and level.describe() == "dose_fraction=0.25"
    )
    # 2 mm bins catch twice the photons of the 1 mm reference; 500 views share the dose of 1000
    assert level.photons_per_ray_at(bin_mm=2.0, views=500) == pytest.approx(0.25 * 4e5)
    assert NoiseLevel(photons_per_ray=1e4).photons_per_ray_at(bin_mm=2.0, views=500) == 1e4
    assert NoiseLevel(target_psnr_db=24).target_psnr_db == 24.0  # a float, whatever was given
    assert NoiseLevel(sigma=0.05) == NoiseLevel(sigma=0.05) != NoiseLevel(photons_per_pixel=0.05)
    bad = [
        ({}, "exactly one of target_psnr_db, photons_per_pixel, photons_per_ray"),
        ({"target_psnr_db": 24.44, "dose_fraction": 0.5}, "got target_psnr_db=24.44, dose_"),
        ({"photons_per_pixel": 0.0}, "photons_per_pixel=0.0 must be finite and > 0"),
        ({"target_psnr_db": float("nan")}, "must be finite"),
    ]
    for values, message in bad:
        with pytest.raises(LowdoseInputError, match=message):
            NoiseLevel(**values)
    with pytest.raises(LowdoseInputError, match="target_psnr_db=30 is not a CT dose"):
        NoiseLevel(target_psnr_db=30.0).photons_per_ray_at(bin_mm=1.0, views=1000)
    with pytest.raises(AttributeError):
        level.dose_fraction = 0.5  # frozen


def test_level_keys_are_stable_non_negative_and_a_thousandth_apart():
    assert [noise_levels.level_key(v) for v in (24.44, 18.66, 0.0, -1.0)] == [48880, 37320, 0, 1999]
    assert (
        noise_levels.level_key(300)
        == noise_levels.level_key(300.0004)
        != noise_levels.level_key(300.001)
    )


def test_photon_solver_hits_the_xray_baseline_within_0_1_db():
    # projection-like transmissions in [0.05, 1], the paper's per-image-max scaling, 29.91 dB
    transmission = projection_like(12, 64, 64, rng=np.random.default_rng(10)).astype(np.float32)
    level = noise_levels.solve_photons_for_psnr(transmission, 29.91)
    assert level.expected_psnr_db == pytest.approx(29.91, abs=1e-6)
    stack = noise.realisations(
        transmission, level.level, 3, np.random.default_rng(11), model="poisson"
    )
    achieved = noise_levels.achieved_psnr_db(transmission, stack, scaling="per_image_max")
    assert abs(achieved - 29.91) < 0.1
    with pytest.raises(AttributeError):
        level.level = 1.0  # frozen


@pytest.mark.parametrize("target_db", [24.44, 18.66])
def test_sigma_solver_hits_the_ct_baselines_within_0_1_db(target_db):
    clean = projection_like(12, 64, 64, rng=np.random.default_rng(12))
    level = noise_levels.solve_sigma_for_psnr(clean, target_db, data_range=1.0)
    stack = noise.realisations(clean, level.level, 3, np.random.default_rng(13))
    assert abs(noise_levels.achieved_psnr_db(clean, stack, data_range=1.0) - target_db) < 0.1


def test_numeric_solver_finds_a_monotone_models_level():
    clean = projection_like(2, 32, 32, rng=np.random.default_rng(14))

    def psnr_at(sigma: float) -> float:
        stack = noise.add_gaussian(clean, sigma, rng=np.random.default_rng(0))
        return noise_levels.achieved_psnr_db(clean, stack)

    found = noise_levels.solve_level_numerically(psnr_at, 24.44, low=1e-3, high=1.0, tol_db=0.01)
    assert abs(found.expected_psnr_db - 24.44) <= 0.01
    assert found.expected_psnr_db == pytest.approx(psnr_at(found.level))
    with pytest.raises(LowdoseInputError, match="bracket"):
        noise_levels.solve_level_numerically(psnr_at, 90.0, low=1e-3, high=1.0)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8)),
    photons=st.floats(0.5, 1e4),
    seed=st.integers(0, 2**32 - 1),
)
def test_poisson_output_is_non_negative_on_the_count_grid(shape, photons, seed):
    clean = np.random.default_rng(seed).uniform(0, 1, shape)
    out = noise.add_poisson_transmission(clean, photons, rng=np.random.default_rng(seed))
    assert out.shape == shape and np.all(out >= 0)
    assert np.allclose(out * photons, np.round(out * photons), atol=1e-6 * photons)


@settings(max_examples=25, deadline=None)
@given(
    target=st.floats(5.0, 60.0),
    data_range=st.floats(0.1, 1000.0),
    side=st.integers(8, 64),
)
def test_sigma_solver_is_the_closed_form(target, data_range, side):
    level = noise_levels.solve_sigma_for_psnr(np.zeros((side, side)), target, data_range=data_range)
    naive_db = 20 * np.log10(data_range / level.level)
    # only the Jensen term 10/ln(10)/P separates it from the naive formula
    assert naive_db == pytest.approx(target - 10 / np.log(10) / side**2, abs=1e-9)


def test_electronic_noise_is_added_to_the_counts_before_the_log():
    p = np.full((50, 400), 1.5, np.float32)
    before = p.copy()
    plain = noise.add_poisson_sinogram(p, 2000.0, rng=np.random.default_rng(4))
    zero = noise.add_poisson_sinogram(
        p, 2000.0, rng=np.random.default_rng(4), electronic_noise_counts=0.0
    )
    assert np.array_equal(plain, zero)  # sigma 0: the Poisson-only stream, bit for bit
    noisy = noise.add_poisson_sinogram(
        p, 2000.0, rng=np.random.default_rng(4), electronic_noise_counts=30.0
    )
    assert np.array_equal(p, before) and noisy.dtype == np.float32 and np.all(np.isfinite(noisy))
    # the same Poisson draws come first, the Gaussian ones after: readings differ by e only
    counts = 2000.0 * np.exp(-plain.astype(np.float64))
    readings = 2000.0 * np.exp(-noisy.astype(np.float64))
    assert np.std(readings - counts) == pytest.approx(30.0, rel=0.03)
    assert abs(np.mean(readings - counts)) < 5 * 30.0 / np.sqrt(p.size)
    # readings below the floor (negative ones included) are floored like a zero count
    dark = noise.add_poisson_sinogram(
        np.full(1000, 8.0), 2000.0, rng=np.random.default_rng(5), electronic_noise_counts=30.0
    )
    floored = np.isclose(dark, np.log(2000.0 / noise.ZERO_COUNT_FLOOR))
    assert 0.3 < floored.mean() < 0.7 and dark.max() <= np.log(2000.0 / noise.ZERO_COUNT_FLOOR)
    with pytest.raises(LowdoseInputError, match="electronic_noise_counts"):
        noise.add_poisson_sinogram(
            p, 200.0, rng=np.random.default_rng(4), electronic_noise_counts=-1.0
        )
