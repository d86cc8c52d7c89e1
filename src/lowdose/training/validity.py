"""Where a trained denoiser helps, measured clean-free: its validity range in input noise sigma.

:func:`measure_validity` re-noises the validation pairs (read with ``with_clean=False``, so no
clean image is touched) to a sweep of dose fractions, each realisation independently
(:mod:`lowdose.physics.dose_thinning`), puts every input on the network's scale the way
``lowdose denoise`` does (:func:`lowdose.data.scaling.scale_to_network`: X-ray projections are
divided by the smoothed maximum of the noisy image itself, not by the clean maximum the file
was stored with; :func:`network_scaling_of_stored`), and at each level measures

- whether the model **helps**: the mean uMSE of its outputs against the other realisation is
  below that of its inputs (:func:`lowdose.core.metrics.unbiased_mse`, noise variance
  ``Var(y1 - y2) / 2`` of the re-noised pair, both directions of every pair, averaged over
  images), and the **gain** ``10 log10(uMSE_in / uMSE_out)`` in dB (:func:`gain_from_umse`;
  undefined, None, when either mean is <= 0, i.e. below what the pairs resolve). Unbiased
  because the two re-noised realisations stay independent;
- the **noise sigma of the inputs** from each image alone, as ``lowdose denoise`` measures a
  user's file (:mod:`lowdose.inference.validity_check`): CT in HU (``scale="hu"``), in the body,
  by the correlated-noise estimator :func:`lowdose.physics.single_image_noise.ct_noise_sd_hu` (FBP
  noise is correlated; Immerkaer's white-noise estimator read it 2.6-6x low); other data on the
  network scale by :func:`lowdose.physics.noise_estimation.single_image_noise_sigma`.

The range is the span of those per-image sigma estimates over the levels where the model helps,
contiguous from the acquired dose (fraction 1) towards lower doses: the sweep walks down from
fraction 1 and stops at the first level where it does not help. ``sigma_low`` is the smallest
estimate at the acquired dose (a dose above it cannot be made without clean data, so less noise
is untested), ``sigma_high`` the largest estimate at the last level where it helps (when every
level helps, the sweep's lowest dose bounds it). No help at the acquired dose is the empty range,
stored as ``0.0, 0.0`` (no real input has zero noise). Datasets whose noise model cannot be
re-noised (sinogram CT, measured data) are measured at the acquired dose only; any other
problem with the dataset (a missing noise level, values that do not match it) raises.

:func:`store_validity` writes the result into a checkpoint's ``hyper_parameters["meta"]
["validity"]``, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels, unbiased_mse
from lowdose.data.dataset import load_split
from lowdose.data.scaling import NetworkScaling, scale_to_network
from lowdose.models.checkpoint import store_meta
from lowdose.models.validity_range import (
    CORRELATED_NOISE_ESTIMATOR,
    WHITE_NOISE_ESTIMATOR,
    is_hu_scaling,
)
from lowdose.physics.dose_thinning import RENOISABLE_MODELS, checked_dose_fraction
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.physics.single_image_noise import ct_noise_sd_hu
from lowdose.training.pairs import dataset_renoiser
from lowdose.training.windows import centre_crop

DEFAULT_DOSE_FRACTIONS: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
ESTIMATOR = WHITE_NOISE_ESTIMATOR  # non-CT data; CT in HU: CORRELATED_NOISE_ESTIMATOR
METHOD = "clean-free: uPSNR gain on validation pairs re-noised to each level"
METHOD_ACQUIRED_ONLY = (
    "clean-free: uPSNR gain on validation pairs at the acquired dose only (this noise model "
    "cannot be re-noised to lower doses)"
)


def measure_validity(
    model: torch.nn.Module,
    dataset_path: str | os.PathLike,
    *,
    seed: int = 0,
    levels: Sequence[float] = DEFAULT_DOSE_FRACTIONS,
    crop: int | None = None,
    batch_size: int = 4,
    device: str = "cpu",
) -> dict:
    """The validity range of ``model`` on the validation pairs of ``dataset_path``, clean-free.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, 1, H, W)`` float32 on the network scale (as inference gives it,
        :func:`network_scaling_of_stored`) to the same; its train/eval mode is restored after.
    dataset_path : path
        The training dataset file; its ``val`` split needs >= 2 realisations per image.
    seed : int
        Seeds the re-noising (level ``i`` draws from ``default_rng([seed, i])``).
    levels : sequence of float
        Dose fractions in (0, 1]; 1.0 (the acquired dose) is always measured.
    crop : int or None
        Centre crop (pixels) of every validation image, to bound the time; None: whole images.
    batch_size, device
        Images per forward pass, and the torch device to run them on.

    Returns
    -------
    dict
        ``{"estimator", "scale", "sigma_low", "sigma_high", "trained_sigma": float, "levels":
        [{"dose_fraction", "sigma", "gain_db", "helped"}, ...] (dose descending; sigma the
        median per-image estimate; gain_db None where undefined), "method": str}``; plain
        values, ready for JSON (sigmas 0.0 when the model does not help at the acquired dose).
        CT in HU: ``"single_image_noise_sd"``, ``"hu"`` (noise sd in HU); otherwise
        ``"single_image_noise_sigma"``, ``"network"``.

    Raises
    ------
    LowdoseInputError
        A validation split with one realisation per image, a level outside (0, 1], or a
        re-noisable dataset that cannot be re-noised as stored (no noise level, or values
        that do not match it).
    """
    split = load_split(dataset_path, "val", with_clean=False)
    if split.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{dataset_path}: the validity range needs 2 realisations per validation image"
        )
    fractions = sorted({1.0, *(checked_dose_fraction(p, "levels") for p in levels)}, reverse=True)
    renoiser = None  # sinogram or measured noise: only the acquired dose is known
    if split.attrs.noise_model in RENOISABLE_MODELS:
        renoiser = dataset_renoiser(dataset_path)  # its errors are the user's to fix: raise
    else:
        fractions = [1.0]
    pair = np.asarray(split.noisy[:, :2], dtype=np.float32)  # (I, 2, H, W)
    inside = split.fov
    if crop is not None:
        pair = centre_crop(pair, crop)
        inside = None if inside is None else centre_crop(inside, crop)
    scale = split.scale[:, None, None]  # (I, 1, 1) stored divisors
    on_network = network_scaling_of_stored(split.attrs.scaling_rule)
    attrs = split.attrs
    in_hu = attrs.scaling_rule == "dataset_max" and is_hu_scaling(
        NetworkScaling(scaling_offset=attrs.scaling_offset, raw_units=attrs.raw_units)
    )
    # CT: stored values (the network scale) back to HU per image: x scale - offset
    to_hu = (np.tile(split.scale, 2), attrs.scaling_offset) if in_hu else None
    rows, sigmas = [], []
    for index, fraction in enumerate(fractions):
        first, second = _pair_at_dose(
            pair, fraction, renoiser, scale, np.random.default_rng([seed, index])
        )
        helped, gain, estimates = _measure_level(
            model, (first, second), inside, on_network, batch_size, device, to_hu
        )
        sigmas.append(estimates)
        rows.append(
            {
                "dose_fraction": fraction,
                "sigma": float(np.nanmedian(estimates)),
                "gain_db": gain,
                "helped": helped,
            }
        )
    low, high = validity_span(rows, sigmas)
    return {
        "estimator": CORRELATED_NOISE_ESTIMATOR if in_hu else ESTIMATOR,
        "scale": "hu" if in_hu else "network",
        "sigma_low": low,
        "sigma_high": high,
        "trained_sigma": rows[0]["sigma"],
        "levels": rows,
        "method": METHOD if renoiser is not None else METHOD_ACQUIRED_ONLY,
    }


def network_scaling_of_stored(scaling_rule: str) -> NetworkScaling:
    """How stored values reach the network scale that ``lowdose denoise`` gives a user's input.

    ``per_image_max`` files store each image divided by its *clean* maximum, which inference
    does not know: it divides by :func:`lowdose.data.scaling.estimate_clean_max` of the noisy
    input. That estimate scales with the image, so dividing the stored values by their own
    estimate gives exactly what inference gives the raw image. ``dataset_max`` and ``none``
    files store the network scale already (offset added, dataset divisor applied).

    >>> network_scaling_of_stored("per_image_max").scaling_rule
    'per_image_max'
    >>> network_scaling_of_stored("dataset_max").scaling_rule
    'none'
    """
    return NetworkScaling(
        scaling_rule="per_image_max" if scaling_rule == "per_image_max" else "none"
    )


def gain_from_umse(umse_in: float, umse_out: float) -> tuple[bool, float | None]:
    """``(helped, gain_db)`` from the mean uMSE of the inputs and of the outputs.

    The model helps when its outputs' mean uMSE is below the inputs'; the gain
    ``10 log10(umse_in / umse_out)`` is defined only when both are > 0 (an unbiased MSE can come
    out <= 0 when the error is below what the pairs resolve: then there is no dB value, not an
    infinite one), else None.

    >>> gain_from_umse(0.02, 0.01)
    (True, 3.010299956639812)
    >>> gain_from_umse(0.02, -1e-6), gain_from_umse(0.01, 0.02)[0]
    ((True, None), False)
    """
    helped = bool(umse_out < umse_in)
    if not (umse_in > 0 and umse_out > 0):
        return helped, None
    return helped, float(10.0 * np.log10(umse_in / umse_out))


def validity_span(rows: Sequence[dict], sigmas: Sequence[np.ndarray]) -> tuple[float, float]:
    """``(sigma_low, sigma_high)`` from the sweep: the rule of the module docstring.

    Parameters
    ----------
    rows : sequence of dict
        One per level, dose descending, the first at the acquired dose, each with ``helped``.
    sigmas : sequence of ndarray
        The per-image sigma estimates of each level's inputs.

    >>> rows = [{"helped": True}, {"helped": True}, {"helped": False}, {"helped": True}]
    >>> validity_span(rows, [np.array([1.0, 1.2]), np.array([2.0, 2.5]), np.array([4.0]),
    ...                      np.array([8.0])])
    (1.0, 2.5)
    """
    helped = 0
    while helped < len(rows) and rows[helped]["helped"]:
        helped += 1
    if helped == 0:  # the empty range: every input gets a warning
        return 0.0, 0.0
    # NaN: an image whose noise could not be estimated (too few uniform patches) counts for none
    return float(np.nanmin(sigmas[0])), float(np.nanmax(sigmas[helped - 1]))


def store_validity(checkpoint_path: str | os.PathLike, validity: dict) -> None:
    """Rewrite a training checkpoint with ``hyper_parameters["meta"]["validity"] = validity``.

    Everything else in the file is kept as it was; the new file replaces the old one atomically
    (:func:`lowdose.core.atomic.atomic_path`), so a crash leaves the old checkpoint whole. A
    level's undefined gain (None, as :func:`measure_validity` gives it for JSON) is stored as
    NaN, the float :class:`lowdose.models.checkpoint.ValidityRange` reads.

    Raises
    ------
    LowdoseInputError
        One line naming the checkpoint: a missing file, one torch cannot read (empty, cut short,
        corrupt), or one without lowdose ``hyper_parameters``.
    """
    levels = [
        {**level, "gain_db": float("nan") if level["gain_db"] is None else level["gain_db"]}
        for level in validity.get("levels") or ()
    ]
    store_meta(checkpoint_path, validity={**validity, "levels": levels})


def _pair_at_dose(pair, fraction: float, renoiser, scale, rng) -> tuple[np.ndarray, np.ndarray]:
    """The two (I, H, W) realisations of ``pair`` (I, 2, H, W), each re-noised independently."""
    if fraction == 1.0:
        return pair[:, 0], pair[:, 1]
    first = renoiser.at_dose(pair[:, 0], fraction, scale=scale, rng=rng)
    return first, renoiser.at_dose(pair[:, 1], fraction, scale=scale, rng=rng)


def _measure_level(
    model, pair, inside, on_network: NetworkScaling, batch_size: int, device, to_hu=None
):
    """``(helped, gain_db, sigmas)`` of ``model`` on one level's pair, both directions.

    ``pair`` is ``(first, second)``, each (I, H, W) on the stored scale; every input is put on
    the network scale as inference would, and its reference divided by the same divisor.
    ``sigmas`` (2I,) float64 are the inputs' single-image estimates on that scale, or in HU
    when ``to_hu`` is ``(divisors (2I,), offset)``.
    """
    first, second = pair
    variance = pair_noise_variance_all_pixels(first, second, inside=inside)  # (I,)
    inputs, divisor = scale_to_network(np.concatenate([first, second]), on_network)  # (2I, H, W)
    references = (np.concatenate([second, first]) / divisor[:, None, None]).astype(np.float32)
    noise = np.tile(variance, 2) / divisor**2  # y1 -> y2 and y2 -> y1, on the input's scale
    twice = None if inside is None else np.concatenate([inside, inside])
    outputs = _predict(model, inputs, batch_size, device)
    umse_out = unbiased_mse(references, outputs, noise_variance=noise, inside=twice)
    umse_in = unbiased_mse(references, inputs, noise_variance=noise, inside=twice)
    # mean uMSE over images first (as validation does), then the comparison and the dB
    helped, gain = gain_from_umse(float(np.mean(umse_in)), float(np.mean(umse_out)))
    if to_hu is not None:
        divisors, offset = to_hu
        hu = inputs * divisors[:, None, None] - offset  # (2I, H, W) float64
        masks = [None] * len(hu) if twice is None else twice
        return (
            helped,
            gain,
            np.array(
                [ct_noise_sd_hu(image, inside=mask) for image, mask in zip(hu, masks, strict=True)]
            ),
        )
    return helped, gain, _sigma_estimates(inputs, twice)


def _predict(model, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """``model`` on (B, H, W) float32 images in batches -> (B, H, W) float32 (mode restored)."""
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
                outputs.append(model(batch[:, None].to(device)).float().cpu().numpy()[:, 0])
    finally:
        model.train(was_training)
    return np.concatenate(outputs)


def _sigma_estimates(images: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """Per-image single-image sigma of (B, H, W) images, (B,) float64; ``inside`` (B, H, W).

    Outside the field of view the pixels are set to one constant, which the estimator skips
    (padding carries no noise in a user's file either).
    """
    if inside is not None:
        images = np.where(inside, images, 0.0)
    return np.array([single_image_noise_sigma(image) for image in images])
