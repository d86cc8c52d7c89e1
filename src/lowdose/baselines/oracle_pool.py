"""The per-image oracle search of :func:`lowdose.baselines.tuning.tune_oracle`, in chunks.

One chunk of images is searched in one process (:func:`oracle_chunk`); :func:`oracle_in_pool`
spreads chunks over a spawn process pool, one OpenCV thread per worker, results in image order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from lowdose.baselines.filters import get_filter
from lowdose.baselines.search import SearchPlan, search
from lowdose.core.metrics import psnr
from lowdose.core.progress import StageCounter

_CHUNKS_PER_WORKER = 4  # smaller tasks balance the pool when images differ in cost


def oracle_chunk(noisy, clean, filter_name, grid, plan: SearchPlan, data_range):
    """Oracle search of a chunk of images (runs in a pool worker or in-process).

    Parameters
    ----------
    noisy, clean : ndarray (B, H, W) float
        Filter inputs and their clean references, same scale.
    filter_name : str
    grid : dict name -> tuple
        The resolved grid (:func:`lowdose.baselines.plans.resolve_grid`).
    plan : SearchPlan
    data_range : float
        PSNR data range.

    Returns
    -------
    list of (best_params, best_psnr_db, evaluated)
        One :func:`lowdose.baselines.search.search` result per image, in order.
    """
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


def oracle_in_pool(noisy, clean, args: tuple, workers: int, counter: StageCounter) -> list:
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
        futures = [pool.submit(oracle_chunk, n, c, *args) for n, c in chunks]
        for future, (chunk, _) in zip(futures, chunks, strict=True):
            results += future.result()
            counter.advance(len(chunk))
    return results
