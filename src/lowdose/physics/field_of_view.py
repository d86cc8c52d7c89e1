"""The reconstructed field of view of a CT slice, and the padding scanners put outside it.

A CT scanner reconstructs a circle; many store the pixels outside it as a padding value far below
air (-2048 or -3024 HU) and name it in DICOM ``PixelPaddingValue``. The tag is not always right:
GE slices store -2048 HU outside the circle while their tag declares -2000 stored (-3024 HU), a
value no pixel holds. So the mask joins the tag and the pixels: a pixel is padding when it equals
the tag's value or lies below :data:`PADDING_BELOW_HU` (neither tissue nor the noise around air
at -1000 HU reaches it), and when it is connected to the image border or to a pixel outside the
circle inscribed in the image (the reconstruction circle). A tag whose value does not occur
leaves the pixel rule alone. lowdose replaces padding by :data:`AIR_HU` before a network sees it
(a step of 1000-2000 HU at the circle's edge would otherwise dominate every filter of the
network and leave a dark ring) and writes the original padding back afterwards.

>>> import numpy as np
>>> hu = np.full((5, 5), -3024.0)
>>> hu[1:4, 1:4] = 40.0
>>> int(field_of_view_mask(hu).sum())
9
>>> hu[hu < -3000] = -2048.0  # the tag says -3024, the pixels say -2048: the pixels win
>>> int(field_of_view_mask(hu, padding_hu=-3024.0).sum())
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
        The declared padding value in HU (DICOM ``PixelPaddingValue`` converted with the rescale
        slope and intercept), or None. Pixels equal to it are padding candidates, and so are
        pixels below :data:`PADDING_BELOW_HU` whatever the tag says.

    Returns
    -------
    np.ndarray, bool, same shape as ``hu``
        True inside the field of view. A candidate counts as outside when its connected
        component (4-neighbourhood, within each slice) touches the image border or leaves the
        circle inscribed in the slice (diameter min(H, W), centred); a stray low value, or a
        padding-valued air pixel, inside the body stays inside.
    """
    values = np.asarray(hu)
    if values.ndim not in (2, 3):
        raise LowdoseInputError(
            f"field_of_view_mask: expected an (H, W) or (I, H, W) image, got shape {values.shape}"
        )
    candidate = values < PADDING_BELOW_HU
    if padding_hu is not None:
        candidate |= values == np.asarray(padding_hu, dtype=values.dtype)
    if not candidate.any():
        return np.ones(values.shape, dtype=bool)
    beyond_circle = _outside_inscribed_circle(values.shape[-2:])
    stack = candidate.reshape((-1, *values.shape[-2:]))
    outside = np.stack([_reaching(plane, beyond_circle) for plane in stack])
    return ~outside.reshape(values.shape)


def _outside_inscribed_circle(shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: pixel centres farther than min(H, W) / 2 from the image centre."""
    height, width = shape
    rows, cols = np.ogrid[:height, :width]
    radius = min(height, width) / 2
    return (rows - (height - 1) / 2) ** 2 + (cols - (width - 1) / 2) ** 2 > radius**2


def _reaching(candidate: np.ndarray, beyond_circle: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) bool: True pixels whose 4-connected component touches the border or
    holds a pixel of ``beyond_circle``."""
    import scipy.ndimage  # ~0.1 s: only when a slice holds padding candidates

    labels, count = scipy.ndimage.label(candidate)
    if count == 0:
        return candidate.copy()
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.zeros(count + 1, dtype=bool)
    touching[border] = True
    touching[labels[beyond_circle]] = True
    touching[0] = False  # label 0 is the background (not a candidate)
    return touching[labels]
