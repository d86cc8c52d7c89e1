"""The reconstructed field of view of a CT slice, and the padding scanners put outside it.

A CT scanner reconstructs a circle; many store the pixels outside it as a padding value far below
air (-2048 or -3024 HU; DICOM ``PixelPaddingValue``). Neither tissue nor the noise around air at
-1000 HU reaches :data:`PADDING_BELOW_HU`, so a value below it that touches the image border is
padding. lowdose replaces padding by :data:`AIR_HU` before a network sees it (a step of 2000 HU at
the circle's edge would otherwise dominate every filter of the network) and writes the original
padding back afterwards.

>>> import numpy as np
>>> hu = np.full((5, 5), -3024.0)
>>> hu[1:4, 1:4] = 40.0
>>> int(field_of_view_mask(hu).sum())
9
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError

PADDING_BELOW_HU: float = -1500.0
AIR_HU: float = -1000.0


def field_of_view_mask(hu: np.ndarray, *, padding_hu: float | None = None) -> np.ndarray:
    """Where a CT slice (or a stack of slices) holds reconstructed values.

    Parameters
    ----------
    hu : np.ndarray, float, shape (H, W) or (I, H, W), Hounsfield units
        Slice or stack of slices as read; not modified.
    padding_hu : float or None
        The padding value in HU (DICOM ``PixelPaddingValue`` converted with the rescale slope and
        intercept). Pixels equal to it are padding. None: pixels below :data:`PADDING_BELOW_HU`
        are padding.

    Returns
    -------
    np.ndarray, bool, same shape as ``hu``
        True inside the field of view. Padding pixels count as outside only when they are
        connected (4-neighbourhood, within each slice) to the image border: a stray low value, or a
        padding-valued air pixel, inside the body stays inside.
    """
    values = np.asarray(hu)
    if values.ndim not in (2, 3):
        raise LowdoseInputError(
            f"field_of_view_mask: expected an (H, W) or (I, H, W) image, got shape {values.shape}"
        )
    if padding_hu is None:
        candidate = values < PADDING_BELOW_HU
    else:
        candidate = values == np.asarray(padding_hu, dtype=values.dtype)
    if not candidate.any():
        return np.ones(values.shape, dtype=bool)
    stack = candidate.reshape((-1, *values.shape[-2:]))
    outside = np.stack([_border_connected(plane) for plane in stack])
    return ~outside.reshape(values.shape)


def _border_connected(candidate: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) bool: True pixels whose 4-connected component touches the border."""
    import scipy.ndimage  # ~0.1 s: only when a slice holds padding candidates

    labels, count = scipy.ndimage.label(candidate)
    if count == 0:
        return candidate.copy()
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.zeros(count + 1, dtype=bool)
    touching[border] = True
    touching[0] = False  # label 0 is the background (not a candidate)
    return touching[labels]
