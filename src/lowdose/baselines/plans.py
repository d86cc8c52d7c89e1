"""How each filter's parameters are searched: default grids, edge extension, refinement, order.

The grids are in data units of the paper's scale (noise standard deviation ~0.03 at 30 dB,
~0.13 at 18 dB with data_range 1) or in pixels. They are only where a search *starts*: **no grid
caps a filter**. :func:`lowdose.baselines.search.search` steps every continuous parameter whose
best value lies on a grid edge outward (x2 per step, in log space) while the objective improves,
up to 1000x beyond the edge or the hard :data:`BOUNDS` below, then refines it by golden section,
so the returned value has a worse evaluated neighbour on both sides unless it sits on a bound;
the median size grows past the grid up to 21 and shrinks to 1. (Before, bilateral
``sigma_color`` stopped at the grid's 0.32 and lost ~0.6 dB at 18.66 dB input PSNR.)

**Every filter reaches the identity**, so none is forced to blur a clean input (the validity
sweep's clean end): Gaussian ``sigma`` < 0.125 px is exactly the identity (a one-tap kernel),
median ``size`` 1 returns a copy, the bilateral with ``sigma_color`` -> 0 weighs only the centre
pixel, and NLM ``h`` / BM3D ``sigma`` -> 0 stop averaging. On 256^2 projections the plans land
within 0.02 dB of an exhaustive dense-grid search (``benchmarks/filter_search.py``).
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
#: Discrete parameters that grow past the grid while PSNR improves, and shrink below it down to
#: ``lowest``: (name, step, limit, lowest). Median size 1 is the identity.
EXTEND: dict[str, tuple[str, int, int, int]] = {"median": ("size", 2, 21, 1)}
#: Hard limits (low, high) of continuous parameters past their grid, where the search's own
#: reach (1000x beyond the grid edge) would cost too much or mean nothing: in pixels. Gaussian
#: sigma < 0.125 px is already the identity; a bilateral sigma_space of 16 px is a 97 px window.
BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    "gaussian": {"sigma": (0.05, 64.0)},
    "bilateral": {"sigma_space": (0.1, 16.0)},
}
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

    The search's edge step (x2) and reach (1000x past the grid edge) are its defaults; the
    filter's hard limits are :data:`BOUNDS`.

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
        bounds=BOUNDS.get(filter_name, {}),
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
