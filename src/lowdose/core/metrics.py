"""Image quality metrics with an explicit ``data_range``: PSNR and SSIM, one value per image.

``data_range`` is always a required keyword: it is never guessed from the dtype or from the
images (scikit-image guesses 1 or 255 from the dtype, which silently changes the numbers). On the
paper's scaling (X-ray: each image divided by its clean maximum; CT: by the dataset maximum) it
is 1.0.

A 2-D pair ``(H, W)`` gives a Python ``float``; a stack ``(B, H, W)`` gives ``ndarray (B,)``
float64, one value per image (the mean over a test set is then an explicit, visible step).
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError

# Images are converted to float64 a few at a time so a large stack never doubles in memory.
_CHUNK_PIXELS = 1 << 24
HU_WINDOW = (-1000.0, 1000.0)
"""The default CT window for HU-window PSNR (data range 2000 HU)."""
HU_SOFT_TISSUE_WINDOW = (-160.0, 240.0)
"""The soft-tissue CT window (level 40 HU, width 400 HU) of the soft-tissue PSNR."""


def psnr(reference, estimate, *, data_range) -> float | np.ndarray:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / MSE)`` in dB, per image.

    Parameters
    ----------
    reference, estimate : array_like, shape (H, W) or (B, H, W)
        Clean reference and the image under test, same shape, any real dtype. The reference
        must be finite; a non-finite estimate (a diverged network) gives NaN, not an error.
    data_range : float or array_like of shape (B,)
        Peak value range of the reference scale (1.0 on the paper's scaling), > 0. Required.

    Returns
    -------
    float or ndarray (B,) float64
        PSNR in dB; ``inf`` where the two images are identical. The squared error is summed in
        float64, matching ``skimage.metrics.peak_signal_noise_ratio`` to ~1e-12 dB.

    Examples
    --------
    >>> import numpy as np
    >>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1), data_range=1.0), 6)
    20.0
    """
    ref, est, batched = checked_image_pair(reference, estimate, "psnr")
    dr = checked_data_range(data_range, ref.shape[0])
    mse = np.empty(ref.shape[0], dtype=np.float64)
    step = max(1, _CHUNK_PIXELS // (ref.shape[1] * ref.shape[2]))
    for start in range(0, ref.shape[0], step):
        diff = ref[start : start + step].astype(np.float64) - est[start : start + step]
        mse[start : start + step] = np.mean(diff * diff, axis=(1, 2))
    values = psnr_from_mse(mse, data_range=dr)
    return values if batched else float(values[0])


def psnr_from_mse(mse, *, data_range) -> float | np.ndarray:
    """PSNR in dB from a mean squared error: ``10 log10(data_range**2 / mse)``.

    The one place lowdose turns an MSE into a PSNR (metrics, filter tuning, clean-free pair
    scores, report panels): ``inf`` for ``mse == 0``, NaN for a NaN or negative ``mse`` (an
    unbiased MSE estimate can come out negative when the signal error is below the noise).

    Parameters
    ----------
    mse : float or array_like
        Mean squared error on the scale of ``data_range``.
    data_range : float or array_like
        Peak value range (> 0), broadcast against ``mse``. Required.

    Returns
    -------
    float or ndarray float64
        A float for scalar input, else an array of ``mse``'s shape.

    Examples
    --------
    >>> psnr_from_mse(0.01, data_range=1.0)
    20.0
    >>> psnr_from_mse(0.0, data_range=1.0)
    inf
    """
    mse_arr = np.asarray(mse, dtype=np.float64)
    dr = np.asarray(data_range, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(mse_arr >= 0, 10.0 * np.log10(dr * dr / mse_arr), np.nan)
    return float(values) if values.ndim == 0 else values


def pair_noise_variance_all_pixels(first, second, *, inside=None) -> np.ndarray:
    """Per-image noise variance of one realisation from a pair: ``Var(y1 - y2) / 2``.

    With ``y_k = x + n_k``, ``n_1`` and ``n_2`` independent, zero-mean and of equal variance,
    ``y1 - y2 = n1 - n2`` holds no object, so half its variance is the noise variance of one
    realisation (mean over pixels for signal-dependent noise). Every pixel counts, so the value
    matches a mean squared error over the whole image (the unbiased MSE needs exactly that).

    Parameters
    ----------
    first, second : array_like (B, H, W) or (H, W)
        Two independent realisations of the same images, same units.
    inside : array_like bool, same shape, optional
        Only these pixels count (the scanner's field of view: padding carries no noise).

    Returns
    -------
    ndarray (B,) float64
        Units squared; sample variance over the pixels (ddof 1).
    """
    y1, y2, _ = checked_image_pair(first, second, "pair_noise_variance_all_pixels")
    return _per_image(np.var, y1.astype(np.float64) - y2, inside, ddof=1) / 2.0


def unbiased_mse(other_realisation, estimate, *, noise_variance, inside=None) -> np.ndarray:
    """Unbiased estimate of ``MSE(estimate, clean)`` from an independent noisy reference.

    ``E|f(y1) - y2|^2 = E|f(y1) - x|^2 + sigma^2`` when ``y2 = x + n2`` with ``n2`` zero-mean and
    independent of ``y1`` (and so of ``f(y1)``); hence ``uMSE = mean((f(y1) - y2)^2) - sigma^2``
    with ``sigma^2`` from :func:`pair_noise_variance_all_pixels`. No clean image is read. The
    value can be negative when the error is below what the pair resolves.

    Parameters
    ----------
    other_realisation : array_like (B, H, W) or (H, W)
        ``y2``, the realisation *not* given to the denoiser.
    estimate : array_like, same shape
        ``f(y1)``.
    noise_variance : float or array_like (B,)
        ``sigma^2`` of one realisation, units squared (measured over the same pixels).
    inside : array_like bool, same shape, optional
        Only these pixels count (as in :func:`pair_noise_variance_all_pixels`).

    Returns
    -------
    ndarray (B,) float64
    """
    ref, est, _ = checked_image_pair(other_realisation, estimate, "unbiased_mse")
    mse = _per_image(np.mean, (est.astype(np.float64) - ref) ** 2, inside)
    return mse - np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), mse.shape)


def upsnr(other_realisation, estimate, *, noise_variance, data_range) -> np.ndarray:
    """Pair-based unbiased PSNR estimate in dB per image: ``10 log10(data_range^2 / uMSE)``.

    ``uMSE`` is :func:`unbiased_mse`; NaN where it is <= 0 (below what the pair resolves).
    For a set of images, average the uMSE first (:func:`psnr_from_mse` of the mean): the mean
    of per-image uPSNRs is biased by the noise of each estimate.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((1, 256, 256))
    >>> y1, y2 = (x + rng.normal(0, 0.1, x.shape) for _ in range(2))
    >>> s2 = pair_noise_variance_all_pixels(y1, y2)
    >>> round(float(upsnr(y2, y1, noise_variance=s2, data_range=1.0)[0]), 1)  # true: 20 dB
    20.0
    """
    umse = unbiased_mse(other_realisation, estimate, noise_variance=noise_variance)
    return upsnr_from_umse(umse, data_range=checked_data_range(data_range, len(umse)))


def upsnr_from_umse(umse, *, data_range) -> float | np.ndarray:
    """uPSNR in dB from an unbiased MSE estimate: ``10 log10(data_range^2 / umse)``.

    NaN where ``umse <= 0``: an estimate at or below zero says the error is below what the pair
    resolves, not that the output is perfect. A float for scalar input, else an array.

    >>> upsnr_from_umse(0.01, data_range=1.0), upsnr_from_umse(-1e-4, data_range=1.0)
    (20.0, nan)
    """
    umse = np.asarray(umse, dtype=np.float64)
    return psnr_from_mse(np.where(umse > 0, umse, np.nan), data_range=data_range)


def psnr_hu_window(clean_hu, noisy_hu, window=HU_WINDOW) -> float | np.ndarray:
    """PSNR in an HU window: both images clipped to ``window``, data_range = its width (dB).

    Parameters
    ----------
    clean_hu, noisy_hu : array_like (B, H, W) or (H, W)
        HU images.
    window : (low, high)
        Window in HU (default -1000..1000, data range 2000).

    Examples
    --------
    >>> psnr_hu_window(np.zeros((2, 2)), np.full((2, 2), 20.0))
    40.0
    """
    low, high = window
    return psnr(np.clip(clean_hu, low, high), np.clip(noisy_hu, low, high), data_range=high - low)


def ssim(reference, estimate, *, data_range) -> float | np.ndarray:
    """Structural similarity index per image (scikit-image's definition and default window).

    Window convention: scikit-image's *default* ``structural_similarity`` — a 7 x 7 **uniform**
    window (``gaussian_weights=False``), sample covariance (``use_sample_covariance=True``),
    ``K1 = 0.01``, ``K2 = 0.03``, the mean taken over the valid interior (3-pixel border cropped).
    This is *not* the Gaussian-weighted variant (sigma 1.5) of Wang et al. 2004.

    Parameters
    ----------
    reference, estimate : array_like, shape (H, W) or (B, H, W)
        Same shape, H and W >= 7. The reference must be finite.
    data_range : float or array_like of shape (B,)
        Peak value range of the reference scale, > 0. Required.

    Returns
    -------
    float or ndarray (B,) float64
        SSIM in [-1, 1].
    """
    return _ssim_per_image(reference, estimate, data_range, "ssim", 7, {})


def ssim_wang(reference, estimate, *, data_range) -> float | np.ndarray:
    """SSIM per image as defined by Wang et al. (2004): Gaussian window, population statistics.

    Window convention: an 11 x 11 **Gaussian** window with sigma 1.5 pixels
    (``gaussian_weights=True, sigma=1.5``), population covariance
    (``use_sample_covariance=False``), ``K1 = 0.01``, ``K2 = 0.03``, the mean over the valid
    interior (5-pixel border cropped) — scikit-image's reproduction of the paper. It is a
    different number from :func:`ssim` (7 x 7 uniform window); never compare the two.

    Parameters
    ----------
    reference, estimate : array_like, shape (H, W) or (B, H, W)
        Same shape, H and W >= 11. The reference must be finite.
    data_range : float or array_like of shape (B,)
        Peak value range of the reference scale, > 0. Required.

    Returns
    -------
    float or ndarray (B,) float64
        SSIM in [-1, 1].

    Examples
    --------
    >>> image = np.linspace(0, 1, 256).reshape(16, 16)
    >>> ssim_wang(image, image, data_range=1.0)
    1.0
    """
    options = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    return _ssim_per_image(reference, estimate, data_range, "ssim_wang", 11, options)


def _ssim_per_image(reference, estimate, data_range, name: str, window: int, options: dict):
    """scikit-image's ``structural_similarity`` image by image, inputs checked, in float64."""
    from skimage.metrics import structural_similarity

    ref, est, batched = checked_image_pair(reference, estimate, name)
    if min(ref.shape[1:]) < window:
        raise LowdoseInputError(
            f"{name}: images of {ref.shape[1]}x{ref.shape[2]} pixels are smaller than the "
            f"{window}x{window} window; pass images of at least {window}x{window} pixels"
        )
    dr = checked_data_range(data_range, ref.shape[0])
    pairs = zip(ref, est, dr, strict=True)  # float64 one image at a time: no doubled stack
    values = np.array(
        [
            structural_similarity(
                r.astype(np.float64), e.astype(np.float64), data_range=float(d), **options
            )
            for r, e, d in pairs
        ],
        dtype=np.float64,
    )
    return values if batched else float(values[0])


def _per_image(reduce, values: np.ndarray, inside, **kwargs) -> np.ndarray:
    """``reduce`` over the pixels of each (B, H, W) image -> (B,), or over its ``inside`` only."""
    if inside is None:
        return reduce(values.reshape(len(values), -1), axis=1, **kwargs)
    masks = np.broadcast_to(np.asarray(inside, bool).reshape(-1, *values.shape[1:]), values.shape)
    return np.array([reduce(v[k], **kwargs) for v, k in zip(values, masks, strict=True)])


def checked_image_pair(reference, estimate, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate shapes and finiteness; return (B, H, W) views and whether the input was batched."""
    ref = np.asarray(reference)
    est = np.asarray(estimate)
    if ref.shape != est.shape:
        raise LowdoseInputError(
            f"{name}: reference shape {ref.shape} != estimate shape {est.shape}; "
            "pass images of the same shape"
        )
    if ref.ndim not in (2, 3) or ref.size == 0:
        raise LowdoseInputError(
            f"{name}: expected a non-empty (H, W) image or (B, H, W) stack, got shape {ref.shape}"
        )
    for label, array in (("reference", ref), ("estimate", est)):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise LowdoseInputError(f"{name}: {label} has dtype {array.dtype}; pass real numbers")
    if not np.all(np.isfinite(ref)):
        raise LowdoseInputError(f"{name}: reference contains NaN or Inf; pass a finite reference")
    batched = ref.ndim == 3
    if not batched:
        ref, est = ref[None], est[None]
    return ref, est, batched


def checked_data_range(data_range, n_images: int) -> np.ndarray:
    """Return data_range as a float64 array of shape (n_images,), checked positive and finite."""
    if data_range is None:
        raise LowdoseInputError("data_range is required (1.0 on the paper's scaling); pass it")
    dr = np.asarray(data_range, dtype=np.float64)
    if dr.ndim == 0:
        dr = np.full(n_images, float(dr))
    if dr.shape != (n_images,):
        raise LowdoseInputError(
            f"data_range has shape {dr.shape}; pass a scalar or one value per image ({n_images},)"
        )
    if not np.all(np.isfinite(dr) & (dr > 0)):
        raise LowdoseInputError(f"data_range must be finite and > 0, got {data_range!r}")
    return dr
