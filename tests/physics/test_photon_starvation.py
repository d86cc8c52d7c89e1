"""The exact post-log estimator: its bias and variance against Monte Carlo and the large-count
expansion, electronic noise, and the per-bin lookup on whole sinograms."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import lowdose.physics.photon_starvation as starvation_module
from lowdose.core.errors import LowdoseInputError
from lowdose.physics.noise import add_poisson_sinogram
from lowdose.physics.photon_starvation import (
    post_log_bias,
    post_log_moments,
    post_log_table,
    post_log_variance,
)

I0 = 1000.0
DRAWS = 1_000_000


def _monte_carlo(mean_counts: float, sigma: float, seed: int) -> np.ndarray:
    """1e6 post-log readings of one bin at ``mean_counts``, drawn by the dataset noise function."""
    p = np.full(DRAWS, np.log(I0 / mean_counts))
    rng = np.random.default_rng(seed)
    return add_poisson_sinogram(p, I0, rng=rng, electronic_noise_counts=sigma), float(p[0])


@pytest.mark.parametrize("sigma", [0.0, 10.0])
@pytest.mark.parametrize("mean_counts", [0.5, 2.0, 5.0, 20.0, 50.0])
def test_exact_bias_and_variance_match_monte_carlo_also_when_starved(mean_counts, sigma):
    p_hat, p = _monte_carlo(mean_counts, sigma, seed=int(mean_counts * 10 + sigma))
    table = post_log_table(sigma)
    bias = float(table.bias_at(np.array([mean_counts]))[0])
    variance = float(table.variance_at(np.array([mean_counts]))[0])
    centred = p_hat - p_hat.mean()
    se_mean = p_hat.std() / np.sqrt(DRAWS)
    se_var = np.sqrt((np.mean(centred**4) - p_hat.var() ** 2) / DRAWS)
    assert abs(bias - (p_hat.mean() - p)) < 4.5 * se_mean
    assert abs(variance - p_hat.var()) < 4.5 * se_var
    exact = post_log_moments(mean_counts, electronic_noise_counts=sigma)  # pmf, no interpolation
    assert exact == pytest.approx((bias, variance), rel=2e-3, abs=1e-5)


@pytest.mark.parametrize("mean_counts", [1e3, 1e4, 1e5, 1e7])
def test_large_counts_follow_the_expansion_p_plus_one_over_two_lambda(mean_counts):
    bias = post_log_bias(np.array([np.log(1e8 / mean_counts)]), 1e8)[0]
    variance = post_log_variance(np.array([np.log(1e8 / mean_counts)]), 1e8)[0]
    assert bias * 2 * mean_counts == pytest.approx(1.0, rel=2e-3)
    assert variance * mean_counts == pytest.approx(1.0, rel=2e-3)


@pytest.mark.parametrize("sigma", [0.0, 10.0])
def test_table_joins_the_expansion_without_a_step(sigma):
    table = post_log_table(sigma)
    edge = table.asymptotic_from
    below, above = table.bias_at(np.array([edge * (1 - 1e-9), edge * (1 + 1e-9)]))
    assert above == pytest.approx(below, rel=1e-5)
    exact = post_log_moments(edge * 0.7, electronic_noise_counts=sigma)
    assert table.bias_at(np.array([edge * 0.7]))[0] == pytest.approx(exact[0], rel=1e-3)


@pytest.mark.parametrize(("mean_counts", "sigma"), [(3.0, 10.0), (90.0, 10.0), (60.0, 100.0)])
def test_electronic_noise_quadrature_matches_a_dense_sum_spelt_out(mean_counts, sigma):
    from scipy.special import gammaln

    k = np.arange(0, int(mean_counts + 14 * np.sqrt(mean_counts) + 14), dtype=np.float64)
    pmf = np.exp(k * np.log(mean_counts) - mean_counts - gammaln(k + 1))
    t = np.linspace(-9.0, 9.0, 36001)
    weights = np.exp(-t * t / 2) / np.exp(-t * t / 2).sum()  # N(0, 1) on a fine grid
    logs = np.log(np.maximum(k[:, None] + sigma * t, 0.5))  # (K, T)
    mean_log, mean_log_sq = pmf @ (logs @ weights), pmf @ ((logs**2) @ weights)
    bias, variance = post_log_moments(mean_counts, electronic_noise_counts=sigma)
    assert bias == pytest.approx(np.log(mean_counts) - mean_log, rel=1e-5, abs=2e-6)
    assert variance == pytest.approx(mean_log_sq - mean_log**2, rel=1e-5, abs=2e-6)


def test_electronic_noise_raises_the_variance_by_sigma_squared_over_lambda_squared():
    mean_counts, sigma = 400.0, 10.0
    quiet = post_log_moments(mean_counts)[1]
    noisy = post_log_moments(mean_counts, electronic_noise_counts=sigma)[1]
    assert noisy - quiet == pytest.approx(sigma**2 / mean_counts**2, rel=0.03)
    p_hat, _ = _monte_carlo(mean_counts, sigma, seed=7)  # and the noise function draws it
    assert p_hat.var() == pytest.approx(noisy, rel=0.01)


def test_bias_depends_on_the_mean_count_only_and_the_floor_caps_starved_bins():
    p = np.array([[0.0, 2.0, 5.0], [9.0, 15.0, 40.0]])
    bias = post_log_bias(p, 100.0)
    assert bias.shape == p.shape and bias.dtype == np.float64
    # the same mean counts at another I0: the same bias
    assert np.allclose(post_log_bias(p + np.log(10.0), 1000.0), bias, rtol=1e-9)
    # nothing arrives through 40: p_hat is log(I0 / floor), so the bias is that minus p
    assert bias[1, 2] == pytest.approx(np.log(100.0 / 0.5) - 40.0)
    assert bias[0, 0] > 0 > bias[1, 1]  # the log overshoots at few counts, the floor caps at none


def test_lookup_is_pure_and_rejects_bad_input():
    p = np.full((3, 4), 2.0, np.float32)
    before = p.copy()
    post_log_bias(p, 50.0)
    assert np.array_equal(p, before)
    with pytest.raises(LowdoseInputError, match="i0_photons"):
        post_log_bias(p, 0.0)
    with pytest.raises(LowdoseInputError, match="electronic_noise_counts"):
        post_log_moments(5.0, electronic_noise_counts=-1.0)


def test_docstring_examples_hold():
    assert doctest.testmod(starvation_module, raise_on_error=False).failed == 0
