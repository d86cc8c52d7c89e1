"""Generic parameter search: maximise any objective over a parameter product, return the table.

The idea of scikit-image's ``calibrate_denoiser``: the search knows nothing of what it tunes
(filters, images, clean references); it calls ``objective(params)`` and returns the best setting
and every point it evaluated. Shape of one search (:class:`SearchPlan`):

1. every point of the grid (Cartesian product), or, with ``coordinate``, one parameter at a time
   (``sum(len)`` evaluations instead of ``prod(len)``);
2. with ``extend``, a discrete parameter whose best value is the grid's largest keeps growing
   while the objective improves;
3. each ``continuous`` parameter in turn is refined by golden-section search in log space between
   the grid neighbours of the best point; values are rounded to 4 significant digits, so the
   reported setting is the one evaluated.

Each distinct setting is evaluated once (a cache keyed by the sorted parameters).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import TypedDict

#: The golden-section step fraction, 0.382.
_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))


class SearchPlan(TypedDict):
    """Keyword arguments of :func:`search` beyond the grid: how one search is shaped."""

    continuous: Sequence[str]
    coordinate: Sequence[str]
    extend: tuple[str, int, int] | None
    refine_steps: int


def _golden_max(objective, low: float, mid: float, high: float, f_mid: float, steps: int):
    """Maximise ``objective(log_value)`` from a bracket ``low <= mid <= high`` (log space)."""
    for _ in range(steps):
        if high - mid >= mid - low:
            trial = mid + _GOLDEN * (high - mid)
        else:
            trial = mid - _GOLDEN * (mid - low)
        f_trial = objective(trial)
        if f_trial > f_mid:
            low, high = (mid, high) if trial > mid else (low, mid)
            mid, f_mid = trial, f_trial
        elif trial > mid:
            high = trial
        else:
            low = trial
    return mid, f_mid


def _grid_sweep(evaluate, grid: dict[str, tuple]) -> tuple[dict, float]:
    names = list(grid)
    best, best_value = None, -math.inf
    for values in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, values, strict=True))
        value = evaluate(params)
        if best is None or value > best_value:
            best, best_value = params, value
    return best, best_value


def _coordinate_sweep(evaluate, grid: dict[str, tuple], order: Sequence[str]):
    best = {name: values[len(values) // 2] for name, values in grid.items()}
    best_value = evaluate(best)
    for name in order:
        for value in grid[name]:
            trial = {**best, name: value}
            trial_value = evaluate(trial)
            if trial_value > best_value:
                best, best_value = trial, trial_value
    return best, best_value


def _extend_upwards(evaluate, best, best_value, grid, name: str, step: int, limit: int):
    value = best[name]
    if value != max(grid[name]):
        return best, best_value
    while value + step <= limit:
        value += step
        trial = {**best, name: value}
        trial_value = evaluate(trial)
        if trial_value <= best_value:
            break
        best, best_value = trial, trial_value
    return best, best_value


def _refine_continuous(evaluate, best, best_value, grid, name: str, steps: int):
    """Golden-section refinement of one positive parameter between its grid neighbours."""
    values = grid[name]
    if steps <= 0 or len(values) < 2:
        return best, best_value
    i = values.index(best[name])
    low, high = values[max(i - 1, 0)], values[min(i + 1, len(values) - 1)]

    def along(log_value: float) -> float:
        return evaluate({**best, name: float(f"{math.exp(log_value):.4g}")})

    log_mid, refined_value = _golden_max(
        along, math.log(low), math.log(best[name]), math.log(high), best_value, steps
    )
    if refined_value > best_value:
        return {**best, name: float(f"{math.exp(log_mid):.4g}")}, refined_value
    return best, best_value


def search(
    objective: Callable[[dict], float],
    grid: dict[str, tuple],
    continuous: Sequence[str] = (),
    *,
    refine_steps: int = 6,
    coordinate: Sequence[str] = (),
    extend: tuple[str, int, int] | None = None,
) -> tuple[dict, float, list[tuple[dict, float]]]:
    """Maximise ``objective(params)`` over a grid, then refine continuous parameters.

    Parameters
    ----------
    objective : callable dict -> float
        Higher is better (a PSNR in dB, say).
    grid : dict name -> sorted tuple of values
    continuous : sequence of str
        Parameters (positive reals) refined by golden section in log space between the grid
        neighbours of the best value, one after the other, the others held fixed.
    refine_steps : int
        Golden-section evaluations per continuous parameter (0 = grid only).
    coordinate : sequence of str
        Empty: evaluate the whole Cartesian grid. Otherwise sweep these parameters one at a
        time over their grid values (the others at their middle grid value, then at the best
        found), in this order: ``sum(len)`` evaluations instead of ``prod(len)``.
    extend : (name, step, limit) or None
        A discrete parameter that, when its best value is the largest in the grid, keeps
        growing by ``step`` while the objective improves, up to ``limit``.

    Returns
    -------
    best_params, best_value, evaluated
        ``evaluated`` (the table searched) lists every distinct ``(params, value)`` in the
        order computed.

    Examples
    --------
    >>> best, value, table = search(lambda p: -abs(p["size"] - 7), {"size": (3, 5, 7, 9)})
    >>> best, value, len(table)
    ({'size': 7}, 0.0, 4)
    """
    cache: dict[tuple, float] = {}
    evaluated: list[tuple[dict, float]] = []

    def evaluate(params: dict) -> float:
        key = tuple(sorted(params.items()))
        if key not in cache:
            cache[key] = float(objective(params))
            evaluated.append((dict(params), cache[key]))
        return cache[key]

    if coordinate:
        best, best_value = _coordinate_sweep(evaluate, grid, coordinate)
    else:
        best, best_value = _grid_sweep(evaluate, grid)
    if extend is not None:
        best, best_value = _extend_upwards(evaluate, best, best_value, grid, *extend)
    for name in continuous:
        best, best_value = _refine_continuous(evaluate, best, best_value, grid, name, refine_steps)
    return best, best_value, evaluated
