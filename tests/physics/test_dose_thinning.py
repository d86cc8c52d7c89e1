"""Binomial thinning and added Gaussian noise: independent data at a lower dose, no clean image.

Statistical checks use tolerances of 5 standard errors of the sample statistic, so they fail for
a wrong model (a variance off by a factor p) and essentially never by chance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.dose_thinning import (
    DoseRenoiser,
    add_gaussian_to_reach,
    dose_renoiser,
    sigma_at_dose,
    thin_counts,
    thin_stored_transmission,
)


def _poisson_variance_se(lam: float, n: int) -> float:
    # Var of the sample variance of Poisson(lam): (mu4 - sigma^4) / n, mu4 = lam (1 + 3 lam).
    return math.sqrt((lam * (1 + 3 * lam) - lam**2) / n)


@pytest.mark.parametrize(("lam", "p"), [(50.0, 0.3), (5.0, 0.1), (2000.0, 0.5)])
def test_thinned_poisson_counts_are_poisson_at_p_times_the_dose(lam, p):
    n = 200_000
    counts = np.random.default_rng(1).poisson(lam, n)
    kept = thin_counts(counts, p, rng=np.random.default_rng(2))
    target = p * lam
    assert kept.dtype == np.int64 and kept.min() >= 0 and np.all(kept <= counts)
    assert abs(kept.mean() - target) < 5 * math.sqrt(target / n)
    assert abs(kept.var(ddof=1) - target) < 5 * _poisson_variance_se(target, n)
    # Poisson, not just its first two moments: P(0) = exp(-p lam)
    zero = math.exp(-target)
    assert abs(np.mean(kept == 0) - zero) < 5 * math.sqrt(zero * (1 - zero) / n) + 1e-12


def test_thinning_the_stored_xray_scale_keeps_the_mean_and_divides_the_dose():
    photons, p, scale = 500.0, 0.25, np.array([0.8, 1.0, 1.2, 0.9])[:, None, None]
    transmission = np.full((4, 256, 256), 0.6)
    rng = np.random.default_rng(3)
    stored = (rng.poisson(photons * transmission) / photons / scale).astype(np.float32)
    thinned, new_photons = thin_stored_transmission(
        stored, p, photons_per_pixel=photons, scale=scale, rng=np.random.default_rng(4)
    )
    assert new_photons == pytest.approx(p * photons) and thinned.dtype == np.float32
    n = transmission[0].size
    for image in range(4):
        mean_now, var_now = 0.6 / scale[image, 0, 0], 0.6 / photons / scale[image, 0, 0] ** 2
        values = thinned[image].astype(np.float64)
        assert abs(values.mean() - mean_now) < 5 * math.sqrt(var_now / p / n)
        # variance of the thinned image = 1/p of the acquired one (within 5 standard errors)
        assert values.var() / (var_now / p) == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    # the thinned image is again on the count grid of the new dose
    counts = thinned.astype(np.float64) * scale * new_photons
    assert np.allclose(counts, np.rint(counts), atol=1e-3)


def test_full_dose_thinning_returns_the_stored_values():
    stored = (np.random.default_rng(0).poisson(300, (8, 8)) / 300 / 0.9).astype(np.float32)
    same, photons = thin_stored_transmission(
        stored, 1.0, photons_per_pixel=300, scale=0.9, rng=np.random.default_rng(0)
    )
    assert photons == 300 and np.allclose(same, stored, rtol=1e-6)


def test_added_gaussian_reaches_the_target_sigma_independently_of_the_noise_present():
    rng = np.random.default_rng(5)
    clean = np.linspace(0, 1, 512 * 512).reshape(512, 512)
    noise = rng.normal(0, 0.05, clean.shape)
    noisier = add_gaussian_to_reach(clean + noise, 0.05, 0.2, rng=np.random.default_rng(6))
    residual = noisier - clean
    n = clean.size
    assert residual.std() == pytest.approx(0.2, rel=5 / math.sqrt(2 * n))
    added = noisier - clean - noise  # the new noise carries no trace of the old
    assert abs(np.corrcoef(added.ravel(), noise.ravel())[0, 1]) < 5 / math.sqrt(n)
    assert sigma_at_dose(0.05, 0.0625) == pytest.approx(0.2)


def test_inputs_are_not_modified_and_a_seed_repeats_its_output():
    stored = (np.random.default_rng(0).poisson(200, (16, 16)) / 200).astype(np.float32)
    counts = np.random.default_rng(0).poisson(40, 100)
    before_stored, before_counts = stored.copy(), counts.copy()
    calls = {
        "counts": lambda rng: thin_counts(counts, 0.5, rng=rng),
        "stored": lambda rng: thin_stored_transmission(
            stored, 0.5, photons_per_pixel=200, scale=1.0, rng=rng
        )[0],
        "gaussian": lambda rng: add_gaussian_to_reach(stored, 0.01, 0.03, rng=rng),
        "renoiser": lambda rng: DoseRenoiser("gaussian", 0.01).at_dose(stored, 0.5, rng=rng),
    }
    for name, call in calls.items():
        first, again = call(np.random.default_rng(7)), call(np.random.default_rng(7))
        other = call(np.random.default_rng(8))
        assert np.array_equal(first, again), name
        assert not np.array_equal(first, other), name
    assert np.array_equal(stored, before_stored) and np.array_equal(counts, before_counts)


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, math.nan])
def test_dose_fractions_outside_zero_to_one_are_refused(fraction):
    with pytest.raises(LowdoseInputError, match="fraction"):
        thin_counts([1, 2], fraction, rng=np.random.default_rng(0))


def test_noise_cannot_be_removed():
    with pytest.raises(LowdoseInputError, match="cannot be removed"):
        add_gaussian_to_reach(np.zeros(4), 0.2, 0.1, rng=np.random.default_rng(0))


def test_the_dataset_attributes_choose_the_renoiser_or_one_error_line():
    assert dose_renoiser("poisson", 400.0, where="x.h5") == DoseRenoiser("poisson", 400.0, "x.h5")
    assert dose_renoiser("gaussian", 0.06, where="x.h5").noise_model == "gaussian"
    for model, level, fragment in [
        ("sinogram", 700.0, "sinogram-noise CT"),
        ("measured", math.nan, "noise_model is 'measured'"),
        ("poisson", math.nan, "noise_level"),
    ]:
        with pytest.raises(LowdoseInputError, match=fragment) as caught:
            dose_renoiser(model, level, where="data/ct.h5")
        assert "\n" not in str(caught.value) and str(caught.value).startswith("data/ct.h5: ")


def test_values_off_the_count_grid_are_one_error_line_naming_the_file():
    # Stored at 500 photons per pixel, but the file says 400: 0.8 x whole counts, not whole.
    stored = (np.random.default_rng(0).poisson(500 * 0.6, (32, 32)) / 500 / 0.9).astype(np.float32)
    renoiser = dose_renoiser("poisson", 400.0, where="data/x.h5")
    with pytest.raises(LowdoseInputError, match="noise_level .* or scale does not match") as error:
        renoiser.at_dose(stored, 0.5, scale=0.9, rng=np.random.default_rng(1))
    assert str(error.value).startswith("data/x.h5: ") and "\n" not in str(error.value)
    with pytest.raises(LowdoseInputError, match="not whole photon counts"):  # a wrong scale
        renoiser.at_dose(stored, 0.5, scale=1.0, rng=np.random.default_rng(1))
    # the matching level and scale thin, and the result is on the new dose's count grid
    thinned = dose_renoiser("poisson", 500.0, where="data/x.h5").at_dose(
        stored, 0.5, scale=0.9, rng=np.random.default_rng(1)
    )
    counts = thinned.astype(np.float64) * 0.9 * 250
    assert np.allclose(counts, np.rint(counts), atol=1e-3)


def test_float32_round_off_of_high_counts_is_not_off_the_grid():
    photons = 200_000.0  # float32 keeps ~7 digits: a count of 2e5 is off by up to ~0.01
    counts = np.random.default_rng(2).poisson(photons, (64, 64))
    stored = (counts / photons / 0.7).astype(np.float32)
    assert np.abs(stored * 0.7 * photons - counts).max() > 1e-3  # the round-off is real
    thinned, _ = thin_stored_transmission(
        stored, 0.5, photons_per_pixel=photons, scale=0.7, rng=np.random.default_rng(3)
    )
    assert thinned.shape == stored.shape


def test_thinning_needs_the_stored_scale():
    with pytest.raises(LowdoseInputError, match="x.h5: thinning needs each image's stored scale"):
        DoseRenoiser("poisson", 300.0, "x.h5").at_dose(
            np.ones((4, 4), np.float32), 0.5, rng=np.random.default_rng(0)
        )
