"""The results schema and its one summary: NaN-aware means with n stated, the same rows for
``summary.md`` and the report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lowdose.data.results import (
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
    ResultRow,
    SummaryRow,
    mean_ci95,
    summarize,
)


def _frame(psnr_db, *, method="n2n-mse", model="unet-w16", tuning="none"):
    n = len(psnr_db)
    return pd.DataFrame(
        {
            "method": [method] * n,
            "model": [model] * n,
            "tuning": [tuning] * n,
            "noise_level": [0.05] * n,
            "psnr_db": psnr_db,
            "ssim": [0.9] * n,
            "psnr_hu_window_db": [math.nan] * n,
        }
    )


def test_columns_are_the_typed_rows_keys():
    assert tuple(ResultRow.__annotations__) == RESULT_COLUMNS
    assert tuple(SummaryRow.__annotations__) == SUMMARY_COLUMNS
    assert len(set(RESULT_COLUMNS)) == len(RESULT_COLUMNS) == 25


def test_summary_is_over_finite_values_and_states_n():
    (row,) = summarize(_frame([30.0, math.nan, 32.0, math.inf]))
    assert row["n"] == 2 and row["psnr_db"] == 31.0
    assert row["psnr_ci95_db"] == pytest.approx(mean_ci95([30.0, 32.0])[1])
    assert row["ssim"] == pytest.approx(0.9) and math.isnan(row["psnr_hu_window_db"])
    assert row["label"] == "n2n-mse (unet-w16)"


def test_summary_keeps_first_appearance_order_and_defaults_missing_columns():
    frame = pd.concat(
        [
            _frame([20.0, 21.0], method="noisy", model="", tuning="none"),
            _frame([25.0, 26.0], method="gaussian", model="", tuning="oracle"),
            _frame([24.0, 25.0], method="gaussian", model="", tuning="blind"),
        ]
    )
    assert [r["label"] for r in summarize(frame)] == [
        "noisy",
        "gaussian (oracle)",
        "gaussian (blind)",
    ]
    minimal = pd.DataFrame({"method": ["noisy", "gaussian"], "psnr_db": [20.0, 25.0]})
    rows = summarize(minimal)
    assert [(r["tuning"], r["model"], r["n"]) for r in rows] == [("none", "", 1)] * 2
    assert math.isnan(rows[1]["psnr_ci95_db"]) and math.isnan(rows[1]["ssim"])


def test_mean_ci95_without_finite_values():
    assert all(math.isnan(v) for v in mean_ci95(np.array([math.nan])))


NEW_COLUMNS = ("seed", "selection", "upsnr_db", "umse", "psnr_hu_soft_db", "ssim_wang_hu_window")


def test_new_columns_are_appended_after_the_old_ones():
    assert RESULT_COLUMNS[-len(NEW_COLUMNS) :] == NEW_COLUMNS
    assert RESULT_COLUMNS[:2] == ("dataset", "dataset_sha256")
    assert RESULT_COLUMNS[18] == "noise_var_true"


def _seeded(values_by_seed, *, objects=None):
    """Rows of one network over images 0..k-1 for each seed: {seed: [psnr per image]}."""
    rows = []
    for seed, values in values_by_seed.items():
        for image, value in enumerate(values):
            rows.append(
                {
                    "method": "n2n-mse",
                    "model": "unet-w16",
                    "tuning": "none",
                    "image_index": image,
                    "object_id": objects[image] if objects else f"o{image}",
                    "psnr_db": value,
                    "seed": seed,
                    "selection": "clean-free",
                }
            )
    return pd.DataFrame(rows)


def test_seeds_mean_of_seed_means_sd_over_seeds_and_ci_over_image_means():
    (row,) = summarize(_seeded({1: [30.0, 32.0, 34.0], 2: [31.0, 33.0, 35.0]}))
    assert row["n_seeds"] == 2 and row["n"] == 3 and row["n_objects"] == 3
    assert row["psnr_db"] == pytest.approx(32.5)
    assert row["psnr_sd_seeds_db"] == pytest.approx(np.std([32.0, 33.0], ddof=1))
    assert row["psnr_ci95_db"] == pytest.approx(mean_ci95([30.5, 32.5, 34.5])[1])
    assert row["selection"] == "clean-free"
    # a seed that missed an image: the mean is still over seeds of each seed's mean
    (row,) = summarize(_seeded({1: [30.0, 32.0], 2: [40.0]}))
    assert row["psnr_db"] == pytest.approx((31.0 + 40.0) / 2)
    (single,) = summarize(_seeded({7: [30.0, 32.0]}))
    assert single["n_seeds"] == 1 and math.isnan(single["psnr_sd_seeds_db"])


def test_upsnr_averages_umse_first_with_a_cluster_interval():
    frame = _frame([20.0] * 6)
    frame["object_id"] = ["a", "a", "b", "b", "c", "c"]
    frame["image_index"] = range(6)
    frame["data_range"] = 2.0
    frame["umse"] = [0.04, 0.04, 0.01, 0.01, 0.04, 0.04]  # on data_range 2
    (row,) = summarize(frame)
    expected = 10 * math.log10(4.0 / 0.03)
    assert row["upsnr_db"] == pytest.approx(expected)
    assert row["upsnr_ci95_low_db"] <= expected <= row["upsnr_ci95_high_db"]
    assert row["n_objects"] == 3
    # without umse it is recovered from upsnr_db (the per-image PSNRs are NOT averaged)
    frame["upsnr_db"] = 10 * np.log10(4.0 / frame.pop("umse"))
    assert summarize(frame)[0]["upsnr_db"] == pytest.approx(expected)
    # one object: no interval
    frame["object_id"] = "a"
    (row,) = summarize(frame)
    assert math.isnan(row["upsnr_ci95_low_db"]) and math.isnan(row["upsnr_ci95_high_db"])


def test_hand_written_tables_get_defaults_for_the_new_keys():
    (row,) = summarize(pd.DataFrame({"method": ["noisy"] * 2, "psnr_db": [20.0, 22.0]}))
    assert row["n_seeds"] == 1 and row["n_objects"] == 2 and row["selection"] == ""
    assert math.isnan(row["upsnr_db"]) and math.isnan(row["psnr_hu_soft_db"])
    assert math.isnan(row["ssim_wang_hu_window"]) and row["psnr_db"] == 21.0
