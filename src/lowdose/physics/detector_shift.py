"""Shifting sinograms along the detector by any (sub-pixel) amount.

Why a Fourier shift: it is all-pass, so it moves the rays without smoothing them. Linear or
spline interpolation would low-pass the noise by an amount that depends on the fractional part of
the shift (a half-pixel linear shift halves the noise variance), which changes the noise that a
Noise2Inverse model is trained on from one scan to the next.

The periodic wrap of the FFT is kept away from the data: each row is continued past both ends
with its edge value and the two edges are joined by a linear ramp outside the data, so what
shifts in is the edge value, without ringing from a jump at the wrap.
"""

from __future__ import annotations

import numpy as np

_PLATEAU_PX = 8  # edge values kept beyond the shift, so the ramp's slope never reaches the data
_RAMP_PX = 32  # length of the join between the two edges (a gentle slope rings little)


def shift_along_detector(rows, shift_px: float) -> np.ndarray:
    """Move every row's content by ``shift_px`` detector pixels: ``out[..., x] = in[..., x - s]``.

    Parameters
    ----------
    rows : array_like (..., n_det)
        Sinogram(s) or projection rows, real and finite; shifted along the last axis.
    shift_px : float
        Pixels to move the content towards higher indices (negative: towards lower ones).

    Returns
    -------
    ndarray, shape of ``rows``, float64
        The shifted rows; bins shifted in from outside hold the edge value of their side.

    Examples
    --------
    >>> import numpy as np
    >>> out = shift_along_detector(np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]), 2)
    >>> int(np.argmax(out)), bool(np.allclose(out, [0, 0, 0, 0, 1, 0], atol=1e-9))
    (4, True)
    """
    rows = np.asarray(rows, dtype=np.float64)
    if shift_px == 0:
        return rows.copy()
    plateau = int(np.ceil(abs(shift_px))) + _PLATEAU_PX
    left, right = rows[..., :1], rows[..., -1:]
    # an odd total length has no Nyquist bin, whose phase a real inverse FFT would drop
    ramp_px = _RAMP_PX + (rows.shape[-1] + _RAMP_PX + 1) % 2
    ramp = np.linspace(0.0, 1.0, ramp_px + 2)[1:-1]
    continued = np.concatenate(
        [
            rows,
            np.repeat(right, plateau, axis=-1),
            right + (left - right) * ramp,  # back down to the left edge: the wrap is smooth
            np.repeat(left, plateau, axis=-1),
        ],
        axis=-1,
    )
    length = continued.shape[-1]
    phase = np.exp(-2j * np.pi * np.fft.rfftfreq(length) * shift_px)
    shifted = np.fft.irfft(np.fft.rfft(continued, axis=-1) * phase, n=length, axis=-1)
    return shifted[..., : rows.shape[-1]]


def edge_padded(rows, pad_px: int) -> np.ndarray:
    """Rows continued by ``pad_px`` edge values on both sides: (..., n_det + 2 pad_px) float64."""
    rows = np.asarray(rows, dtype=np.float64)
    return np.concatenate(
        [np.repeat(rows[..., :1], pad_px, axis=-1), rows, np.repeat(rows[..., -1:], pad_px, -1)],
        axis=-1,
    )
