"""The search is never capped by its grid and every cheap filter reaches the identity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lowdose.baselines.filters import apply_filter
from lowdose.baselines.plans import GRIDS
from lowdose.baselines.search import search
from lowdose.baselines.tuning import tune_oracle
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr

SIZE = 64


def _log_peak(at: float):
    """An objective on one positive parameter ``s`` with its maximum at ``s = at``."""
    return lambda p: -((math.log(p["s"]) - math.log(at)) ** 2)


def _assert_interior(table, name: str, best: dict, best_value: float) -> None:
    """The best value of ``name`` has an evaluated, worse point on each side."""
    below = [v for p, v in table if p[name] < best[name]]
    above = [v for p, v in table if p[name] > best[name]]
    assert below and above, f"{name}={best[name]} is on the edge of what was searched"
    assert max(below) < best_value and max(above) < best_value


@pytest.mark.parametrize("peak", [40.0, 0.003])
def test_search_steps_past_either_grid_edge_until_the_optimum_is_interior(peak):
    best, value, table = search(_log_peak(peak), {"s": (0.1, 0.3, 1.0)}, ("s",))
    assert best["s"] == pytest.approx(peak, rel=0.15)
    _assert_interior(table, "s", best, value)
    assert all(p["s"] == float(f"{p['s']:.4g}") for p, _ in table)  # 4 significant digits
    assert len({tuple(p.items()) for p, _ in table}) == len(table)  # each point once


def test_a_single_value_grid_is_extended_both_ways():
    best, _, _ = search(_log_peak(0.02), {"s": (1.0,)}, ("s",), refine_steps=8)
    assert best["s"] == pytest.approx(0.02, rel=0.15)


def test_hard_bounds_and_reach_stop_the_outward_steps():
    best, _, table = search(_log_peak(1e6), {"s": (1.0, 2.0)}, ("s",), bounds={"s": (0.5, 10.0)})
    assert best["s"] == 10.0 and max(p["s"] for p, _ in table) == 10.0
    best, _, table = search(_log_peak(1e6), {"s": (1.0, 2.0)}, ("s",), edge_reach=100.0)
    assert best["s"] == 200.0 and max(p["s"] for p, _ in table) == 200.0
    capped, _, _ = search(_log_peak(1e6), {"s": (1.0, 2.0)}, ("s",), edge_reach=1.0)
    assert capped["s"] == 2.0  # the old behaviour, on request only


def test_grid_only_search_still_leaves_the_grid():
    best, _, _ = search(_log_peak(40.0), {"s": (1.0, 2.0)}, ("s",), refine_steps=0)
    assert best["s"] == 32.0  # x2 steps, no golden section


def test_discrete_extension_reaches_down_to_its_lowest_value():
    best, _, table = search(
        lambda p: -abs(p["size"] - 1), {"size": (3, 5, 7)}, extend=("size", 2, 21, 1)
    )
    assert best == {"size": 1} and [p["size"] for p, _ in table] == [3, 5, 7, 1]


def test_nan_objective_is_never_the_best():
    best, _, table = search(
        lambda p: math.nan if p["s"] > 1.5 else p["s"], {"s": (1.0, 2.0)}, ("s",)
    )
    assert best["s"] <= 1.5 and dict(((p["s"], v) for p, v in table))[2.0] == -math.inf


def test_bad_edge_step_raises():
    with pytest.raises(LowdoseInputError, match="edge_step"):
        search(_log_peak(1.0), {"s": (1.0,)}, ("s",), edge_step=1.0)


def _smooth_image() -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return (0.5 + 0.2 * np.sin(2 * np.pi * xx) * np.cos(np.pi * yy)).astype(np.float32)


@pytest.mark.parametrize("name", ["gaussian", "median", "bilateral"])
def test_on_a_clean_input_the_search_finds_the_identity(name):
    clean = _smooth_image()[None]
    result = tune_oracle(clean, clean, name)
    out = apply_filter(clean, name, result.best_params)
    assert psnr(clean, out, data_range=1.0) > 100.0  # the grid's edge: ~61 dB (gaussian 0.5 px)


def test_heavy_noise_on_a_smooth_image_needs_a_gaussian_beyond_the_old_grid():
    rng = np.random.default_rng(0)
    clean = _smooth_image()[None]
    noisy = (clean + rng.normal(0, 0.3, clean.shape)).astype(np.float32)
    result = tune_oracle(noisy, clean, "gaussian")
    best = result.best_params[0]
    assert best["sigma"] > max(GRIDS["gaussian"]["sigma"])
    table = [(row["params"], row["psnr_db"]) for row in result.table]
    _assert_interior(table, "sigma", best, result.best_psnr_db[0])


def test_heavy_noise_on_a_disc_needs_a_bilateral_colour_beyond_the_old_grid():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    clean = np.where((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.09, 1.2, 0.2)[None]
    noisy = (clean + rng.normal(0, 0.25, clean.shape)).astype(np.float32)
    result = tune_oracle(noisy, clean.astype(np.float32), "bilateral")
    best = result.best_params[0]
    assert best["sigma_color"] > max(GRIDS["bilateral"]["sigma_color"])  # the old cap, 0.32
    table = [(row["params"], row["psnr_db"]) for row in result.table]
    _assert_interior(table, "sigma_color", best, result.best_psnr_db[0])
    _assert_interior(table, "sigma_space", best, result.best_psnr_db[0])
