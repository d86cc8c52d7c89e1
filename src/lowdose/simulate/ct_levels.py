"""The rules every CT noise level follows: the noise's name, the scale of a target, its stream.

A target PSNR refers to one of :data:`TARGET_SCALES`: ``data_range_1``, data range 1 on the
dataset scale ``max(HU + 1024, 0) / data_max`` (the paper), or ``hu_window``, the -1000..1000 HU
window with both images clipped to it (data range 2000 HU), which gives sinogram I0 a physical
value. :func:`scaled_psnr` measures on either.

Every slice ``i`` and realisation ``r`` draws from ``default_rng([*stream, i, r])``, with
``stream`` from :func:`noise_stream` (a target PSNR) or :func:`dose_stream` (a dose): results do
not depend on batching, the same (seed, level) gives the same draws bit for bit, and datasets at
two levels (ct24 and ct18) or of two noise models never share draws (with one stream per seed,
the ct18 AWGN noise was exactly 1.945 x the ct24 noise).
"""

from __future__ import annotations

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr, psnr_hu_window
from lowdose.data.scaling import scaled_to_hu
from lowdose.physics.noise_levels import level_key

CT_NOISES = ("awgn", "sinogram")
NOISE_ALIASES = {"gaussian": "awgn"}  # AWGN's name as a dataset's noise_model
TARGET_SCALES = ("data_range_1", "hu_window")
SCALE_NOTES = {
    "data_range_1": "data_range 1 on max(HU + 1024, 0) / dataset max",
    "hu_window": "hu_window: -1000..1000 HU, both clipped, data_range 2000",
}
_MODEL_STREAMS = {"awgn": 5, "sinogram": 11, "sinogram_dose": 17}  # never renumber: seeds


def ct_noise_name(name: str) -> str:
    """The CT noise ``name`` names: ``"awgn"`` (also ``"gaussian"``, case-insensitive) or
    ``"sinogram"``; anything else raises one line naming the choices.

    >>> ct_noise_name("Gaussian"), ct_noise_name("sinogram")
    ('awgn', 'sinogram')
    """
    value = str(name).strip().lower()
    value = NOISE_ALIASES.get(value, value)
    if value not in CT_NOISES:
        raise LowdoseInputError(f"noise={name!r}: use awgn (or gaussian) or sinogram")
    return value


def scaled_psnr(clean, noisy, data_max: float, target_scale: str) -> np.ndarray:
    """Per-image PSNR (dB) of scaled images on the scale a target refers to.

    ``"data_range_1"``: data_range 1 on the dataset scale; ``"hu_window"``: both images back to HU,
    clipped to -1000..1000 HU, data_range 2000 (:func:`lowdose.core.metrics.psnr_hu_window`).
    """
    if target_scale == "hu_window":
        return psnr_hu_window(scaled_to_hu(clean, data_max), scaled_to_hu(noisy, data_max))
    return np.atleast_1d(psnr(clean, noisy, data_range=1.0))


def mean_scaled_psnr(clean, noisy, data_max: float, target_scale: str) -> float:
    """Mean PSNR over images and realisations: clean (I, H, W), noisy (I, n, H, W)."""
    flat = noisy.reshape(-1, *noisy.shape[2:])
    reference = np.repeat(clean, noisy.shape[1], axis=0)
    return float(np.mean(scaled_psnr(reference, flat, data_max, target_scale)))


def target_mse(target_psnr_db: float, data_max: float, target_scale: str) -> float:
    """Noise MSE on the dataset scale that the target means (window clipping ignored)."""
    data_range = 2000.0 / data_max if target_scale == "hu_window" else 1.0
    return data_range**2 * 10.0 ** (-target_psnr_db / 10.0)


def noise_stream(seed: int, model: str, target_psnr_db: float, target_scale: str) -> list[int]:
    """Entropy prefix of a dataset's noise at a target: ``[seed, model id, level key, scale id]``.

    ``model`` is ``"awgn"`` or ``"sinogram"``; slice ``i`` and realisation ``r`` draw from
    ``default_rng([*prefix, i, r])``.
    """
    scale_id = TARGET_SCALES.index(target_scale)
    return [int(seed), _MODEL_STREAMS[model], level_key(target_psnr_db), scale_id]


def dose_stream(seed: int, i0_photons: float, electronic_noise_counts: float) -> list[int]:
    """Entropy prefix of a dose-based sinogram dataset's noise (slice ``i``, scan ``r`` appended).

    Keyed by the photons per ray and the electronic noise, so two dose levels never share draws,
    nor with any target-PSNR dataset. A one-scan set split into view subsets draws its scan as
    scan 0 of the same stream: at the same seed and dose it is the two-scan set's first scan, so
    the two arms of ``ct-dose`` see the same noisy input and compare exactly paired.
    """
    return [
        int(seed),
        _MODEL_STREAMS["sinogram_dose"],
        level_key(i0_photons),
        level_key(electronic_noise_counts),
    ]
