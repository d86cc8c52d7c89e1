"""How each filter's parameters are searched: default grids, refinement, sweep order.

The grids are in data units of the paper's scale (noise standard deviation ~0.03 at 30 dB,
~0.13 at 18 dB with data_range 1) or in pixels. **A grid must not cap a filter**: an optimum on
the grid's edge means the grid is too small (bilateral ``sigma_color`` capped at 0.32 cost
~0.6 dB at 18.66 dB), so continuous parameters are refined past the grid points and the median
size grows past its grid while PSNR improves. On 256^2 projections these plans land within
0.02 dB of an exhaustive dense-grid search (``benchmarks/filter_search.py``).
"""

from __future__ import annotations

import numpy as np

from lowdose.baselines.search import SearchPlan
from lowdose.core.errors import LowdoseInputError


def _log_grid(first: float, last: float, n: int) -> tuple[float, ...]:
    # Rounded to 4 significant digits so settings read cleanly in tables and JSON.
    return tuple(float(f"{v:.4g}") for v in np.geomspace(first, last, n))


_SIGMA_COLOR_GRID = _log_grid(0.01, 0.32, 6)

#: name -> default grid {parameter: sorted values}; values in pixels or data units.
GRIDS: dict[str, dict[str, tuple]] = {
    "gaussian": {"sigma": _log_grid(0.5, 4.0, 7)},
    "median": {"size": (3, 5, 7, 9)},
    "bilateral": {"sigma_space": (1.0, 2.0, 3.0), "sigma_color": _SIGMA_COLOR_GRID},
    "nlm": {"h": _SIGMA_COLOR_GRID, "patch_size": (5,), "patch_distance": (6,)},
    "bm3d": {"sigma": _SIGMA_COLOR_GRID},
}
#: Filters searched one parameter at a time (in this order) before refinement, not on the full
#: Cartesian grid: the bilateral's wide windows cost 10-25 ms each.
COORDINATE: dict[str, tuple[str, ...]] = {"bilateral": ("sigma_color", "sigma_space")}
#: Discrete parameters that grow past the grid while PSNR improves: (name, step, limit).
EXTEND: dict[str, tuple[str, int, int]] = {"median": ("size", 2, 21)}
#: Golden-section steps per continuous parameter where the default (6) is not used: 4 keep the
#: bilateral within 0.02 dB of a dense exhaustive search (benchmarks/filter_search.py).
REFINE_STEPS: dict[str, int] = {"bilateral": 4}
_DEFAULT_REFINE_STEPS = 6
#: Parameters searched continuously (golden section in log space) after the grid.
CONTINUOUS: dict[str, tuple[str, ...]] = {
    "gaussian": ("sigma",),
    "bilateral": ("sigma_color", "sigma_space"),
    "nlm": ("h",),
    "bm3d": ("sigma",),
}


def search_plan(filter_name: str, refine_steps: int | None = None) -> SearchPlan:
    """The search shape of a filter: keyword arguments for :func:`lowdose.baselines.search.search`.

    Parameters
    ----------
    filter_name : str
        A key of :data:`GRIDS`.
    refine_steps : int, optional
        Golden-section steps per continuous parameter; default ``REFINE_STEPS`` for the filter,
        else 6.
    """
    if refine_steps is None:
        refine_steps = REFINE_STEPS.get(filter_name, _DEFAULT_REFINE_STEPS)
    return SearchPlan(
        continuous=CONTINUOUS.get(filter_name, ()),
        coordinate=COORDINATE.get(filter_name, ()),
        extend=EXTEND.get(filter_name),
        refine_steps=int(refine_steps),
    )


def resolve_grid(filter_name: str, grid: dict | None) -> dict[str, tuple]:
    """The grid a search runs: the filter's default with ``grid``'s parameters replaced.

    Parameters
    ----------
    filter_name : str
        A key of :data:`GRIDS` (checked by the caller).
    grid : dict name -> values, optional
        Replacement values; missing parameters keep their defaults.

    Returns
    -------
    dict name -> tuple
        Every parameter of the filter, in the default's order, values sorted and unique.
    """
    default = GRIDS[filter_name]
    grid = dict(default if grid is None else grid)
    unknown = set(grid) - set(default)
    if unknown:
        raise LowdoseInputError(
            f"grid for {filter_name!r} has unknown parameters {sorted(unknown)}; "
            f"valid: {sorted(default)}"
        )
    resolved = {}
    for name in default:
        values = tuple(sorted(set(grid.get(name, default[name]))))
        if not values:
            raise LowdoseInputError(f"grid for {filter_name!r}: {name} has no values; give one")
        resolved[name] = values
    return resolved
