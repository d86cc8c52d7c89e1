"""2-D parallel-beam CT: forward projection (Radon transform) and filtered back-projection.

The geometry is scikit-image's (``skimage.transform.radon`` with ``circle=False``), described in
:mod:`lowdose.physics.ray_matrix`, whose cached sparse matrices do the projection here; the
back-projection of :func:`fbp_2d` is a cached sparse matrix too (two entries per pixel and view).
Results agree with scikit-image to float32 rounding.

Units: a sinogram value is image value x pixel length (``mu`` in 1/pixel gives dimensionless line
integrals; ``mu`` in 1/mm needs a multiplication by the pixel size in mm).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.astra_fbp import astra_fbp, import_astra
from lowdose.physics.ray_matrix import n_detectors_for, project_stack, views_per_chunk

if TYPE_CHECKING:  # scipy.sparse costs ~0.3 s: imported where a matrix is built
    pass

FBP_FILTERS = ("hann", "ramp", "shepp-logan")
"""FBP kernels: the ramp windowed by Hann (default, smoothest), the bare ramp (sharpest, noisiest)
and Shepp-Logan (ramp x sinc, between the two; scikit-image's definitions)."""


def _as_stack(image: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    array = np.asarray(image)
    if array.ndim not in (2, 3) or min(array.shape) < 1:
        raise LowdoseInputError(
            f"{name} has shape {array.shape}: pass one 2-D array (H, W) or a stack (B, H, W)"
        )
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{name} contains NaN or inf: clean or mask the input first")
    return (array[None] if array.ndim == 2 else array), array.ndim == 2


def _angles_rad(angles_deg, n_expected: int | None = None) -> np.ndarray:
    angles = np.asarray(angles_deg, dtype=np.float64).ravel()
    if angles.size == 0 or not np.all(np.isfinite(angles)):
        raise LowdoseInputError("angles_deg is empty or not finite: pass e.g. numpy.arange(180)")
    if n_expected is not None and angles.size != n_expected:
        raise LowdoseInputError(
            f"angles_deg has {angles.size} angles but the sinogram has {n_expected} rows: "
            "pass the angles the sinogram was made with"
        )
    return np.deg2rad(angles)


def radon_2d(image: np.ndarray, angles_deg) -> np.ndarray:
    """Parallel-beam forward projection (sinogram) of a 2-D image or a stack of them.

    Parameters
    ----------
    image
        (H, W) or (B, H, W) real array, e.g. ``mu`` in 1/pixel; not modified. Anything in the
        image is projected (the detector covers the full diagonal).
    angles_deg
        (A,) projection angles in degrees.

    Returns
    -------
    numpy.ndarray
        (A, n_det) float32 sinogram, or (B, A, n_det) for a stack, with
        ``n_det = ceil(sqrt(2) * max(H, W))``; unit = image value x pixel length.

    Examples
    --------
    >>> import numpy as np
    >>> sino = radon_2d(np.ones((8, 8)), [0.0, 90.0])
    >>> sino.shape, round(float(sino[0].sum()), 3)
    ((2, 12), 64.0)
    """
    stack, single = _as_stack(image, "image")
    theta = _angles_rad(angles_deg)
    n_det = n_detectors_for(stack.shape[1:])
    sino = project_stack(stack, theta, n_det=n_det).transpose(1, 0, 2)  # (B, A, n_det)
    return np.ascontiguousarray(sino[0] if single else sino)


def _filter_response(n_padded: int, filter_name: str) -> np.ndarray:
    # The ramp from the Fourier transform of its band-limited spatial kernel (Kak & Slaney eq. 61):
    # no DC bias, unlike a sampled |f|. Same definition as scikit-image.
    n = np.concatenate((np.arange(1, n_padded / 2 + 1, 2), np.arange(n_padded / 2 - 1, 0, -2)))
    kernel = np.zeros(n_padded)
    kernel[0] = 0.25
    kernel[1::2] = -1 / (np.pi * n) ** 2
    response = 2 * np.real(np.fft.fft(kernel))
    if filter_name == "hann":
        response *= np.fft.fftshift(np.hanning(n_padded))
    elif filter_name == "shepp-logan":  # ramp x sinc: 2/pi of the ramp at Nyquist, Hann's is 0
        omega = np.pi * np.fft.fftfreq(n_padded)[1:]
        response[1:] *= np.sin(omega) / omega
    return response


def _output_hw(output_size) -> tuple[int, int]:
    size = (output_size, output_size) if np.isscalar(output_size) else tuple(output_size)
    if len(size) != 2 or min(int(v) for v in size) < 1:
        raise LowdoseInputError(f"output_size={output_size!r}: pass an int or (H, W) >= 1")
    return int(size[0]), int(size[1])


FBP_BACKENDS = ("builtin", "astra")
"""Who back-projects: the built-in sparse-matrix FBP (default, always there) or the ASTRA
toolbox (:mod:`lowdose.physics.astra_fbp`, ``lowdose[astra]``; on a GPU when one is visible)."""


def check_backend(backend: str) -> None:
    """Refuse, in one line, a back-end that is not one of :data:`FBP_BACKENDS` or not installed.

    Raises
    ------
    LowdoseInputError
        An unknown name, or ``"astra"`` without the ASTRA toolbox installed.
    """
    if backend not in FBP_BACKENDS:
        raise LowdoseInputError(f"--backend {backend}: use one of {', '.join(FBP_BACKENDS)}")
    if backend == "astra":
        import_astra()


def fbp_2d(
    sinogram: np.ndarray,
    angles_deg,
    *,
    output_size,
    filter_name: str = "hann",
    backend: str = "builtin",
) -> np.ndarray:
    """Filtered back-projection, the inverse of :func:`radon_2d`.

    Parameters
    ----------
    sinogram
        (A, n_det) or (B, A, n_det) real array from :func:`radon_2d` (or noisy versions of it).
    angles_deg
        (A,) angles in degrees, evenly spread over 180 or 360 degrees.
    output_size
        ``H`` (square) or ``(H, W)`` of the image that was projected.
    filter_name
        One of :data:`FBP_FILTERS`: ``"ramp"`` (exact, noisiest), ``"shepp-logan"`` (ramp x sinc)
        or ``"hann"`` (ramp x Hann window, smoothest).
    backend
        One of :data:`FBP_BACKENDS`; ``"astra"`` gives the same geometry and units.

    Returns
    -------
    numpy.ndarray
        (H, W) or (B, H, W) float32 image in the units of the projected image.
    """
    stack, single = _as_stack(sinogram, "sinogram")
    if filter_name not in FBP_FILTERS:
        raise LowdoseInputError(
            f"filter_name={filter_name!r} (--kernel): use one of {', '.join(FBP_FILTERS)}"
        )
    check_backend(backend)
    theta = _angles_rad(angles_deg, stack.shape[1])
    height, width = _output_hw(output_size)
    if backend == "astra":
        image = astra_fbp(stack, theta, (height, width), filter_name)
        return image[0] if single else image
    n_det = stack.shape[2]
    n_padded = max(64, int(2 ** np.ceil(np.log2(2 * n_det))))
    spectrum = np.fft.fft(stack.astype(np.float64), n=n_padded, axis=2)
    filtered = np.real(np.fft.ifft(spectrum * _filter_response(n_padded, filter_name), axis=2))
    image = _backproject(filtered[:, :, :n_det].astype(np.float32), theta, (height, width))
    image *= np.pi / (2 * len(theta))
    return image[0] if single else image


def _backproject(filtered: np.ndarray, theta: np.ndarray, shape_hw) -> np.ndarray:
    n_slices, n_angles, n_det = filtered.shape
    columns = np.ascontiguousarray(filtered.transpose(1, 2, 0))  # (A, n_det, B)
    chunk = views_per_chunk(2 * shape_hw[0] * shape_hw[1])
    if chunk >= n_angles:
        matrix = _cached_backprojection(tuple(shape_hw), theta.tobytes(), n_det)
        image = matrix @ columns.reshape(-1, n_slices)
    else:
        image = sum(
            _backprojection_matrix(shape_hw, theta[i : i + chunk], n_det)
            @ columns[i : i + chunk].reshape(-1, n_slices)
            for i in range(0, n_angles, chunk)
        )
    return np.ascontiguousarray(image.T.reshape(n_slices, *shape_hw), dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _cached_backprojection(shape_hw, angles_bytes: bytes, n_det: int):
    return _backprojection_matrix(shape_hw, np.frombuffer(angles_bytes, dtype=np.float64), n_det)


def _backprojection_matrix(shape_hw, theta: np.ndarray, n_det: int):
    # Each pixel reads its detector position t on every view with linear interpolation and zero
    # outside the detector: two entries per pixel and view, so rows are built already sorted.
    import scipy.sparse

    height, width = shape_hw
    rows = np.arange(height)[:, None, None] - height // 2
    cols = np.arange(width)[None, :, None] - width // 2
    t = cols * np.cos(theta) - rows * np.sin(theta) + n_det // 2  # (H, W, A) in bins
    i0 = np.floor(t)
    frac = (t - i0).astype(np.float32)
    i0 = i0.astype(np.int64)
    view = np.arange(len(theta)) * n_det
    index = np.stack([i0, i0 + 1], -1)  # (H, W, A, 2)
    weight = np.stack([1 - frac, frac], -1)
    weight[(index < 0) | (index >= n_det)] = 0.0
    index = np.clip(index, 0, n_det - 1) + view[:, None]
    indptr = np.arange(height * width + 1, dtype=np.int64) * (2 * len(theta))
    shape = (height * width, len(theta) * n_det)
    return scipy.sparse.csr_array((weight.ravel(), index.ravel().astype(np.int32), indptr), shape)
