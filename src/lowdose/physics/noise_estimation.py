"""What two noisy acquisitions of one object say without a clean image.

Model: ``y_k = x + n_k`` with noise ``n_k`` independent between acquisitions, zero mean, equal
variance ``s2``. Then the difference ``d = y_1 - y_2 = n_1 - n_2`` holds no trace of the object and
``Var(d) / 2 = s2``; and the sum and the difference are uncorrelated (independent if Gaussian), so
choosing pixels by the *pair mean* does not bias the variance of the difference.

Same-object test (:func:`same_object_statistics`, :func:`check_same_object`):

1. **The difference holds no anatomy.** Noise of a CT or X-ray image is correlated over a few
   pixels at most, anatomy over tens. The mean of the lag-:data:`LAG_PX` autocorrelations of ``d``
   (rows and columns) must stay below :data:`MAX_DIFFERENCE_LAG_CORR`. Measured on the shared
   TCGA slices: 0.00 for white noise, 0.02 for sinogram-Poisson FBP noise; >= 0.47 for 531 pairs
   of slices of different patients, 0.46 for a 5 % intensity-scale mismatch.
2. **The pair shares content.** The correlation of the two images after a Gaussian blur of
   ``sigma = 4`` px (which averages independent noise away) must exceed
   :data:`MIN_COARSE_CORR` (matched pairs: >= 0.89 even at 2000 HU white noise).

Noise variance (:func:`pair_noise_variance`): ``Var(y_i - y_j) / 2`` averaged over all pairs
``i < j`` of realisations, leaving out pixels that carry no noise: those whose pair mean is within
3 noise standard deviations of the lowest or highest value of the pair (scanner clip floors,
padding outside the field of view), and those in a 3x3 block where both realisations agree exactly
(constant fill anywhere in the value range; independent noise never does that).
"""

from __future__ import annotations

import itertools

import numpy as np

from lowdose.core.errors import LowdoseInputError

LAG_PX = 8
MAX_DIFFERENCE_LAG_CORR = 0.15
MIN_COARSE_CORR = 0.5
COARSE_SIGMA_PX = 4.0
_MAD_TO_SD = 1.4826
_MIN_PIXELS = 64


def same_object_statistics(first, second) -> dict[str, float]:
    """The two statistics of the same-object test for one pair of (H, W) images.

    Returns
    -------
    dict
        ``difference_lag_corr`` (mean lag-8 autocorrelation of ``first - second``; ~0 for a true
        pair), ``coarse_corr`` (correlation after a sigma-4 blur), ``corr`` (plain correlation).
    """
    from scipy import ndimage  # heavy (~0.5 s): keeps `lowdose --help` fast

    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    diff = a - b
    diff -= diff.mean()
    power = float(np.mean(diff * diff))
    if power == 0.0:
        lag_corr = 0.0  # identical images: no difference at all, certainly no anatomy in it
    else:
        rows = np.mean(diff[LAG_PX:] * diff[:-LAG_PX]) if diff.shape[0] > LAG_PX else 0.0
        cols = np.mean(diff[:, LAG_PX:] * diff[:, :-LAG_PX]) if diff.shape[1] > LAG_PX else 0.0
        lag_corr = float((rows + cols) / 2 / power)
    coarse = _corr(
        ndimage.gaussian_filter(a, COARSE_SIGMA_PX), ndimage.gaussian_filter(b, COARSE_SIGMA_PX)
    )
    return {"difference_lag_corr": lag_corr, "coarse_corr": coarse, "corr": _corr(a, b)}


def check_same_object(first, second, name_first: str, name_second: str) -> dict[str, float]:
    """Raise one line naming both files unless the pair passes the same-object test."""
    stats = same_object_statistics(first, second)
    if stats["difference_lag_corr"] > MAX_DIFFERENCE_LAG_CORR:
        raise LowdoseInputError(
            f"{name_first} and {name_second} do not show the same object: their difference "
            f"has structure (lag-{LAG_PX} correlation {stats['difference_lag_corr']:.2f} > "
            f"{MAX_DIFFERENCE_LAG_CORR}); check the pairing (--match) and the intensity units"
        )
    if not stats["coarse_corr"] > MIN_COARSE_CORR:
        raise LowdoseInputError(
            f"{name_first} and {name_second} share no content (blurred correlation "
            f"{stats['coarse_corr']:.2f} <= {MIN_COARSE_CORR}); pair acquisitions of one object"
        )
    return stats


def pair_noise_variance(realisations) -> tuple[float, int]:
    """Noise variance of one image from its N >= 2 independent realisations.

    Parameters
    ----------
    realisations : array_like (N, H, W)
        The same object acquired N times, any real units.

    Returns
    -------
    variance : float
        Mean over pairs ``i < j`` of ``Var(y_i - y_j) / 2`` (units squared) on the kept pixels.
    n_pixels : int
        Pixels kept per pair (see the module docstring); all pixels when fewer than 64 remain.
    """
    stack = np.asarray(realisations, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] < 2:
        raise LowdoseInputError(f"realisations have shape {stack.shape}; pass (N >= 2, H, W)")
    low, high = stack.min(), stack.max()
    values, kept = [], []
    for i, j in itertools.combinations(range(stack.shape[0]), 2):
        diff, mean = stack[i] - stack[j], (stack[i] + stack[j]) / 2
        fill = noise_free_mask(stack[i], stack[j])
        inside = (np.minimum(stack[i], stack[j]) > low) & (np.maximum(stack[i], stack[j]) < high)
        inside &= ~fill
        sample = diff[inside] if inside.sum() >= _MIN_PIXELS else diff.ravel()
        sigma = _MAD_TO_SD * np.median(np.abs(sample - np.median(sample))) / np.sqrt(2)
        keep = (mean > low + 3 * sigma) & (mean < high - 3 * sigma) & ~fill
        chosen = diff[keep] if keep.sum() >= _MIN_PIXELS else diff.ravel()
        values.append(np.var(chosen, ddof=1) / 2)
        kept.append(chosen.size)
    return float(np.mean(values)), int(min(kept))


def noise_free_mask(first, second) -> np.ndarray:
    """Pixels where two realisations agree exactly over a whole 3x3 block: (H, W) bool.

    Independent noise never does that; constant fill (padding, clipping, masked regions) does, and
    there the stored value is the same in every acquisition, so it carries no noise.
    """
    from scipy import ndimage  # heavy (~0.5 s): keeps `lowdose --help` fast

    same = np.asarray(first) == np.asarray(second)
    return ndimage.binary_opening(same, structure=np.ones((3, 3), bool))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denominator) if denominator > 0 else 0.0


_IMMERKAER_KERNEL = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_IMMERKAER_NORM = 6.0  # sqrt of the sum of squared weights: white noise sigma -> 6 sigma
SINGLE_IMAGE_SIGMA_RULE = (
    "Immerkaer: 1.4826 median|[[1,-2,1],[-2,4,-2],[1,-2,1]] * y| / 6 over non-flat pixels"
)


def single_image_noise_sigma(image) -> float:
    """Standard deviation of pixel-independent noise from ONE (H, W) image, no second realisation.

    Immerkaer's (1996) estimator made robust: the image is filtered with
    ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]``, the difference of two Laplacians, which cancels
    constants, ramps and most smooth structure and passes white noise of standard deviation
    sigma as noise of standard deviation 6 sigma; sigma is ``1.4826 median|response| / 6`` (the
    median ignores the few pixels on edges). Interior pixels whose 3x3 neighbourhood is constant
    (padding outside the field of view, clip floors) carry no noise and are left out. Noise
    correlated over neighbouring pixels (reconstructed CT) has less power at the highest
    frequencies and reads *low*: use a pair there.

    >>> rng = np.random.default_rng(0)
    >>> image = np.repeat([0.0, 100.0], 64)[None].repeat(128, 0) + rng.normal(0, 5, (128, 128))
    >>> abs(single_image_noise_sigma(image) / 5 - 1) < 0.05
    True

    Returns
    -------
    float
        In the image's units; 0.0 when no pixel varies.
    """
    from scipy import ndimage  # heavy (~0.5 s): keeps `lowdose --help` fast

    values = np.asarray(image, dtype=np.float64)
    if values.ndim != 2 or min(values.shape) < 3:
        raise LowdoseInputError(f"image of shape {values.shape}: pass one 2-D image >= 3x3")
    response = ndimage.correlate(values, _IMMERKAER_KERNEL, mode="mirror")
    spread = ndimage.maximum_filter(values, 3) - ndimage.minimum_filter(values, 3)
    varying = response[1:-1, 1:-1][spread[1:-1, 1:-1] > 0]  # interior: no mirrored borders
    if varying.size == 0:
        return 0.0
    return float(_MAD_TO_SD * np.median(np.abs(varying)) / _IMMERKAER_NORM)
