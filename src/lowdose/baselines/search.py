"""Generic parameter search: maximise any objective over a parameter product, return the table.

The idea of scikit-image's ``calibrate_denoiser``: the search knows nothing of what it tunes
(filters, images, clean references); it calls ``objective(params)`` and returns the best setting
and every point it evaluated. Shape of one search (:class:`SearchPlan`):

1. every point of the grid (Cartesian product), or, with ``coordinate``, one parameter at a time
   (``sum(len)`` evaluations instead of ``prod(len)``);
2. with ``extend``, a discrete parameter whose best value is the grid's largest keeps growing
   while the objective improves (and, given a lowest value, one at the grid's smallest keeps
   shrinking: the median's size 1 is the identity);
3. each ``continuous`` parameter in turn, when its best value is at an edge of its grid, steps
   outward geometrically (``edge_step`` per step, x2 by default) while the objective improves,
   up to ``edge_reach`` times beyond the edge or its hard ``bounds``; then it is refined by
   golden-section search in log space in the bracket around the best value. Values are rounded
   to 4 significant digits, so the reported setting is the one evaluated.

**Guarantee.** A grid never caps a parameter: the returned best of a continuous parameter has an
evaluated, worse neighbour on both sides unless it sits on a hard bound (or ``edge_reach`` is
1); a discrete ``extend`` parameter stops only where a step is worse or at its limit.

Each distinct setting is evaluated once (a cache keyed by the sorted parameters); a NaN objective
counts as ``-inf`` (never the best).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypedDict

from lowdose.core.errors import LowdoseInputError

#: The golden-section step fraction, 0.382.
_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))


class SearchPlan(TypedDict):
    """Keyword arguments of :func:`search` beyond the grid: how one search is shaped."""

    continuous: Sequence[str]
    coordinate: Sequence[str]
    extend: tuple[str, int, int] | tuple[str, int, int, int] | None
    refine_steps: int
    bounds: Mapping[str, tuple[float, float]]


def _rounded(value: float) -> float:
    """``value`` to 4 significant digits: the setting evaluated is the setting reported."""
    return float(f"{value:.4g}")


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


def _extend_discrete(evaluate, best, best_value, grid, name, step, limit, lowest=None):
    """Grow (shrink, given ``lowest``) a discrete parameter past its grid edge while it helps."""
    edges = [(max(grid[name]), step, lambda v: v <= limit)]
    if lowest is not None:
        edges.append((min(grid[name]), -step, lambda v: v >= lowest))
    for edge, delta, allowed in edges:
        if best[name] != edge:
            continue
        value = edge
        while allowed(value + delta):
            value += delta
            trial = {**best, name: value}
            trial_value = evaluate(trial)
            if trial_value <= best_value:
                break
            best, best_value = trial, trial_value
    return best, best_value


def _step_outward(along, start: float, f_start: float, factor: float, stop: float):
    """Step from ``start`` by ``factor`` towards ``stop`` while ``along`` improves.

    Returns ``(previous, best, beyond, f_best)``: the best value, the one before it (``start``'s
    own predecessor is not known: ``None``) and the first worse value tried (``None`` at
    ``stop``).
    """
    previous, best, f_best = None, start, f_start
    while (factor > 1.0 and best < stop) or (factor < 1.0 and best > stop):
        trial = _rounded(min(best * factor, stop) if factor > 1.0 else max(best * factor, stop))
        if trial == best:
            break
        f_trial = along(trial)
        if f_trial <= f_best:
            return previous, best, trial, f_best
        previous, best, f_best = best, trial, f_trial
    return previous, best, None, f_best


def _bracket(evaluate, best, best_value, values, name, step, reach, bound):
    """``(low, mid, high, f_mid)`` around the best value, stepping past a grid edge if needed."""

    def along(value: float) -> float:
        return evaluate({**best, name: value})

    i, mid = values.index(best[name]), best[name]
    low = values[i - 1] if i > 0 else None
    high = values[i + 1] if i < len(values) - 1 else None
    if high is None and reach > 1.0:
        before, mid, high, best_value = _step_outward(
            along, mid, best_value, step, min(bound[1], values[-1] * reach)
        )
        low = before if before is not None else low
    if low is None and reach > 1.0 and mid == values[0]:
        before, mid, low, best_value = _step_outward(
            along, mid, best_value, 1.0 / step, max(bound[0], values[0] / reach)
        )
        high = before if before is not None else high
    return (mid if low is None else low), mid, (mid if high is None else high), best_value


def _refine_continuous(evaluate, best, best_value, grid, name: str, steps: int, edge):
    """Extend one positive parameter past a grid edge, then golden-section refine it."""
    step, reach, bound = edge
    low, mid, high, mid_value = _bracket(
        evaluate, best, best_value, grid[name], name, step, reach, bound
    )
    if mid != best[name]:
        best, best_value = {**best, name: mid}, mid_value
    if steps <= 0 or low == high:
        return best, best_value

    def along(log_value: float) -> float:
        return evaluate({**best, name: _rounded(math.exp(log_value))})

    log_mid, refined_value = _golden_max(
        along, math.log(low), math.log(mid), math.log(high), best_value, steps
    )
    if refined_value > best_value:
        return {**best, name: _rounded(math.exp(log_mid))}, refined_value
    return best, best_value


def search(
    objective: Callable[[dict], float],
    grid: dict[str, tuple],
    continuous: Sequence[str] = (),
    *,
    refine_steps: int = 6,
    coordinate: Sequence[str] = (),
    extend: tuple[str, int, int] | tuple[str, int, int, int] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    edge_step: float = 2.0,
    edge_reach: float = 1e3,
) -> tuple[dict, float, list[tuple[dict, float]]]:
    """Maximise ``objective(params)`` over a grid, past its edges, then refine continuous ones.

    Parameters
    ----------
    objective : callable dict -> float
        Higher is better (a PSNR in dB, say). NaN counts as ``-inf``.
    grid : dict name -> sorted tuple of values
    continuous : sequence of str
        Parameters (positive reals) searched in log space, one after the other, the others held
        fixed: a best value on an edge of the grid steps outward by ``edge_step`` while the
        objective improves, then golden section refines it in the bracket of its neighbours.
    refine_steps : int
        Golden-section evaluations per continuous parameter (0 = none; edges still extend).
    coordinate : sequence of str
        Empty: evaluate the whole Cartesian grid. Otherwise sweep these parameters one at a
        time over their grid values (the others at their middle grid value, then at the best
        found), in this order: ``sum(len)`` evaluations instead of ``prod(len)``.
    extend : (name, step, limit) or (name, step, limit, lowest) or None
        A discrete parameter that, when its best value is the largest in the grid, keeps
        growing by ``step`` while the objective improves, up to ``limit``; with ``lowest``, a
        best value at the grid's smallest keeps shrinking by ``step`` down to ``lowest``.
    bounds : mapping name -> (low, high), optional
        Hard limits of continuous parameters, in the parameters' units; edge steps never leave
        them (the default, and a parameter missing here: no limit beyond ``edge_reach``).
    edge_step : float
        Factor (> 1) of one outward step past a grid edge.
    edge_reach : float
        The farthest an outward search goes, as a factor beyond the grid's edge value
        (``1.0`` = never leave the grid, whose edge then caps the filter).

    Returns
    -------
    best_params, best_value, evaluated
        ``evaluated`` (the table searched) lists every distinct ``(params, value)`` in the
        order computed. A continuous best value off its hard bounds has a worse evaluated
        neighbour on each side.

    Examples
    --------
    >>> best, value, table = search(lambda p: -abs(p["size"] - 7), {"size": (3, 5, 7, 9)})
    >>> best, value, len(table)
    ({'size': 7}, 0.0, 4)
    >>> best, _, _ = search(lambda p: -abs(p["s"] - 40.0), {"s": (1.0, 2.0)}, ("s",))
    >>> 30.0 < best["s"] < 55.0  # past the grid's largest value
    True
    """
    if not (edge_step > 1.0 and edge_reach >= 1.0):
        raise LowdoseInputError(
            f"search needs edge_step > 1 and edge_reach >= 1, got {edge_step}, {edge_reach}"
        )
    cache: dict[tuple, float] = {}
    evaluated: list[tuple[dict, float]] = []
    bounds = {} if bounds is None else dict(bounds)

    def evaluate(params: dict) -> float:
        key = tuple(sorted(params.items()))
        if key not in cache:
            value = float(objective(params))
            cache[key] = -math.inf if math.isnan(value) else value
            evaluated.append((dict(params), cache[key]))
        return cache[key]

    if coordinate:
        best, best_value = _coordinate_sweep(evaluate, grid, coordinate)
    else:
        best, best_value = _grid_sweep(evaluate, grid)
    if extend is not None:
        best, best_value = _extend_discrete(evaluate, best, best_value, grid, *extend)
    for name in continuous:
        edge = (edge_step, edge_reach, bounds.get(name, (0.0, math.inf)))
        best, best_value = _refine_continuous(
            evaluate, best, best_value, grid, name, refine_steps, edge
        )
    return best, best_value, evaluated
