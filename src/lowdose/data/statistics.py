"""Statistics over test images clustered by object and repeated over seeds.

Slices of one patient (projections of one phantom) are correlated, so intervals resample whole
objects (:func:`cluster_bootstrap_ci95`); a network trained with several seeds gives each image
one value per seed, averaged first (:func:`image_seed_means`). Used by
:func:`lowdose.data.results.summarize` and :mod:`lowdose.data.paired`.

>>> cluster_bootstrap_ci95([1.0, 1.0, 1.0], ["a", "b", "c"])
(1.0, 1.0)
"""

from __future__ import annotations

import math

import numpy as np


def image_seed_means(frame, columns: list[str]):
    """One row per image (``image_index``, ``noise_level``): each column's mean over seeds.

    Non-finite values are left out of the means (NaN where no seed has a finite value); the
    result keeps the image's ``object_id`` and is indexed by ``(image_index, noise_level)``.
    """
    values = frame[columns].astype(np.float64)
    values = values.where(np.isfinite(values))
    values[["image_index", "noise_level", "object_id"]] = frame[
        ["image_index", "noise_level", "object_id"]
    ]
    grouped = values.groupby(["image_index", "noise_level"], sort=False, dropna=False)
    return grouped.agg({**{c: "mean" for c in columns}, "object_id": "first"})


def cluster_bootstrap_ci95(values, clusters, *, n_boot: int = 2000, seed: int = 0):
    """95 % percentile interval of a mean over images, resampling whole objects (clusters).

    Images of one object (slices of one patient, projections of one phantom) are correlated,
    so they are resampled together: each of ``n_boot`` draws picks as many objects as there are,
    with replacement, and takes the mean over all images of the picked objects.

    Parameters
    ----------
    values : array_like (n,) float
        One finite value per image.
    clusters : array_like (n,)
        Each image's object id.
    n_boot : int
        Bootstrap draws.
    seed : int
        Seed of the ``numpy.random.Generator`` (the interval is reproducible).

    Returns
    -------
    (low, high) : tuple of float
        The 2.5th and 97.5th percentiles of the draws; both NaN with fewer than two objects
        (one object says nothing about the spread between objects).
    """
    values = np.asarray(values, dtype=np.float64)
    _, cluster = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    n_clusters = int(cluster.max()) + 1 if cluster.size else 0
    if n_clusters < 2:
        return math.nan, math.nan
    sums = np.bincount(cluster, weights=values, minlength=n_clusters)
    counts = np.bincount(cluster, minlength=n_clusters)
    draws = np.random.default_rng(seed).integers(0, n_clusters, size=(n_boot, n_clusters))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)  # (n_boot,)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)
