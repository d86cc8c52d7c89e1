"""Choosing filter parameters: per-image oracle search (the paper's protocol) and blind tuning.

*Oracle* (:func:`tune_oracle`): for every test image the setting with the highest PSNR against
that image's clean reference, as the paper did ("the best setting was determined image by
image"). It uses clean test images, so it flatters the filters; results say ``oracle``.

*Blind* (:func:`tune_blind`): one setting per dataset chosen on training images only, by the
lowest mean squared error against a target: the clean image where there is one, otherwise a
second, independent noisy realisation. ``E|f(y1) - y2|^2 = E|f(y1) - x|^2 + sigma^2`` when
``y2 = x + n2`` with ``n2`` independent of ``y1``, so both targets have the same minimiser in
expectation.

Search, both kinds (:func:`search`): every point of the grid (Cartesian product; the bilateral
sweeps one parameter at a time, ``COORDINATE``), the median size grows past the grid while PSNR
improves (``EXTEND``), then each continuous parameter (``CONTINUOUS``) is refined in turn by
golden-section search in log space between the grid neighbours of the best point (values
rounded to 4 significant digits, so the reported setting is the one applied). On 256^2
projections this lands within 0.02 dB of an exhaustive dense-grid search
(``benchmarks/filter_search.py``). The oracle search spreads images over a process pool.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lowdose.baselines.filters import get_filter
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr

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
_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))  # 0.382: the golden-section step fraction
_CHUNKS_PER_WORKER = 4  # smaller tasks balance the pool when images differ in cost


@dataclass(frozen=True)
class TuningResult:
    """Per-image oracle tuning of one filter.

    Attributes
    ----------
    filter_name : str
    kind : str
        Always ``"oracle"``.
    best_params : list of dict
        Best setting per image (length I).
    best_psnr_db : ndarray (I,) float64
        PSNR in dB of each image filtered with its best setting, against its clean image.
    table : list of dict
        Every evaluated point: ``{"image": i, "params": {...}, "psnr_db": float}``.
    """

    filter_name: str
    best_params: list[dict]
    best_psnr_db: np.ndarray
    table: list[dict] = field(repr=False)
    kind: str = "oracle"


@dataclass(frozen=True)
class BlindTuning:
    """One setting for a whole dataset, chosen on training images.

    Attributes
    ----------
    filter_name : str
    params : dict
        The chosen setting.
    target_kind : str
        ``"clean"`` or ``"second_realisation"``: what the training outputs were compared with.
    train_psnr_db : float
        ``10 log10(data_range**2 / mean MSE)`` against the target at ``params`` (against a
        noisy target it is lower than the true PSNR; only its maximiser matters).
    n_images : int
        Training images used.
    table : list of dict
        Every evaluated point: ``{"params": {...}, "mean_mse": float, "psnr_db": float}``.
    kind : str
        Always ``"blind"``.
    """

    filter_name: str
    params: dict
    target_kind: str
    train_psnr_db: float
    n_images: int
    table: list[dict] = field(repr=False)
    kind: str = "blind"


def _resolve_grid(filter_name: str, grid: dict | None) -> dict[str, tuple]:
    _, default = get_filter(filter_name)
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
        Higher is better (PSNR in dB).
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
        growing by ``step`` while the objective improves, up to ``limit`` (median size).

    Returns
    -------
    best_params, best_value, evaluated
        ``evaluated`` lists every distinct ``(params, value)`` in the order computed.
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
        values = grid[name]
        if refine_steps <= 0 or len(values) < 2:
            continue
        i = values.index(best[name])
        low, high = values[max(i - 1, 0)], values[min(i + 1, len(values) - 1)]

        def along(log_value: float, name=name, base=best) -> float:
            return evaluate({**base, name: float(f"{math.exp(log_value):.4g}")})

        log_mid, refined_value = _golden_max(
            along, math.log(low), math.log(best[name]), math.log(high), best_value, refine_steps
        )
        if refined_value > best_value:
            best, best_value = {**best, name: float(f"{math.exp(log_mid):.4g}")}, refined_value
    return best, best_value, evaluated


def apply_filter(images: np.ndarray, filter_name: str, params, *, threads: int = 1) -> np.ndarray:
    """Filter a stack ``(B, H, W)`` with one setting (dict) or one per image (list of dicts).

    ``threads > 1`` filters images in a thread pool: OpenCV, SciPy and scikit-image's NLM release
    the GIL, so this uses several cores without copying the stack to other processes (BM3D,
    whose library is not known to be thread-safe, always runs in one thread).
    """
    function, _ = get_filter(filter_name)
    images = np.asarray(images)
    per_image = [params] * len(images) if isinstance(params, dict) else list(params)
    if len(per_image) != len(images):
        raise LowdoseInputError(
            f"{len(per_image)} parameter sets for {len(images)} images; give one per image"
        )
    pairs = list(zip(images, per_image, strict=True))
    if threads > 1 and len(pairs) > 1 and filter_name != "bm3d":
        with ThreadPoolExecutor(threads) as pool:
            return np.stack(list(pool.map(lambda pair: function(pair[0], **pair[1]), pairs)))
    return np.stack([function(image, **p) for image, p in pairs])


def _check_pair_stacks(noisy, reference, what: str) -> tuple[np.ndarray, np.ndarray]:
    noisy = np.asarray(noisy)
    reference = np.asarray(reference)
    if noisy.ndim != 3 or noisy.shape != reference.shape or len(noisy) == 0:
        raise LowdoseInputError(
            f"{what}: noisy {noisy.shape} and target {reference.shape} must be equal, "
            "non-empty (B, H, W) stacks"
        )
    return noisy, reference


def _plan(filter_name: str) -> dict:
    """The search shape of a filter: keyword arguments for :func:`search`."""
    return {
        "continuous": CONTINUOUS.get(filter_name, ()),
        "coordinate": COORDINATE.get(filter_name, ()),
        "extend": EXTEND.get(filter_name),
    }


def _refine_steps(filter_name: str, refine_steps: int | None) -> int:
    if refine_steps is None:
        return REFINE_STEPS.get(filter_name, _DEFAULT_REFINE_STEPS)
    return int(refine_steps)


def _oracle_chunk(noisy, clean, filter_name, grid, refine_steps, data_range):
    """Oracle search of a chunk of images (runs in a pool worker or in-process)."""
    function, _ = get_filter(filter_name)
    results = []
    for image, reference in zip(noisy, clean, strict=True):

        def objective(params, image=image, reference=reference):
            return psnr(reference, function(image, **params), data_range=data_range)

        results.append(search(objective, grid, refine_steps=refine_steps, **_plan(filter_name)))
    return results


def _single_thread_worker() -> None:
    # One OpenCV thread per worker process: the pool already fills the cores.
    import cv2

    cv2.setNumThreads(1)


def tune_oracle(
    noisy,
    clean,
    filter_name: str,
    grid: dict | None = None,
    *,
    data_range: float = 1.0,
    refine_steps: int | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> TuningResult:
    """Best setting per image against its clean reference (the paper's protocol, ``oracle``).

    Parameters
    ----------
    noisy, clean : ndarray (I, H, W) float32 or float64
        Filter inputs and their clean references, same scale.
    filter_name : str
        A key of ``lowdose.baselines.filters.FILTERS``.
    grid : dict name -> values, optional
        Replaces the filter's default grid (missing parameters keep their defaults).
    data_range : float
        PSNR data range (1.0 on the paper's scale).
    refine_steps : int, optional
        Golden-section steps per continuous parameter after the grid (0 = grid only);
        default ``REFINE_STEPS`` for the filter, else 6.
    workers : int
        Processes (1 = in this process).
    progress : callable(int), optional
        Called with the number of images just finished.

    Returns
    -------
    TuningResult
    """
    noisy, clean = _check_pair_stacks(noisy, clean, "tune_oracle")
    grid = _resolve_grid(filter_name, grid)
    args = (filter_name, grid, _refine_steps(filter_name, refine_steps), data_range)
    n_chunks = 1 if workers <= 1 else min(len(noisy), workers * _CHUNKS_PER_WORKER)
    bounds = np.linspace(0, len(noisy), n_chunks + 1).round().astype(int)
    chunks = [(noisy[a:b], clean[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    results = []
    if workers <= 1:
        for image, reference in zip(noisy, clean, strict=True):
            results += _oracle_chunk(image[None], reference[None], *args)
            if progress is not None:
                progress(1)
    else:
        # "spawn", not fork: a forked child of a process whose OpenCV/OpenMP thread pools already
        # run (after training, say) can deadlock in its first call into them (seen here).
        with ProcessPoolExecutor(
            max_workers=min(workers, os.cpu_count() or 1),
            initializer=_single_thread_worker,
            mp_context=multiprocessing.get_context("spawn"),
        ) as pool:
            futures = [pool.submit(_oracle_chunk, n, c, *args) for n, c in chunks]
            for future, (chunk, _) in zip(futures, chunks, strict=True):
                results += future.result()
                if progress is not None:
                    progress(len(chunk))
    table = [
        {"image": i, "params": params, "psnr_db": value}
        for i, (_, _, evaluated) in enumerate(results)
        for params, value in evaluated
    ]
    return TuningResult(
        filter_name=filter_name,
        best_params=[best for best, _, _ in results],
        best_psnr_db=np.array([value for _, value, _ in results], dtype=np.float64),
        table=table,
    )


def tune_blind(
    train_noisy,
    train_target,
    filter_name: str,
    grid: dict | None = None,
    *,
    target_kind: str = "clean",
    data_range: float = 1.0,
    refine_steps: int | None = None,
    max_images: int | None = 32,
    threads: int = 1,
) -> BlindTuning:
    """One setting for the dataset: lowest mean MSE against a target over training images.

    Parameters
    ----------
    train_noisy : ndarray (I, H, W) float
        Training inputs (first noisy realisation). Never test images.
    train_target : ndarray (I, H, W) float
        Clean training images, or a second independent realisation of the same images.
    filter_name, grid, data_range, refine_steps
        As :func:`tune_oracle`.
    target_kind : {"clean", "second_realisation"}
        Recorded in the result; the search is the same.
    max_images : int or None
        Use at most this many training images, evenly spaced (None = all).
    threads : int
        Threads that filter the training images (see :func:`apply_filter`).

    Returns
    -------
    BlindTuning
    """
    train_noisy, train_target = _check_pair_stacks(train_noisy, train_target, "tune_blind")
    if target_kind not in ("clean", "second_realisation"):
        raise LowdoseInputError(f"target_kind {target_kind!r}; use 'clean' or 'second_realisation'")
    if max_images is not None and len(train_noisy) > max_images:
        keep = np.linspace(0, len(train_noisy) - 1, max_images).round().astype(int)
        train_noisy, train_target = train_noisy[keep], train_target[keep]
    grid = _resolve_grid(filter_name, grid)
    target64 = train_target.astype(np.float64)

    def objective(params: dict) -> float:
        out = apply_filter(train_noisy, filter_name, params, threads=threads)
        mean_mse = float(np.mean((out - target64) ** 2))
        return 10.0 * math.log10(data_range**2 / mean_mse) if mean_mse > 0 else math.inf

    best, value, evaluated = search(
        objective, grid, refine_steps=_refine_steps(filter_name, refine_steps), **_plan(filter_name)
    )
    table = [
        {"params": p, "mean_mse": data_range**2 / 10.0 ** (v / 10.0), "psnr_db": v}
        for p, v in evaluated
    ]
    return BlindTuning(
        filter_name=filter_name,
        params=best,
        target_kind=target_kind,
        train_psnr_db=value,
        n_images=len(train_noisy),
        table=table,
    )
