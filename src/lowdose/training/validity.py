"""Where a trained denoiser helps, measured clean-free: its validity range in input noise sigma.

:func:`measure_validity` re-noises the validation pairs (read with ``with_clean=False``, so no
clean image is touched) to a sweep of dose fractions, each realisation independently
(:mod:`lowdose.physics.dose_thinning`), and at each level measures

- the **gain** ``uPSNR(f(y1); y2) - uPSNR(y1; y2)`` in dB, both directions of every pair, the
  uMSE averaged over images before the dB (:func:`lowdose.core.metrics.unbiased_mse`, noise
  variance ``Var(y1 - y2) / 2`` of the re-noised pair): unbiased because the two re-noised
  realisations stay independent;
- the **noise sigma of the inputs** on the network scale from each image alone,
  :func:`lowdose.physics.noise_estimation.single_image_noise_sigma` (what ``lowdose denoise``
  can measure on a user's file).

The range is the span of those per-image sigma estimates over the levels where the gain is > 0,
contiguous from the acquired dose (fraction 1) towards lower doses: the sweep walks down from
fraction 1 and stops at the first level without gain. ``sigma_low`` is the smallest estimate at
the acquired dose (a dose above it cannot be made without clean data, so less noise is untested),
``sigma_high`` the largest estimate at the last level with gain (when every level helps, the
sweep's lowest dose bounds it). No gain at the acquired dose is the empty range, stored as
``0.0, 0.0`` (no real input has zero noise). Datasets whose noise cannot be re-noised (sinogram
CT, measured data) are measured at the acquired dose only.

:func:`store_validity` writes the result into a checkpoint's ``hyper_parameters["meta"]
["validity"]``, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels, psnr_from_mse, unbiased_mse
from lowdose.data.dataset import load_split
from lowdose.physics.dose_thinning import checked_dose_fraction
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.training.pairs import dataset_renoiser

DEFAULT_DOSE_FRACTIONS: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
ESTIMATOR = "single_image_noise_sigma"
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
        Maps ``(B, 1, H, W)`` float32 on the dataset (network) scale to the same; its train/eval
        mode is restored afterwards.
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
        ``{"estimator": "single_image_noise_sigma", "scale": "network", "sigma_low",
        "sigma_high", "trained_sigma": float, "levels": [{"dose_fraction", "sigma", "gain_db"},
        ...] (dose descending; sigma the median per-image estimate), "method": str}``; plain
        floats and str, ready for a checkpoint or JSON (sigmas 0.0 when there is no gain).

    Raises
    ------
    LowdoseInputError
        A validation split with one realisation per image, or a level outside (0, 1].
    """
    split = load_split(dataset_path, "val", with_clean=False)
    if split.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{dataset_path}: the validity range needs 2 realisations per validation image"
        )
    fractions = sorted({1.0, *(checked_dose_fraction(p, "levels") for p in levels)}, reverse=True)
    try:
        renoiser = dataset_renoiser(dataset_path)
    except LowdoseInputError:  # sinogram or measured noise: only the acquired dose is known
        renoiser, fractions = None, [1.0]
    pair = _centre_crop(np.asarray(split.noisy[:, :2], dtype=np.float32), crop)  # (I, 2, H, W)
    inside = None if split.fov is None else _centre_crop(split.fov, crop)
    scale = split.scale[:, None, None]  # (I, 1, 1) stored divisors
    rows, sigmas = [], []
    for index, fraction in enumerate(fractions):
        first, second = _pair_at_dose(
            pair, fraction, renoiser, scale, np.random.default_rng([seed, index])
        )
        gain = _gain_db(
            model, first, second, inside, split.attrs.psnr_data_range, batch_size, device
        )
        sigmas.append(_sigma_estimates(np.concatenate([first, second]), inside))
        rows.append(
            {"dose_fraction": fraction, "sigma": float(np.median(sigmas[-1])), "gain_db": gain}
        )
    low, high = validity_span(rows, sigmas)
    return {
        "estimator": ESTIMATOR,
        "scale": "network",
        "sigma_low": low,
        "sigma_high": high,
        "trained_sigma": rows[0]["sigma"],
        "levels": rows,
        "method": METHOD if renoiser is not None else METHOD_ACQUIRED_ONLY,
    }


def validity_span(rows: Sequence[dict], sigmas: Sequence[np.ndarray]) -> tuple[float, float]:
    """``(sigma_low, sigma_high)`` from the sweep: the rule of the module docstring.

    Parameters
    ----------
    rows : sequence of dict
        One per level, dose descending, the first at the acquired dose, each with ``gain_db``.
    sigmas : sequence of ndarray
        The per-image sigma estimates of each level's inputs.

    >>> rows = [{"gain_db": 3.0}, {"gain_db": 1.0}, {"gain_db": -0.5}, {"gain_db": 2.0}]
    >>> validity_span(rows, [np.array([1.0, 1.2]), np.array([2.0, 2.5]), np.array([4.0]),
    ...                      np.array([8.0])])
    (1.0, 2.5)
    """
    helped = 0
    while helped < len(rows) and rows[helped]["gain_db"] > 0:  # NaN gain: no evidence of help
        helped += 1
    if helped == 0:  # the empty range: every input gets a warning
        return 0.0, 0.0
    return float(np.min(sigmas[0])), float(np.max(sigmas[helped - 1]))


def store_validity(checkpoint_path: str | os.PathLike, validity: dict) -> None:
    """Rewrite a training checkpoint with ``hyper_parameters["meta"]["validity"] = validity``.

    Everything else in the file is kept as it was; the new file replaces the old one atomically
    (:func:`lowdose.core.atomic.atomic_path`), so a crash leaves the old checkpoint whole.

    Raises
    ------
    LowdoseInputError
        A missing file, or one without lowdose ``hyper_parameters``.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise LowdoseInputError(f"checkpoint {path} not found: pass RUN_DIR/best.ckpt")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict):
        raise LowdoseInputError(f"{path}: no lowdose hyper_parameters; pass RUN_DIR/best.ckpt")
    hparams["meta"] = {**(hparams.get("meta") or {}), "validity": validity}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _pair_at_dose(pair, fraction: float, renoiser, scale, rng) -> tuple[np.ndarray, np.ndarray]:
    """The two (I, H, W) realisations of ``pair`` (I, 2, H, W), each re-noised independently."""
    if fraction == 1.0:
        return pair[:, 0], pair[:, 1]
    first = renoiser.at_dose(pair[:, 0], fraction, scale=scale, rng=rng)
    return first, renoiser.at_dose(pair[:, 1], fraction, scale=scale, rng=rng)


def _gain_db(model, first, second, inside, data_range: float, batch_size: int, device: str):
    """uPSNR gain (dB) of ``model`` on the pair ``(first, second)``, both directions."""
    variance = pair_noise_variance_all_pixels(first, second, inside=inside)  # (I,)
    inputs = np.concatenate([first, second])  # (2I, H, W): y1 -> y2 and y2 -> y1
    references = np.concatenate([second, first])
    twice = None if inside is None else np.concatenate([inside, inside])
    outputs = _predict(model, inputs, batch_size, device)
    noise = np.tile(variance, 2)
    umse_out = unbiased_mse(references, outputs, noise_variance=noise, inside=twice)
    umse_in = unbiased_mse(references, inputs, noise_variance=noise, inside=twice)
    # Mean uMSE first, then dB (as validation does); floored at 1e-20 (200 dB): an error below
    # what the pair resolves is a gain, not a missing value.
    out_db, in_db = (psnr_from_mse(max(float(np.mean(u)), 1e-20), data_range=data_range)
                     for u in (umse_out, umse_in))  # fmt: skip
    return float(out_db - in_db)


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
    """Per-image single-image sigma (network scale) of (B, H, W) images, (B,) float64.

    Outside the field of view the pixels are set to one constant, which the estimator skips
    (padding carries no noise in a user's file either).
    """
    if inside is not None:
        images = np.where(np.concatenate([inside] * (len(images) // len(inside))), images, 0.0)
    return np.array([single_image_noise_sigma(image) for image in images])


def _centre_crop(images: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return images
    height, width = images.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return images[..., top : top + size, left : left + size]
