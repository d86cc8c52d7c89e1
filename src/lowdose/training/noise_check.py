"""Before a single-acquisition training: is the training data's noise pixel-independent?

Neighbor2Neighbor and Noise2Void predict a pixel from its neighbours; where the noise of the
neighbours is correlated with the pixel's own (FBP reconstructions, detector blur, resampled
images), the network learns that noise as signal and keeps it. :func:`warn_if_correlated` logs
one warning line (the CLI shows it) before such a run starts. It reads the estimate a dataset
builder recorded in the file's attributes (:meth:`NoiseCorrelation.from_attrs`) and measures it
from the training split's noisy images when the file has none (never reading ``clean``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lowdose.core.noise_correlation import NoiseCorrelation, measure_noise_correlation
from lowdose.data.dataset import open_dataset, read_info, split_index
from lowdose.training.config import SINGLE_ACQUISITION_MODES

log = logging.getLogger("lowdose.training.run")

MAX_IMAGES = 16


def training_noise_correlation(path: str | Path) -> NoiseCorrelation:
    """The dataset's recorded noise correlation, or one measured on its ``train`` split.

    Parameters
    ----------
    path : str or Path
        Dataset file. When its attributes lack the ``noise_corr_*`` keys, up to
        :data:`MAX_IMAGES` training images (evenly spread, realisations 0 and 1 if present) are
        read and measured with :func:`lowdose.core.noise_correlation.measure_noise_correlation`.
    """
    info = read_info(path)
    recorded = NoiseCorrelation.from_attrs(info.attrs.extra)
    if recorded is not None:
        return recorded
    rows = split_index(info, "train")
    if len(rows) == 0:
        rows = np.arange(info.shape[0])  # no train split: any noisy image tells the noise
    chosen = np.unique(rows[np.linspace(0, len(rows) - 1, min(MAX_IMAGES, len(rows))).astype(int)])
    with open_dataset(path) as handle:
        noisy = handle["noisy"][chosen, : min(2, info.shape[1])]  # (I, N <= 2, H, W)
    return measure_noise_correlation(noisy, max_images=MAX_IMAGES)


def warn_if_correlated(path: str | Path, mode: str) -> NoiseCorrelation | None:
    """Log a warning when ``mode`` assumes pixel-independent noise and the data's is correlated.

    Returns the correlation for single-acquisition modes (nb2nb, n2v), None for the others
    (which do not read it: Noise2Noise needs independence between realisations, not pixels).
    """
    if mode not in SINGLE_ACQUISITION_MODES:
        return None
    correlation = training_noise_correlation(path)
    if correlation.is_correlated:
        log.warning(
            "%s: noise is spatially correlated (lag-1 %.2f): %s assumes pixel-independent noise; "
            "use two acquisitions (dataset from-repeats, mode n2n) or a split sinogram "
            "(dataset from-sinogram)",
            path,
            correlation.max_abs,
            mode,
        )
    return correlation
