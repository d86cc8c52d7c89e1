"""Numbers the report derives from saved results: the per-method summary in table order, sweep
curves and the input PSNRs where curves cross zero gain or each other. Pure functions; no torch.

>>> zero_crossings(np.array([10.0, 20.0, 30.0]), np.array([4.0, 2.0, -2.0]))
[Crossing(input_psnr_db=25.0, value=0.0, direction='down')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lowdose.data.results import SUMMARY_COLUMNS, summarize

#: Methods that are not trained networks (drawn dashed, "best filter" candidates).
FILTER_METHODS = ("gaussian", "bilateral", "median", "nlm", "bm3d")
#: Table row order: the paper's first, then our extra baselines, then anything else by name.
METHOD_ORDER = ("noisy", "n2n-mae", "n2n-mse", "n2c-mse", "n2c-mae", *FILTER_METHODS)


@dataclass(frozen=True)
class Crossing:
    """Where a curve crosses a level: the input PSNR (dB), the curve's value there, and whether it
    goes ``down`` (from above to below) or ``up`` as input PSNR increases."""

    input_psnr_db: float
    value: float
    direction: str


def is_model_method(method: str) -> bool:
    """True for trained networks (anything that is neither a filter nor the noisy input)."""
    return method not in FILTER_METHODS and method != "noisy"


def method_sort_key(method: str) -> tuple[int, str]:
    """Key that orders methods as the paper's tables, unknown ones last by name; a model's
    self-ensemble (``n2n-mse-tta8``, ``lowdose evaluate --tta 8``) right after the model."""
    base = method.removesuffix("-tta8")
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), method)


def summary_table(results):
    """The per-method summary of a results table, in the paper's table order.

    Parameters
    ----------
    results
        pandas.DataFrame of ``results.csv`` (docs/interfaces.md, "Results").

    Returns
    -------
    pandas.DataFrame
        :func:`lowdose.data.results.summarize`'s rows (columns
        :data:`lowdose.data.results.SUMMARY_COLUMNS`; the same numbers as ``summary.md``),
        ordered by :func:`method_sort_key`, then model and tuning.
    """
    import pandas as pd

    summary = pd.DataFrame(summarize(results), columns=list(SUMMARY_COLUMNS))
    order = sorted(
        range(len(summary)),
        key=lambda i: (
            method_sort_key(summary.at[i, "method"]),
            summary.at[i, "model"],
            summary.at[i, "tuning"],
        ),
    )
    return summary.iloc[order].reset_index(drop=True)


def zero_crossings(x: np.ndarray, y: np.ndarray, *, level: float = 0.0) -> list[Crossing]:
    """Where the piecewise-linear curve (x, y) crosses ``level``, by linear interpolation.

    Parameters
    ----------
    x
        (L,) increasing input PSNR, dB.
    y
        (L,) curve values (e.g. gain in dB).
    level
        The level to cross.

    Returns
    -------
    list of Crossing
        In increasing x; a point exactly on the level counts once.
    """
    x = np.asarray(x, dtype=np.float64)
    d = np.asarray(y, dtype=np.float64) - level
    found: list[Crossing] = []
    for i in range(len(x) - 1):
        a, b = d[i], d[i + 1]
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        if a == 0.0 and b != 0.0 and (i == 0 or d[i - 1] * b < 0):
            found.append(Crossing(float(x[i]), level, "down" if b < 0 else "up"))
        elif a * b < 0:
            x0 = x[i] - a * (x[i + 1] - x[i]) / (b - a)
            found.append(Crossing(float(x0), level, "down" if b < a else "up"))
    return found


def curve_crossings(
    x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray
) -> list[Crossing]:
    """Where two piecewise-linear curves cross, on the union of their x within their overlap.

    Returns
    -------
    list of Crossing
        ``value`` is the curves' common y there; ``direction`` says how curve 1 - curve 2 changes.

    >>> c = curve_crossings(np.array([0.0, 2.0]), np.array([0.0, 2.0]),
    ...                     np.array([0.0, 2.0]), np.array([1.0, 1.0]))
    >>> (c[0].input_psnr_db, c[0].value, c[0].direction)
    (1.0, 1.0, 'up')
    """
    lo, hi = max(np.min(x1), np.min(x2)), min(np.max(x1), np.max(x2))
    grid = np.union1d(x1, x2)
    grid = grid[(grid >= lo) & (grid <= hi)]
    if grid.size < 2:
        return []
    a, b = np.interp(grid, x1, y1), np.interp(grid, x2, y2)
    return [
        Crossing(c.input_psnr_db, float(np.interp(c.input_psnr_db, grid, a)), c.direction)
        for c in zero_crossings(grid, a - b)
    ]


@dataclass(frozen=True)
class SweepMean:
    """The mean curve of one sweep series (mean over test images at each noise level)."""

    method: str
    tuning: str
    trained_at_db: float
    input_psnr_db: np.ndarray
    output_psnr_db: np.ndarray

    @property
    def label(self) -> str:
        if is_model_method(self.method):
            at = (
                f" (trained at {self.trained_at_db:.2f} dB)"
                if np.isfinite(self.trained_at_db)
                else ""
            )
            return f"{self.method}{at}"
        return f"{self.method} ({self.tuning})" if self.tuning not in ("", "none") else self.method


def sweep_means(sweep) -> list[SweepMean]:
    """Mean curves of ``sweep.csv``: one per method x training level x tuning, sorted by input PSNR.

    Parameters
    ----------
    sweep
        pandas.DataFrame with ``method, model_trained_at_db, noise_level, input_psnr_db,
        output_psnr_db`` and optional ``tuning``.
    """
    frame = sweep.copy()
    if "tuning" not in frame:
        frame["tuning"] = "none"
    if "model_trained_at_db" not in frame:
        frame["model_trained_at_db"] = math.nan
    frame["tuning"] = frame["tuning"].fillna("none").astype(str)
    frame["model_trained_at_db"] = frame["model_trained_at_db"].astype(float)
    curves = []
    keys = ["method", "model_trained_at_db", "tuning"]
    for (method, trained_at, tuning), group in frame.groupby(keys, dropna=False, sort=False):
        mean = group.groupby("noise_level")[["input_psnr_db", "output_psnr_db"]].mean()
        mean = mean.dropna().sort_values("input_psnr_db")
        if len(mean) == 0:
            continue
        curves.append(
            SweepMean(
                str(method),
                tuning,
                float(trained_at),
                mean["input_psnr_db"].to_numpy(),
                mean["output_psnr_db"].to_numpy(),
            )
        )
    curves.sort(
        key=lambda c: (
            not is_model_method(c.method),
            method_sort_key(c.method),
            -np.nan_to_num(c.trained_at_db),
        )
    )
    return curves
