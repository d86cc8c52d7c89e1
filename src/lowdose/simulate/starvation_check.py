"""Is a sinogram-noise CT dataset photon-starved? The check every such dataset records.

FBP is linear, so the mean of the noisy images is ``reference + bias`` with the exact bias of
:func:`lowdose.physics.ct_noise.mean_bias_hu`. Inside the object (reference > -500 HU)
:func:`measure_starvation` records the bias's RMS and 99th percentile of ``|bias|``, the noise SD
of the realisations about ``reference + bias``, their ratio, and ``photon_starved`` when the
ratio exceeds 0.1: a bias no denoiser trained on these data can remove. ``i0_without_starvation``
is the I0 at which the ratio falls to 0.1: first guessed with bias ~ 1/I0 and SD ~ 1/sqrt(I0),
then refined with the exact bias (on up to 4 of the slices) and the SD scaled by the estimator's
exact variance per bin (:func:`i0_without_starvation`). :func:`starvation_warning` says it in one
line for people.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from lowdose.data.scaling import scaled_to_hu
from lowdose.physics.ct_noise import mean_bias_hu
from lowdose.physics.photon_starvation import post_log_variance

STARVATION_RATIO = 0.1  # bias RMS / noise SD above which a dataset is photon-starved
OBJECT_HU = -500.0  # inside the object: reference above this
_REFINE_SLICES = 4  # the exact bias's fall with I0, measured on a few slices
_CHUNK = 16


@dataclass(frozen=True)
class StarvationCheck:
    """Is a sinogram dataset photon-starved? (The module docstring; HU inside the object.)"""

    mean_bias_rms_hu: float
    mean_bias_p99_hu: float
    noise_sd_hu: float
    bias_to_noise: float
    photon_starved: bool
    i0_without_starvation: float

    def to_attrs(self) -> dict[str, float | bool]:
        """The dataset attributes of the check, under the field names."""
        return asdict(self)


def measure_starvation(
    sinograms,
    reference,
    noisy,
    pixel_mm,
    *,
    angles: np.ndarray,
    size: int,
    filter_name: str,
    data_max: float,
    i0: float,
    electronic_noise_counts: float = 0.0,
) -> StarvationCheck:
    """The photon-starvation check of noisy FBPs (I, N, H, W) about their noise-free FBP (I, H, W).

    ``sinograms`` (I, A, D) are the noise-free line integrals the noise was drawn on at ``i0``
    (photons per ray), reconstructed at ``angles`` (degrees) to ``size`` pixels with the FBP
    kernel ``filter_name``; images on the dataset scale (divisor ``data_max``).
    """

    def bias_of(sinos, pixels, level: float) -> np.ndarray:  # (I, H, W) HU, 16 slices at a time
        parts = [
            mean_bias_hu(
                sinos[start : start + _CHUNK],
                pixels[start : start + _CHUNK],
                angles,
                level,
                size=size,
                filter_name=filter_name,
                electronic_noise_counts=electronic_noise_counts,
            )
            for start in range(0, len(sinos), _CHUNK)
        ]
        return np.concatenate(parts)

    bias = bias_of(sinograms, pixel_mm, i0)
    reference_hu = scaled_to_hu(reference, data_max)
    inside = reference_hu > OBJECT_HU
    if not inside.any():  # an empty field: judge every pixel
        inside = np.ones_like(inside)
    squares, count = 0.0, 0
    for i in range(len(noisy)):  # slice by slice: the noisy stack stays on the dataset scale
        noise = scaled_to_hu(noisy[i], data_max) - (reference_hu[i] + bias[i])  # (N, H, W)
        values = noise[:, inside[i]].astype(np.float64)
        squares, count = squares + float(np.sum(values**2)), count + values.size
    noise_sd = math.sqrt(squares / count)
    rms, p99 = _bias_stats(bias, inside)
    ratio = rms / noise_sd if noise_sd > 0 else math.inf
    pick = np.unique(np.linspace(0, len(bias) - 1, min(_REFINE_SLICES, len(bias))).astype(int))

    def rms_on_pick(level: float) -> float:
        return _bias_stats(bias_of(sinograms[pick], pixel_mm[pick], level), inside[pick])[0]

    def variance_on_pick(level: float) -> float:
        variance = post_log_variance(
            sinograms[pick], level, electronic_noise_counts=electronic_noise_counts
        )
        return float(np.mean(variance))

    pick_rms, pick_variance = rms_on_pick(i0), variance_on_pick(i0)
    free = i0_without_starvation(
        i0,
        rms,
        noise_sd,
        lambda level: rms * rms_on_pick(level) / pick_rms if pick_rms else 0.0,
        lambda level: noise_sd * math.sqrt(variance_on_pick(level) / pick_variance),
    )
    return StarvationCheck(rms, p99, noise_sd, ratio, bool(ratio > STARVATION_RATIO), free)


def i0_without_starvation(
    i0: float,
    bias_rms_hu: float,
    noise_sd_hu: float,
    bias_rms_at: Callable[[float], float],
    noise_sd_at: Callable[[float], float] | None = None,
    *,
    ratio: float = STARVATION_RATIO,
    steps: int = 8,
) -> float:
    """The I0 at which bias RMS / noise SD falls to ``ratio``.

    First guess: bias ~ 1/I0 and SD ~ 1/sqrt(I0), so the ratio goes as ``I0^-1/2`` and
    ``I0 x (ratio_now / ratio)^2`` reaches it. Then up to ``steps`` secant steps in log I0 vs log
    ratio (the power law's exponent from the last two levels, between -3 and -0.1) with the
    exact bias (``bias_rms_at(I0)``, HU) and the SD ``noise_sd_at(I0)`` (default: scaled as
    ``sqrt(I0_now / I0)``), until the predicted ratio is within 1 % of ``ratio``. NaN if there is
    no bias to scale.

    Why :func:`measure_starvation` passes its own ``noise_sd_at`` (the SD scaled by the square root
    of the estimator's mean variance per bin, :func:`lowdose.physics.photon_starvation.
    post_log_variance`, which is ``sqrt(I0_now / I0)`` at large counts): starved counts have a
    capped, smaller variance, so the plain rule over-predicted the I0 found from 50 photons ~16x
    (torso phantoms at 64^2: 5.3e6 where 3.2e5 already meets the ratio).
    """
    if not (bias_rms_hu > 0 and noise_sd_hu > 0):
        return math.nan
    if noise_sd_at is None:

        def noise_sd_at(level: float) -> float:
            return noise_sd_hu * math.sqrt(i0 / level)

    points = [(math.log(i0), math.log(bias_rms_hu / noise_sd_hu))]  # (log I0, log ratio)
    level = i0 * (bias_rms_hu / noise_sd_hu / ratio) ** 2
    for _ in range(steps):
        predicted = bias_rms_at(level) / noise_sd_at(level)
        if not predicted > 0 or abs(predicted / ratio - 1.0) < 0.01:
            break
        points.append((math.log(level), math.log(predicted)))
        (x0, y0), (x1, y1) = points[-2:]
        slope = float(np.clip((y1 - y0) / (x1 - x0), -3.0, -0.1)) if x1 != x0 else -0.5
        level = math.exp(x1 + float(np.clip((math.log(ratio) - y1) / slope, -5.0, 5.0)))
    return float(level)


def starvation_warning(check: StarvationCheck, i0_photons: float) -> str | None:
    """One line for people when ``check`` says a dataset at ``i0_photons`` is starved, else None."""
    if not check.photon_starved:
        return None
    advice = _round_up(float(check.i0_without_starvation))
    return (
        f"photon-starved: mean bias {check.mean_bias_rms_hu:.1f} HU RMS (99th pct "
        f"{check.mean_bias_p99_hu:.0f} HU) against noise SD {check.noise_sd_hu:.1f} HU, ratio "
        f"{check.bias_to_noise:.2f} at I0 {i0_photons:.4g}; use --photons-per-ray >= "
        f"{advice:.0f} to keep the bias under 10 % of the noise sd"
    )


def _round_up(value: float) -> float:
    """Up to two significant digits (the warning's advice never falls short of the I0 found)."""
    if not (math.isfinite(value) and value > 0):
        return value
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / step - 1e-9) * step


def _bias_stats(bias: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """RMS and 99th percentile of ``|bias|`` (HU) over the pixels inside the object."""
    values = np.abs(bias[inside].astype(np.float64))
    return float(np.sqrt(np.mean(values**2))), float(np.percentile(values, 99))
