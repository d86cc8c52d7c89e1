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
    from skimage.metrics import structural_similarity

    ref, est, batched = checked_image_pair(reference, estimate, "ssim")
    if min(ref.shape[1:]) < 7:
        raise LowdoseInputError(
            f"ssim: images of {ref.shape[1]}x{ref.shape[2]} pixels are smaller than the 7x7 "
            "window; pass images of at least 7x7 pixels"
        )
    dr = checked_data_range(data_range, ref.shape[0])
    values = np.array(
        [
            structural_similarity(
                ref[b].astype(np.float64), est[b].astype(np.float64), data_range=float(dr[b])
            )
            for b in range(ref.shape[0])
        ],
        dtype=np.float64,
    )
    return values if batched else float(values[0])


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
