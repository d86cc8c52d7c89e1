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
    assert len(set(RESULT_COLUMNS)) == len(RESULT_COLUMNS) == 19


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
