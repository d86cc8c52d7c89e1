"""The noise spectrum and level of ONE image: no second acquisition, no clean image.

The periodograms of small detrended patches whose spectra look like noise, not like anatomy
(:func:`single_image_noise_psd`, :func:`single_image_noise_sd`; for CT in HU measured in the
body: :func:`ct_noise_sd_hu`, :func:`ct_noise_psd`), in the convention of
:mod:`lowdose.physics.noise_spectrum` (``E |FFT2(noise)|^2``, unnormalised FFT). They feed BM3D's
spectrum when a user has one scan (``single-psd``) and the validity guard of ``lowdose denoise``.
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.noise_spectrum import psd_noise_variance

PATCH_PX = 8
"""Edge of the patches whose periodograms make a single-image spectrum: small enough that most
fit between the edges of anatomy at 1-1.5 mm pixels (a clean 16 px patch of a TCGA slice at
256^2 holds 2-10 HU of structure, an 8 px one less), which matters more than the frequency
resolution (FBP spectra are smooth on a 1/8 cycle/pixel grid)."""
PATCH_STEP_PX = 4
BODY_ABOVE_HU = -500.0
"""CT pixels above this (after a 2 px Gaussian) are inside the body: tissue, not air or lung."""
_KEEP_FRACTION = 0.5  # the half of the patches whose spectrum looks most like noise (see below)
_SELECTION_ROUNDS = 3
_MIN_PATCHES = 8


def single_image_noise_psd(image, *, inside=None, patch_px: int = PATCH_PX) -> np.ndarray:
    """Noise power spectrum of ONE image (no second scan, no clean image), correlated noise too.

    Method: every ``patch_px`` square patch (stride ``patch_px / 2``) lying wholly ``inside``
    loses its least-squares 2nd-order polynomial (smooth anatomy) and is weighted by a Hann
    window; its periodogram is taken. Patches that hold an edge or texture have spectra of
    another *shape* than the noise: each patch's deviance from the current noise shape (an
    exponential likelihood, scale-free) ranks the patches and the half that looks most like
    noise is kept (3 rounds, the shape re-estimated from the kept half). Ranking by shape and
    not by power does not prefer the quieter patches, so the level is not biased low. The shape
    is the mean of the kept spectra scaled to mean 1 each; the level the interquartile mean of
    their powers (robust to the louder ones by streaks and edges), divided by the fraction of a
    flat spectrum's power that the detrend keeps (0.95 at 8 px). The (p, p) spectrum is then
    resampled (bilinear, periodic, in frequency) onto the image's grid in this convention.

    Measured (benchmarks/noise_estimation.py, docs/results.md) on simulated sinogram-noise CT,
    ramp, Hann and Shepp-Logan kernels: median sd ratio 0.87-1.12 at 1/4 and 1/10 of full dose;
    1.06-1.45 at full dose, where fine anatomy and the TCGA slices' own scanner noise (7.6-10.9
    HU read on their noise-free FBP alone) count as noise; 0.91-1.06 of adjacent-slice
    references on a real Philips series. Below 1/p cycle/pixel the patches see nothing: noise
    whose spectrum peaks there (correlated over more than ~p/8 px, e.g. white noise blurred by a
    0.7 px Gaussian) reads low (0.85 at p = 8, 0.98 at p = 16): pass a larger ``patch_px`` for
    it. FBP noise, whose spectrum rises from ~0 at DC, is what the default is for.

    Parameters
    ----------
    image : ndarray (H, W), real
        One image in any units (HU for CT); not modified.
    inside : ndarray of bool (H, W), optional
        Where patches may lie (for CT the body: :func:`body_mask_hu`); pixels in a constant 3x3
        block (padding, clip floors) are always left out.
    patch_px : int
        Patch edge in pixels, >= 4.

    Returns
    -------
    ndarray (H, W) float64
        ``E |FFT2(noise)|^2`` as :func:`pair_noise_psd` gives it (DC at ``[0, 0]``;
        ``psd.mean() / (H W)`` is the per-pixel noise variance, units squared).

    Raises
    ------
    LowdoseInputError
        Not a finite 2-D image, a bad ``inside`` or ``patch_px``, or fewer than 8 patches inside.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> psd = single_image_noise_psd(rng.normal(0.0, 3.0, (96, 96)))
    >>> bool(0.9 < psd_noise_variance(psd) / 9.0 < 1.05)
    True
    """
    values = _checked_image(image, "single_image_noise_psd")
    spectrum = _patch_spectrum(values, inside, patch_px)  # (p, p), this convention at p x p
    return _resampled(spectrum, values.shape)


def single_image_noise_sd(image, *, inside=None, patch_px: int = PATCH_PX) -> float:
    """Per-pixel noise sd of ONE image, in its units: ``sqrt(psd_noise_variance(psd))`` of
    :func:`single_image_noise_psd` (same arguments, same errors), without the resampling.

    >>> rng = np.random.default_rng(1)
    >>> bool(abs(single_image_noise_sd(rng.normal(0.0, 2.0, (64, 64))) / 2.0 - 1) < 0.06)
    True
    """
    values = _checked_image(image, "single_image_noise_sd")
    return float(np.sqrt(psd_noise_variance(_patch_spectrum(values, inside, patch_px))))


def body_mask_hu(image_hu, *, inside=None) -> np.ndarray:
    """Where a CT slice shows the body's tissue: (H, W) bool.

    Pixels whose 2 px Gaussian-smoothed value is above :data:`BODY_ABOVE_HU` (-500 HU: fat,
    soft tissue, bone; not air or lung), within ``inside`` (the field of view) when given. FBP
    noise is larger inside the body than in the air around it, and the body is where it matters.
    """
    from scipy import ndimage  # heavy (~0.5 s): keeps `lowdose --help` fast

    values = _checked_image(image_hu, "body_mask_hu")
    body = ndimage.gaussian_filter(values, 2.0, mode="nearest") > BODY_ABOVE_HU
    return body if inside is None else body & _checked_mask(inside, values.shape)


def ct_noise_sd_hu(image_hu, *, inside=None) -> float:
    """Noise sd (HU) of one CT slice in its body: what validity ranges and ``lowdose denoise``
    read. :func:`single_image_noise_sd` over :func:`body_mask_hu` (within ``inside``, the field
    of view); over all of ``inside`` when fewer than 8 patches fit in the body; NaN when neither
    holds enough patches (a tiny or constant image)."""
    values = _checked_image(image_hu, "ct_noise_sd_hu")
    for region in (body_mask_hu(values, inside=inside), inside):
        try:
            return single_image_noise_sd(values, inside=region)
        except LowdoseInputError:  # too few patches in this region: try the next
            continue
    return float("nan")


def ct_noise_psd(image, image_hu, *, inside=None) -> np.ndarray:
    """Noise spectrum of one CT slice measured in its body, on ``image``'s own scale.

    The region rule of :func:`ct_noise_sd_hu` (the body of ``image_hu``, else the field of
    view ``inside``, else the whole image), the spectrum of :func:`single_image_noise_psd`.

    Parameters
    ----------
    image : ndarray (H, W) float
        The slice on the scale the spectrum is wanted in (a dataset's scale, say).
    image_hu : ndarray (H, W) float
        The same slice in HU (finds the body).
    inside : ndarray (H, W) bool, optional
        The field of view.

    Returns
    -------
    ndarray (H, W) float64
    """
    hu = _checked_image(image_hu, "ct_noise_psd")
    for region in (body_mask_hu(hu, inside=inside), inside, None):
        try:
            return single_image_noise_psd(image, inside=region)
        except LowdoseInputError:  # too few patches in this region: try the next
            if region is None:
                raise
    raise AssertionError("unreachable")  # the last region re-raises


def _patch_spectrum(values: np.ndarray, inside, patch_px: int) -> np.ndarray:
    """The (p, p) noise spectrum of the module docstring's convention at p x p pixels."""
    from scipy import ndimage  # heavy (~0.5 s): keeps `lowdose --help` fast

    p = int(patch_px)
    if p < 4 or min(values.shape) < p:
        raise LowdoseInputError(f"patch_px={patch_px}: pass >= 4 and <= the image's shorter side")
    spread = ndimage.maximum_filter(values, 3) - ndimage.minimum_filter(values, 3)
    usable = spread > 0  # constant 3x3 blocks (padding, clip floors) carry no noise
    if inside is not None:
        usable &= _checked_mask(inside, values.shape)
    step = max(1, p // 2)
    windows = np.lib.stride_tricks.sliding_window_view
    whole = windows(usable, (p, p))[::step, ::step].all(axis=(-2, -1))  # (Y, X)
    patches = windows(values, (p, p))[::step, ::step][whole].reshape(-1, p * p)  # (N, p*p)
    if len(patches) < _MIN_PATCHES:
        raise LowdoseInputError(
            f"only {len(patches)} patches of {p}x{p} px lie inside the image's noisy region; "
            f"need {_MIN_PATCHES}: pass a larger region (inside=) or a smaller patch_px"
        )
    basis = _polynomial_basis(p)  # (p*p, 6)
    residual = patches - (patches @ basis) @ basis.T  # orthonormal basis: least-squares detrend
    taper = _taper(p)
    tapered = residual.reshape(-1, p, p) * taper
    periodograms = np.abs(np.fft.fft2(tapered)) ** 2 * (p * p / np.sum(taper**2))  # (N, p, p)
    kept = periodograms[_noise_like(periodograms)]  # (K, p, p)
    power = kept.mean(axis=(1, 2))  # (K,) each patch's noise variance x p^2
    # shape: the mean of the kept spectra, each scaled to mean 1 (no patch outweighs another);
    # level: the interquartile mean of their powers (robust to louder patches by streaks, edges)
    shape = (kept / np.maximum(power, np.finfo(np.float64).tiny)[:, None, None]).mean(axis=0)
    low, high = np.percentile(power, [25.0, 75.0])
    middle = power[(power >= low) & (power <= high)]
    return shape * middle.mean() / _flat_spectrum_kept(p)


def _noise_like(periodograms: np.ndarray) -> np.ndarray:
    """Indices of the half of the (N, p, p) periodograms whose shape deviates least from noise.

    Deviance of a patch from the shape ``N`` at its own scale ``a``: the mean over bins of
    ``x - 1 - log x`` with ``x = P / (a N)``, the exponential likelihood ratio of the periodogram
    bins; it does not depend on the patch's power, only on its shape.
    """
    floor = np.finfo(np.float64).tiny  # a patch without any power (an exact polynomial) ranks last
    normalised = periodograms / np.maximum(periodograms.mean(axis=(1, 2), keepdims=True), floor)
    shape = np.median(normalised, axis=0)
    count = max(_MIN_PATCHES, int(np.ceil(_KEEP_FRACTION * len(periodograms))))
    for _ in range(_SELECTION_ROUNDS):
        ratio = normalised / np.maximum(shape, floor)
        ratio = np.maximum(ratio / np.maximum(ratio.mean(axis=(1, 2), keepdims=True), floor), floor)
        deviance = (ratio - 1.0 - np.log(ratio)).mean(axis=(1, 2))
        kept = np.argsort(deviance, kind="stable")[:count]
        shape = normalised[kept].mean(axis=0)
    return kept


def _flat_spectrum_kept(p: int) -> float:
    """Fraction of a white noise's power that the detrend and window keep (~0.95 at p = 8).

    ``E sum w^2 r^2 / sum w^2`` for white noise of unit variance, ``r`` the residual of the
    least-squares polynomial fit: ``1 - sum_x w_x^2 H_xx / sum w^2`` with ``H`` the fit's hat
    matrix; the level is divided by it so white noise reads right.
    """
    taper = _taper(p).ravel() ** 2
    basis = _polynomial_basis(p)
    return float(1.0 - np.sum(taper * np.sum(basis**2, axis=1)) / np.sum(taper))


def _taper(p: int) -> np.ndarray:
    """(p, p) Hann window without its zero edge."""
    return np.outer(np.hanning(p + 2)[1:-1], np.hanning(p + 2)[1:-1])


def _polynomial_basis(p: int) -> np.ndarray:
    """Orthonormal (p*p, 6) basis of the 2nd-order polynomials on a p x p patch."""
    y, x = np.mgrid[0:p, 0:p] / (p - 1) - 0.5
    design = np.stack([np.ones_like(x), y, x, y * y, x * x, x * y], axis=-1).reshape(p * p, 6)
    return np.linalg.qr(design)[0]


def _resampled(spectrum: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (p, p) spectrum on the (H, W) grid: bilinear in frequency, periodic, level kept."""
    from scipy import ndimage  # heavy (~0.5 s): keeps `lowdose --help` fast

    p = spectrum.shape[0]
    height, width = shape
    rows = (np.fft.fftfreq(height) * p) % p  # each (H, W) frequency in p-grid bins
    cols = (np.fft.fftfreq(width) * p) % p
    coords = np.meshgrid(rows, cols, indexing="ij")
    psd = ndimage.map_coordinates(spectrum, coords, order=1, mode="grid-wrap")  # (H, W)
    # the per-pixel variance is the patch spectrum's: mean(psd) / (H W) == mean(spectrum) / p^2
    return psd * (spectrum.mean() * height * width / (p * p)) / max(psd.mean(), 1e-300)


def _checked_image(image, name: str) -> np.ndarray:
    values = np.array(image, dtype=np.float64)  # a copy: the caller's array is never touched
    if values.ndim != 2 or not np.all(np.isfinite(values)):
        raise LowdoseInputError(f"{name}: pass one finite 2-D image, got shape {values.shape}")
    return values


def _checked_mask(inside, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(inside)
    if mask.shape != shape:
        raise LowdoseInputError(f"inside has shape {mask.shape}; the image has {shape}")
    return mask.astype(bool)
