"""One CT scan, no second realisation: the built-in network averaged with spectrum BM3D.

With one scan of correlated (reconstruction) noise there is no pair to train Noise2Noise on and
no pair to score a method by. Measured on simulated quarter- and tenth-dose single scans of
patients the built-in model never trained on (docs/results.md, "One clinical scan"):
Neighbor2Neighbor trained on the scan gained +0.10 dB (it assumes pixel-independent noise),
recorrupted pairs (R2R) from the scan's own spectrum fine-tuned the built-in model to *below*
it even with the true spectrum (the noise of FBP is not stationary), while the built-in model
(self-ensemble of 8) and BM3D given each slice's own noise spectrum gain +2.97 and +3.16 dB
and their average +3.44 dB at quarter dose (tenth: +3.69, +3.93, +4.22; 22 slices of 8
patients, benchmarks/one_scan.py): the two make different errors.

The average is never worse than the worse of the two, for any clean image ``x``::

    |(a + b)/2 - x|^2 = (|a - x|^2 + |b - x|^2) / 2 - |a - b|^2 / 4

and better than the better one whenever their errors differ by less than half their squared
difference (per slice: 0.03 dB below the better one at worst at quarter dose, 0.08 at tenth).

The weight is fixed at one half (:data:`NETWORK_WEIGHT`), not tuned on any image.
"""

from __future__ import annotations

import numpy as np

from lowdose.baselines.filters import denoise_bm3d
from lowdose.core.progress import Progress
from lowdose.physics.single_image_noise import ct_noise_psd

NETWORK = "builtin:ct-sinogram"
"""The network of the blend: the built-in model trained on sinogram noise through FBP."""
NETWORK_TTA = 8
"""Its self-ensemble (8 rotations and mirrors)."""
NETWORK_WEIGHT = 0.5
"""The network's share of the blend; BM3D's is ``1 - NETWORK_WEIGHT``."""
BM3D_STAGE = "bm3d-psd"
"""Progress stage name of the spectrum BM3D pass."""


def spectrum_bm3d_hu(images_hu, *, inside=None, progress: Progress | None = None) -> np.ndarray:
    """BM3D of each CT slice given the noise spectrum measured in that slice's body.

    Parameters
    ----------
    images_hu : array_like (B, H, W) or (H, W), float, HU
        Not modified.
    inside : array_like of bool, same shape, optional
        The field of view (where the spectrum may be measured).
    progress : Progress, optional
        ``progress("bm3d-psd", done, B)`` after each slice.

    Returns
    -------
    ndarray, same shape, float32, HU
    """
    stack = np.asarray(images_hu, np.float32)
    flat = stack.reshape(-1, *stack.shape[-2:])
    masks = None if inside is None else np.asarray(inside, bool).reshape(flat.shape)
    out = np.empty_like(flat)
    for k, image in enumerate(flat):
        psd = ct_noise_psd(image, image, inside=None if masks is None else masks[k])  # HU^2
        out[k] = denoise_bm3d(image, psd=psd)
        if progress is not None:
            progress(BM3D_STAGE, k + 1, len(flat))
    return out.reshape(stack.shape)


def blend(network_output, bm3d_output, *, network_weight: float = NETWORK_WEIGHT) -> np.ndarray:
    """``w * network + (1 - w) * bm3d``, float32, same shape (any units, both the same)."""
    network_output = np.asarray(network_output, np.float32)
    bm3d_output = np.asarray(bm3d_output, np.float32)
    if network_output.shape != bm3d_output.shape:
        raise ValueError(f"blend: shapes {network_output.shape} and {bm3d_output.shape} differ")
    weight = np.float32(network_weight)
    return weight * network_output + (np.float32(1) - weight) * bm3d_output


def blend_description() -> str:
    """One line for provenance (DICOM DerivationDescription, reports)."""
    return (
        f"{NETWORK} (self-ensemble x{NETWORK_TTA}) averaged {NETWORK_WEIGHT:g}:"
        f"{1 - NETWORK_WEIGHT:g} with BM3D given each slice's own noise spectrum"
    )
