"""Tuning: the oracle finds the best setting per image; blind tuning one from training data."""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest

from lowdose.baselines.filters import FILTERS, apply_filter
from lowdose.baselines.plans import GRIDS, search_plan
from lowdose.baselines.search import search
from lowdose.baselines.tuning import tune_blind, tune_blind_pairs, tune_oracle
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels, psnr, unbiased_mse
from test_filters import phantom  # tests/ is on sys.path under pytest


def _stack(n_images: int, *, noise_sigma: float, seed: int, size: int = 40):
    rng = np.random.default_rng(seed)
    clean = np.stack([phantom(size, rng=rng) for _ in range(n_images)])
    noisy = clean + rng.normal(0, noise_sigma, clean.shape)
    second = clean + rng.normal(0, noise_sigma, clean.shape)
    return (a.astype(np.float32) for a in (noisy, second, clean))


def test_golden_refinement_finds_continuous_optimum():
    def objective(params):
        return -((math.log(params["sigma"]) - math.log(1.7)) ** 2)

    best, value, evaluated = search(
        objective, {"sigma": (0.5, 1.0, 2.0, 4.0)}, ("sigma",), refine_steps=10
    )
    assert best["sigma"] == pytest.approx(1.7, rel=0.02)
    assert value == max(v for _, v in evaluated)
    assert len(evaluated) <= 4 + 10  # every point evaluated once


def test_search_extends_a_discrete_parameter_past_the_grid():
    best, _, evaluated = search(
        lambda p: -abs(p["size"] - 13), {"size": (3, 5, 7)}, extend=("size", 2, 21)
    )
    assert best == {"size": 13}
    assert [p["size"] for p, _ in evaluated] == [3, 5, 7, 9, 11, 13, 15]


@pytest.mark.parametrize("name", ["gaussian", "median", "bilateral"])
def test_oracle_beats_its_grid_and_reports_what_it_applied(name):
    noisy, _, clean = _stack(3, noise_sigma=0.06, seed=1)
    result = tune_oracle(noisy, clean, name)
    assert result.kind == "oracle" and len(result.best_params) == 3
    grid = FILTERS[name][1]
    for i in range(3):
        rows = [r for r in result.table if r["image"] == i]
        assert result.best_psnr_db[i] == max(r["psnr_db"] for r in rows)
        grid_best = max(
            psnr(
                clean[i],
                FILTERS[name][0](noisy[i], **dict(zip(grid, v, strict=True))),
                data_range=1.0,
            )
            for v in itertools.product(*grid.values())
        )
        assert result.best_psnr_db[i] >= grid_best - 0.05  # coordinate sweep (bilateral) ~ grid
        applied = apply_filter(noisy[i : i + 1], name, [result.best_params[i]])[0]
        assert psnr(clean[i], applied, data_range=1.0) == pytest.approx(result.best_psnr_db[i])
        assert result.best_psnr_db[i] > psnr(clean[i], noisy[i], data_range=1.0)


def test_oracle_pool_gives_same_result_as_one_process():
    noisy, _, clean = _stack(4, noise_sigma=0.05, seed=2)
    serial = tune_oracle(noisy, clean, "gaussian")
    calls = []
    pooled = tune_oracle(
        noisy, clean, "gaussian", workers=2, progress=lambda *c: calls.append(c), stage="g"
    )
    assert pooled.best_params == serial.best_params
    np.testing.assert_array_equal(pooled.best_psnr_db, serial.best_psnr_db)
    done = [n for _, n, _ in calls]  # absolute counts (lowdose.core.progress)
    assert calls[0] == ("g", 0, 4) and calls[-1] == ("g", 4, 4) and done == sorted(done)


def test_blind_with_second_realisation_matches_clean_target():
    noisy, second, clean = _stack(8, noise_sigma=0.06, seed=4, size=48)
    with_clean = tune_blind(noisy, clean, "gaussian", target_kind="clean")
    with_noisy = tune_blind(noisy, second, "gaussian")  # second_realisation is the default
    assert with_noisy.target_kind == "second_realisation" and with_noisy.n_images == 8
    # Same minimiser in expectation; on 8 images of 48^2 it lands within 15 %.
    assert with_noisy.params["sigma"] == pytest.approx(with_clean.params["sigma"], rel=0.15)
    assert with_noisy.train_psnr_db < with_clean.train_psnr_db  # the target's own noise
    # The uPSNR removes that noise: it estimates the clean-target PSNR of the same setting.
    assert with_noisy.train_upsnr_db == pytest.approx(with_clean.train_psnr_db, abs=0.3)
    assert with_clean.train_upsnr_db == with_clean.train_psnr_db


def test_oracle_is_at_least_blind_on_every_image():
    noisy, second, clean = _stack(4, noise_sigma=0.06, seed=5)
    blind = tune_blind(noisy[:2], second[:2], "bilateral", target_kind="second_realisation")
    oracle = tune_oracle(noisy[2:], clean[2:], "bilateral")
    blind_db = psnr(clean[2:], apply_filter(noisy[2:], "bilateral", blind.params), data_range=1.0)
    assert np.all(oracle.best_psnr_db >= blind_db - 0.01)


def test_blind_uses_at_most_max_images():
    noisy, _, clean = _stack(5, noise_sigma=0.05, seed=6, size=24)
    assert tune_blind(noisy, clean, "median", target_kind="clean", max_images=2).n_images == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filter_name": "wiener"}, "unknown filter"),
        ({"filter_name": "gaussian", "grid": {"radius": (1,)}}, "unknown parameters"),
        ({"filter_name": "gaussian", "grid": {"sigma": ()}}, "no values"),
    ],
)
def test_bad_tuning_input_raises(kwargs, message):
    noisy, _, clean = _stack(1, noise_sigma=0.05, seed=7, size=16)
    with pytest.raises(LowdoseInputError, match=message):
        tune_oracle(noisy, clean, **kwargs)


def test_mismatched_stacks_raise():
    noisy, _, clean = _stack(2, noise_sigma=0.05, seed=8, size=16)
    with pytest.raises(LowdoseInputError, match="must be equal"):
        tune_oracle(noisy, clean[:1], "gaussian")


def test_threaded_filtering_equals_serial():
    rng = np.random.default_rng(3)
    images = rng.random((5, 40, 48)).astype(np.float32)
    for name, params in [
        ("nlm", {"h": 0.1, "patch_size": 5, "patch_distance": 4}),
        ("bilateral", {"sigma_space": 1.5, "sigma_color": 0.2}),
        ("median", {"size": 7}),
    ]:
        serial = apply_filter(images, name, params)
        threaded = apply_filter(images, name, params, threads=2)
        np.testing.assert_array_equal(threaded, serial)


def test_default_grids_and_plans_are_pinned():
    # Changing a grid moves every oracle/blind result: it must be a deliberate, visible change.
    colours = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)
    assert GRIDS == {
        "gaussian": {"sigma": (0.5, 0.7071, 1.0, 1.414, 2.0, 2.828, 4.0)},
        "median": {"size": (3, 5, 7, 9)},
        "bilateral": {"sigma_space": (1.0, 2.0, 3.0), "sigma_color": colours},
        "nlm": {"h": colours, "patch_size": (5,), "patch_distance": (6,)},
        "bm3d": {"sigma": colours},
    }
    assert {name: grid for name, (_, grid) in FILTERS.items()} == GRIDS
    assert search_plan("bilateral") == {
        "continuous": ("sigma_color", "sigma_space"),
        "coordinate": ("sigma_color", "sigma_space"),
        "extend": None,
        "refine_steps": 4,
        "bounds": {"sigma_space": (0.1, 16.0)},
    }
    assert search_plan("median", refine_steps=0)["extend"] == ("size", 2, 21, 1)
    assert search_plan("gaussian")["bounds"] == {"sigma": (0.05, 64.0)}


def test_blind_kind_says_whether_clean_data_was_read():
    noisy, second, clean = _stack(3, noise_sigma=0.06, seed=9, size=32)
    pairs = tune_blind_pairs(noisy, second, "median")
    assert (pairs.kind, pairs.target_kind) == ("blind", "second_realisation")
    assert tune_blind(noisy, second, "median") == pairs  # the default is clean-free
    with_clean = tune_blind(noisy, clean, "median", target_kind="clean")
    assert (with_clean.kind, with_clean.target_kind) == ("blind-clean", "clean")
    with pytest.raises(LowdoseInputError, match="target_kind"):
        tune_blind(noisy, clean, "median", target_kind="oracle")


def test_blind_tuning_cannot_see_clean_images():
    # The proof the issue asks for: clean-free tuning takes only the noisy pairs, so swapping
    # the "clean" array (real vs zeros) cannot move it, while the clean-target variant moves.
    noisy, second, clean = _stack(4, noise_sigma=0.08, seed=10, size=32)
    assert "clean" not in " ".join(inspect.signature(tune_blind_pairs).parameters)
    runs = [tune_blind_pairs(noisy.copy(), second.copy(), "gaussian") for _ in range(2)]
    assert runs[0] == runs[1] and runs[0].kind == "blind"
    real = tune_blind(noisy, clean, "gaussian", target_kind="clean")
    zeros = tune_blind(noisy, np.zeros_like(clean), "gaussian", target_kind="clean")
    assert real.params != zeros.params and real.kind == zeros.kind == "blind-clean"


@pytest.mark.parametrize(("noise_sigma", "seed"), [(0.03, 11), (0.08, 12), (0.15, 13)])
def test_unbiased_mse_has_the_clean_mse_argmin(noise_sigma, seed):
    noisy, second, clean = _stack(16, noise_sigma=noise_sigma, seed=seed, size=48)
    sigmas = GRIDS["gaussian"]["sigma"]
    noise_variance = pair_noise_variance_all_pixels(noisy, second)
    umse, clean_mse = [], []
    for sigma in sigmas:
        out = apply_filter(noisy, "gaussian", {"sigma": sigma})
        umse.append(np.mean(unbiased_mse(second, out, noise_variance=noise_variance)))
        clean_mse.append(np.mean((out.astype(np.float64) - clean) ** 2))
    assert abs(int(np.argmin(umse)) - int(np.argmin(clean_mse))) <= 1  # within a grid step
    blind = tune_blind_pairs(noisy, second, "gaussian")
    oracle_mean = tune_blind(noisy, clean, "gaussian", target_kind="clean")
    step = sigmas[1] / sigmas[0]
    assert 1 / step <= blind.params["sigma"] / oracle_mean.params["sigma"] <= step
