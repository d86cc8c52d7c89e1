"""Paired differences between two methods on the same test images, with cluster-bootstrap CIs.

Two methods scored on the same images are compared image by image: the per-image difference
removes the between-image spread that makes two separate confidence intervals overlap. Each
image's metric is first averaged over the method's seeds; the 95 % interval resamples whole
objects (:func:`lowdose.data.statistics.cluster_bootstrap_ci95`), because images of one object
are correlated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.results import with_defaults
from lowdose.data.statistics import cluster_bootstrap_ci95, image_seed_means


@dataclass(frozen=True)
class PairedDifference:
    """``method - reference`` on the images both were scored on.

    Attributes
    ----------
    method, reference : str
        Summary labels (:func:`lowdose.data.results.summary_label`), e.g. ``"bm3d (oracle)"``.
    metric : str
        The results column compared (``psnr_db``, ``upsnr_db``, ...).
    mean_db : float
        Mean over images of the per-image difference, in the metric's units (dB for PSNRs).
    ci_low_db, ci_high_db : float
        95 % cluster-bootstrap percentile interval over objects; NaN with one object.
    n_images, n_objects : int
        Images with a finite difference, and their distinct objects.
    n_seeds : int
        Distinct seeds of ``method``'s rows (1 for filters and the noisy input).
    """

    method: str
    reference: str
    metric: str
    mean_db: float
    ci_low_db: float
    ci_high_db: float
    n_images: int
    n_objects: int
    n_seeds: int


def paired_difference(
    results,
    method: str,
    reference: str,
    *,
    metric: str = "psnr_db",
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """Per-image ``method - reference`` of ``metric``, its mean and a cluster-bootstrap 95 % CI.

    Parameters
    ----------
    results : pandas.DataFrame
        A results table (docs/interfaces.md, "Results"); missing optional columns default as
        in :func:`lowdose.data.results.with_defaults`.
    method, reference : str
        Summary labels selecting the two groups of rows (``"n2n-mse (unet-w16-res)"``,
        ``"bm3d (oracle)"``, ``"noisy"``).
    metric : str
        A numeric results column.
    n_boot : int
        Bootstrap draws.
    seed : int
        Seed of the bootstrap's ``numpy.random.Generator``.

    Returns
    -------
    PairedDifference
        Images pair by ``(image_index, noise_level)``, whatever the row order; each side is
        first averaged over its seeds (finite values only). Images without a finite
        difference are left out; with none, ``mean_db`` is NaN.
    """
    frame = with_defaults(results)
    if metric not in frame:
        raise LowdoseInputError(f"results have no column {metric!r}; pass a numeric column")
    sides = []
    for label in (method, reference):
        rows = frame[frame["label"] == label]
        if rows.empty:
            labels = ", ".join(dict.fromkeys(frame["label"]))
            raise LowdoseInputError(f"no results rows labelled {label!r}; use one of: {labels}")
        sides.append(image_seed_means(rows, [metric]))
    joined = sides[0].join(sides[1][[metric]], rsuffix="_reference", how="inner")
    difference = (joined[metric] - joined[f"{metric}_reference"]).to_numpy()
    finite = np.isfinite(difference)
    objects = joined["object_id"].to_numpy()[finite]
    low, high = cluster_bootstrap_ci95(difference[finite], objects, n_boot=n_boot, seed=seed)
    return PairedDifference(
        method=method,
        reference=reference,
        metric=metric,
        mean_db=float(difference[finite].mean()) if finite.any() else float("nan"),
        ci_low_db=low,
        ci_high_db=high,
        n_images=int(finite.sum()),
        n_objects=len(set(objects)),
        n_seeds=int(frame.loc[frame["label"] == method, "seed"].nunique()),
    )


def paired_table(
    results, reference: str, *, metric: str = "psnr_db", n_boot: int = 2000, seed: int = 0
) -> list[PairedDifference]:
    """:func:`paired_difference` of every other label against ``reference``, in table order.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"method": ["noisy", "median"] * 2, "tuning": ["none", "oracle"] * 2,
    ...                       "image_index": [0, 0, 1, 1], "psnr_db": [20.0, 25.0, 21.0, 27.0]})
    >>> [(d.method, d.mean_db, d.n_images) for d in paired_table(table, "noisy")]
    [('median (oracle)', 5.5, 2)]
    """
    labels = dict.fromkeys(with_defaults(results)["label"])
    return [
        paired_difference(results, label, reference, metric=metric, n_boot=n_boot, seed=seed)
        for label in labels
        if label != reference
    ]
