"""Choosing filter parameters: per-image oracle search (the paper's protocol) and blind tuning.

*Oracle* (:func:`tune_oracle`): for every test image the setting with the highest PSNR against
that image's clean reference, as the paper did ("the best setting was determined image by
image"). It uses clean test images, so it flatters the filters; results say ``oracle``.

*Blind* (:func:`tune_blind`): one setting per dataset chosen on training images only, by the
lowest mean squared error against a target: the clean image where there is one, otherwise a
second, independent noisy realisation. ``E|f(y1) - y2|^2 = E|f(y1) - x|^2 + sigma^2`` when
``y2 = x + n2`` with ``n2`` independent of ``y1``, so both targets have the same minimiser in
expectation.

Both run the generic :func:`lowdose.baselines.search.search` with the filter's plan
(:mod:`lowdose.baselines.plans`). The oracle search spreads images over a process pool.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lowdose.baselines.filters import apply_filter, get_filter
from lowdose.baselines.plans import resolve_grid, search_plan
from lowdose.baselines.search import SearchPlan, search
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, psnr_from_mse
from lowdose.core.progress import Progress, StageCounter
from lowdose.core.validation import checked_choice

_CHUNKS_PER_WORKER = 4  # smaller tasks balance the pool when images differ in cost
TARGET_KINDS = ("clean", "second_realisation")


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


def check_pair_stacks(noisy: np.ndarray, target: np.ndarray, what: str) -> None:
    """Raise unless ``noisy`` and ``target`` are equal-shaped, non-empty (B, H, W) stacks."""
    if noisy.ndim != 3 or noisy.shape != target.shape or len(noisy) == 0:
        raise LowdoseInputError(
            f"{what}: noisy {noisy.shape} and target {target.shape} must be equal, "
            "non-empty (B, H, W) stacks"
        )


def _oracle_chunk(noisy, clean, filter_name, grid, plan: SearchPlan, data_range):
    """Oracle search of a chunk of images (runs in a pool worker or in-process)."""
    function, _ = get_filter(filter_name)
    results = []
    for image, reference in zip(noisy, clean, strict=True):

        def objective(params, image=image, reference=reference):
            return psnr(reference, function(image, **params), data_range=data_range)

        results.append(search(objective, grid, **plan))
    return results


def _single_thread_worker() -> None:
    # One OpenCV thread per worker process: the pool already fills the cores.
    import cv2

    cv2.setNumThreads(1)


def _oracle_in_pool(noisy, clean, args: tuple, workers: int, counter: StageCounter) -> list:
    """Oracle search over a spawn process pool, images in chunks; results in image order."""
    n_chunks = min(len(noisy), workers * _CHUNKS_PER_WORKER)
    bounds = np.linspace(0, len(noisy), n_chunks + 1).round().astype(int)
    chunks = [(noisy[a:b], clean[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    results = []
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
            counter.advance(len(chunk))
    return results


def tune_oracle(
    noisy,
    clean,
    filter_name: str,
    grid: dict | None = None,
    *,
    data_range: float = 1.0,
    refine_steps: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    stage: str = "oracle tuning",
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
        default ``lowdose.baselines.plans.REFINE_STEPS`` for the filter, else 6.
    workers : int
        Processes (1 = in this process).
    progress : Progress, optional
        Called ``progress(stage, images_done, n_images)`` with the absolute count: once with 0
        at the start, then as images (in the pool: chunks of images) finish.
    stage : str
        The stage label passed to ``progress``.

    Returns
    -------
    TuningResult
    """
    noisy, clean = np.asarray(noisy), np.asarray(clean)
    check_pair_stacks(noisy, clean, "tune_oracle")
    get_filter(filter_name)  # unknown names fail here, naming the valid ones
    grid = resolve_grid(filter_name, grid)
    args = (filter_name, grid, search_plan(filter_name, refine_steps), data_range)
    counter = StageCounter(progress, stage, len(noisy))
    counter.advance(0)
    if workers <= 1:
        results = []
        for image, reference in zip(noisy, clean, strict=True):
            results += _oracle_chunk(image[None], reference[None], *args)
            counter.advance(1)
    else:
        results = _oracle_in_pool(noisy, clean, args, workers, counter)
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
        Threads that filter the training images (see
        :func:`lowdose.baselines.filters.apply_filter`).

    Returns
    -------
    BlindTuning
    """
    train_noisy, train_target = np.asarray(train_noisy), np.asarray(train_target)
    check_pair_stacks(train_noisy, train_target, "tune_blind")
    checked_choice(target_kind, "target_kind", TARGET_KINDS)
    if max_images is not None and len(train_noisy) > max_images:
        keep = np.linspace(0, len(train_noisy) - 1, max_images).round().astype(int)
        train_noisy, train_target = train_noisy[keep], train_target[keep]
    get_filter(filter_name)  # unknown names fail here, naming the valid ones
    grid = resolve_grid(filter_name, grid)
    target64 = train_target.astype(np.float64)

    def objective(params: dict) -> float:
        out = apply_filter(train_noisy, filter_name, params, threads=threads)
        return psnr_from_mse(float(np.mean((out - target64) ** 2)), data_range=data_range)

    best, value, evaluated = search(objective, grid, **search_plan(filter_name, refine_steps))
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
