"""The comparison ``lowdose fit`` runs on the user's own data: network against blind filters.

On the test split of the dataset ``fit`` built (images the network never trained or validated
on), realisation 0 of each image is denoised by

* the trained network (``network``),
* non-local means (``nlm-blind``): scikit-image fast mode, ``h = 0.8 sigma``, patch 5, search
  distance 6, ``sigma`` given (scikit-image's recommended setting for a known sigma),
* BM3D (``bm3d-blind``): ``sigma_psd = sigma`` (the white-noise rule: what ignoring the noise's
  correlation costs),
* BM3D given the noise power spectrum (``bm3d-psd``, the strongest classical method for
  correlated noise such as FBP's): with two acquisitions the shape of the training pairs'
  difference spectrum times each image's own pair variance, its strength chosen by the training
  pairs' uMSE (:func:`lowdose.evaluation.spectrum_methods.tune_blind_psd`, ``blind-psd``); with
  one, the
  spectrum of each image estimated from itself, strength 1
  (:func:`lowdose.evaluation.spectrum_methods.single_scan_psd`, ``single-psd``),

with ``sigma`` estimated from the data per image, never from a clean image: from the pair
(``sqrt(Var(y1 - y2) / 2)``) when a second realisation exists, else from the single image
(:func:`lowdose.physics.noise_estimation.single_image_noise_sigma`). Each output is scored by
:func:`lowdose.evaluation.fit_scores.score_method`; all values on the dataset scale (data_range 1).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.baselines.filters import bm3d_installed, denoise_bm3d, denoise_nlm
from lowdose.baselines.sigma_rule import params_from_sigma
from lowdose.core.atomic import atomic_write_bytes, atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels
from lowdose.core.progress import Progress, StageCounter
from lowdose.data.dataset import SplitArrays, load_split
from lowdose.data.scaling import hu_to_scaled, scaled_to_hu
from lowdose.data.splits import SPLITS
from lowdose.evaluation.fit_scores import (
    MethodScores,
    flat_region,
    preferred_method,
    score_method,
)
from lowdose.evaluation.spectrum_methods import single_scan_psd, tune_blind_psd
from lowdose.inference.predict import denoise, denoise_in_field_of_view, predict
from lowdose.inference.spectrum_blend import NETWORK_TTA, blend
from lowdose.models.checkpoint import load_model
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.physics.noise_spectrum import pair_noise_psd, unit_spectrum

METHODS = ("noisy", "network", "nlm-blind", "bm3d-blind", "bm3d-psd")
#: the rows that need the optional bm3d package
BM3D_METHODS = ("bm3d-blind", "bm3d-psd", "blend")
#: the methods of one CT scan in HU (``one_scan_blend``): the built-in model, no training
ONE_SCAN_METHODS = ("noisy", "builtin", "nlm-blind", "bm3d-blind", "bm3d-psd", "blend")
#: training pairs the spectrum BM3D's strength is tuned on (BM3D costs seconds per image)
PSD_TUNING_IMAGES = 4


@dataclass(frozen=True)
class FitComparison:
    """Scores of every method and the images for the panels.

    Attributes
    ----------
    scores : list of MethodScores
        One per :data:`METHODS` entry, in that order.
    preferred, reason : str
        The method ``fit`` would use and why (:func:`preferred_method`).
    sigma : ndarray (I,) float64
        Noise sd given to the filters, per image, on the dataset scale.
    sigma_source : str
        ``"pair"`` or ``"single-image"``.
    psd_source : str
        Where ``bm3d-psd``'s spectrum and strength came from (one line).
    images : dict of str -> ndarray (I, H, W) float32
        Every method's output (and ``noisy``) on the dataset scale.
    object_id : ndarray (I,) str
    hu_divisor : ndarray (I,) float64 or None
        For CT in HU: ``HU = scaled * hu_divisor - 1024`` per image (for display); else None.
    flat_region : str
        Where the flat-region noise was measured: ``"body"`` (CT in HU) or ``"field of view"``.
    scored_on : str
        Which images were scored: the test split, or every image when nothing was trained.
    noise_lag1 : float or None
        The input noise's own lag-1 correlation (the dataset build's estimate): a residual of
        noise alone reads about this ``residual_lag1``.
    """

    scores: list[MethodScores]
    preferred: str
    reason: str
    sigma: np.ndarray
    sigma_source: str
    psd_source: str
    images: dict[str, np.ndarray]
    object_id: np.ndarray
    hu_divisor: np.ndarray | None = None
    flat_region: str = "field of view"
    scored_on: str = "test split"
    noise_lag1: float | None = None


def compare_methods(
    data: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    max_images: int = 8,
    progress: Progress | None = None,
    one_scan_blend: bool = False,
) -> FitComparison:
    """Denoise and score up to ``max_images`` evenly spaced test images with every method.

    Parameters
    ----------
    data : path
        Dataset file; its ``clean`` array is never read.
    checkpoint : path
        The trained network (``RUN_DIR/best.ckpt``).
    max_images : int
        BM3D costs seconds per image on a CPU: the comparison uses at most this many.
    progress : Progress, optional
        ``progress("compare", done, total)`` over images x methods.
    one_scan_blend : bool
        One CT scan in HU (``fit``'s one-scan recipe): ``checkpoint`` is the built-in model, run
        in HU with its self-ensemble (``builtin``), and ``blend`` is its average with
        ``bm3d-psd`` (:mod:`lowdose.inference.spectrum_blend`); ``blend`` is preferred.
    """
    split = _scored_images(data, one_scan_blend)
    if split.noisy.shape[0] == 0:
        raise LowdoseInputError(f"{data} has no test images: rebuild it with a test split")
    rows = np.unique(np.linspace(0, split.noisy.shape[0] - 1, max_images).round().astype(int))
    noisy = np.asarray(split.noisy[rows, 0], dtype=np.float32)  # (I, H, W)
    second = (
        np.asarray(split.noisy[rows, 1], dtype=np.float32) if split.noisy.shape[1] > 1 else None
    )
    if second is not None:
        sigma, source = np.sqrt(pair_noise_variance_all_pixels(noisy, second)), "pair"
    else:
        sigma = np.array([single_image_noise_sigma(image) for image in noisy])
        source = "single-image"
    sigma = np.maximum(sigma, 1e-6)  # a noiseless image still needs a positive filter strength
    with_bm3d = bm3d_installed()  # an optional extra: without it, its rows are left out
    methods = [
        m
        for m in (ONE_SCAN_METHODS if one_scan_blend else METHODS)
        if with_bm3d or m not in BM3D_METHODS
    ]
    # the passes over the images: the network, NLM, and with bm3d white and spectrum BM3D
    counter = StageCounter(progress, "compare", len(rows) * (4 if with_bm3d else 2))
    fov = None if split.fov is None else np.asarray(split.fov[rows], bool)  # (I, H, W)
    hu_divisor = np.asarray(split.scale[rows], np.float64) if split.attrs.is_ct_hu else None
    if one_scan_blend and hu_divisor is None:
        raise LowdoseInputError(f"{data}: the one-scan blend is for CT in HU only")
    images = {"noisy": noisy}
    images[methods[1]] = _network_output(checkpoint, noisy, hu_divisor, fov, one_scan_blend)
    counter.advance(len(rows))
    nlm, bm3d = np.empty_like(noisy), np.empty_like(noisy)
    for k, (image, s) in enumerate(zip(noisy, sigma, strict=True)):
        nlm[k] = denoise_nlm(image, **params_from_sigma("nlm", s))
        counter.advance()
        if with_bm3d:
            bm3d[k] = denoise_bm3d(image, **params_from_sigma("bm3d", s))
            counter.advance()
    images["nlm-blind"] = nlm
    psd_source = "not run: the bm3d package is not installed (pip install lowdose[bm3d])"
    if with_bm3d:
        images["bm3d-blind"] = bm3d
        images["bm3d-psd"], psd_source = _spectrum_bm3d(
            data, split, rows, noisy, second, fov, counter
        )
    if one_scan_blend and with_bm3d:
        images["blend"] = blend(images["builtin"], images["bm3d-psd"])
    region = flat_region(noisy, hu_divisor=hu_divisor, fov=fov)
    scores = [
        score_method(name, noisy, images[name], second=second, mask=fov, region=region)
        for name in methods
    ]
    if one_scan_blend:
        preferred, reason = ("blend", ONE_SCAN_REASON) if with_bm3d else ("builtin", NO_BM3D)
    else:
        view_split = split.attrs.is_view_split  # Noise2Inverse halves of one scan
        preferred, reason = preferred_method(scores, view_split=view_split)
    return FitComparison(
        scores=scores,
        preferred=preferred,
        reason=reason,
        sigma=sigma,
        sigma_source=source,
        psd_source=psd_source,
        images=images,
        object_id=np.asarray(split.object_id[rows]),
        hu_divisor=hu_divisor,
        flat_region="body" if hu_divisor is not None else "field of view",
        scored_on="every image (nothing was trained)" if one_scan_blend else "test split",
        noise_lag1=_noise_lag1(split.attrs),
    )


def _scored_images(data, one_scan_blend: bool) -> SplitArrays:
    """The test split; for the one-scan blend, which trains nothing, every image of the file."""
    if not one_scan_blend:
        return load_split(data, "test", with_clean=False)
    parts = []
    for name in SPLITS:
        try:
            parts.append(load_split(data, name, with_clean=False))
        except LowdoseInputError:  # an empty split
            continue
    order = np.argsort(np.concatenate([p.index for p in parts]), kind="stable")  # file order
    joined = lambda field: np.concatenate([getattr(p, field) for p in parts])[order]  # noqa: E731
    has_fov = all(p.fov is not None for p in parts)
    return SplitArrays(
        clean=None,
        noisy=joined("noisy"),
        object_id=joined("object_id"),
        index=joined("index"),
        attrs=parts[0].attrs,
        scale=joined("scale"),
        fov=joined("fov") if has_fov else None,
    )


def _noise_lag1(attrs) -> float | None:
    """The input noise's own lag-1 correlation as the dataset build measured it, or None."""
    values = [attrs.extra.get(f"noise_corr_lag1_{axis}") for axis in ("row", "col")]
    finite = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.mean(finite)) if finite else None


NO_BM3D = "the built-in model alone: the blend needs the bm3d package (pip install lowdose[bm3d])"
ONE_SCAN_REASON = (
    "one scan and no second realisation: no clean-free error estimate ranks methods reliably "
    "(SURE with the spectrum measured from one slice mis-ranks them), so the rule measured on "
    "simulated single scans of patients the built-in model never saw: the average of the "
    "built-in model and spectrum BM3D beat both at quarter and tenth dose (docs/results.md)"
)


def _network_output(checkpoint, noisy, hu_divisor, fov, one_scan_blend) -> np.ndarray:
    """The network's output on the dataset scale: a fit's own run, or the built-in model in HU."""
    model, meta = load_model(checkpoint)
    if not one_scan_blend:  # trained on this dataset: its scale is the network's
        return predict(model, noisy).astype(np.float32)
    divisor = hu_divisor[:, None, None]
    hu = scaled_to_hu(noisy, divisor)
    run = {"scaling": meta.scaling, "tta": NETWORK_TTA}
    if fov is None:
        out = denoise(model, hu, **run)
    else:
        out = denoise_in_field_of_view(model, hu, fov, **run)
    return hu_to_scaled(out, divisor)


def _spectrum_bm3d(data, split, rows, noisy, second, fov, counter) -> tuple[np.ndarray, str]:
    """BM3D given the noise spectrum on ``noisy`` (I, H, W), and where the spectrum came from.

    Two acquisitions: the training pairs' difference spectrum as the shape, each image's own
    pair variance as the level, strength by the training pairs' uMSE (``blind-psd``).
    One: each image's own spectrum estimate, strength 1. Never a clean image. ``split`` is
    the test split ``noisy`` and ``second`` were read from (rows ``rows``).
    """
    train = load_split(data, "train", with_clean=False)
    if train.noisy.shape[1] > 1 and len(train.noisy) and second is not None:
        first, other = train.noisy[:, 0], train.noisy[:, 1]
        inside = None if train.fov is None else np.asarray(train.fov, bool)
        shape = unit_spectrum(pair_noise_psd(first, other, inside=inside))
        levels = pair_noise_variance_all_pixels(noisy, second, inside=fov)  # each image's own
        tuned = tune_blind_psd(first, other, shape, inside=inside, max_images=PSD_TUNING_IMAGES)
        psds, scale = [shape * level for level in levels], tuned.psd_scale
        source = (
            f"blind-psd: the shape of {len(first)} training pair differences x each "
            f"image's pair variance, strength x{scale:.3g} by the pair uMSE of "
            f"{tuned.n_images} training pairs"
        )
    else:
        masks = [None] * len(noisy) if fov is None else list(fov)
        scales = np.asarray(split.scale[rows], np.float64)
        psds = [
            single_scan_psd(image, s, split.attrs, m)
            for image, s, m in zip(noisy, scales, masks, strict=True)
        ]
        scale, source = 1.0, "single-psd: each image's spectrum estimated from itself, strength x1"
    out = np.empty_like(noisy)
    for k, (image, psd) in enumerate(zip(noisy, psds, strict=True)):
        out[k] = denoise_bm3d(image, psd=psd, psd_scale=scale)
        counter.advance()
    return out, source


def save_comparison(comparison: FitComparison, folder: str | os.PathLike) -> None:
    """Write ``scores.csv``, ``choice.json`` and ``images.npz`` atomically into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["method,flat_sigma,residual_lag1,upsnr_db,pair_psnr_db,edge_width_px"]
    lines += [
        f"{s.method},{s.flat_sigma:.6g},{s.residual_lag1:.4f},{s.upsnr_db:.4f},"
        f"{s.pair_psnr_db:.4f},{s.edge_width_px:.3f}"
        for s in comparison.scores
    ]
    atomic_write_text(folder / "scores.csv", "\n".join(lines) + "\n")
    choice = {
        "preferred": comparison.preferred,
        "reason": comparison.reason,
        "sigma_source": comparison.sigma_source,
        "sigma": comparison.sigma.tolist(),
        "psd_source": comparison.psd_source,
        "object_id": [str(v) for v in comparison.object_id],
        "hu_divisor": None if comparison.hu_divisor is None else comparison.hu_divisor.tolist(),
        "flat_region": comparison.flat_region,
        "scored_on": comparison.scored_on,
        "noise_lag1": comparison.noise_lag1,
    }
    atomic_write_text(folder / "choice.json", json.dumps(choice, indent=2))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **comparison.images)
    atomic_write_bytes(folder / "images.npz", buffer.getvalue())


def describe_scores(out: str | os.PathLike) -> list[str]:
    """Lines of ``OUT/compare/scores.csv`` for the terminal (method, flat sd, lag-1, uPSNR);
    the flat-region sd in HU for CT in HU (``choice.json``'s ``hu_divisor``)."""
    folder = Path(out) / "compare"
    lines = (folder / "scores.csv").read_text().splitlines()[1:]
    divisor = json.loads((folder / "choice.json").read_text()).get("hu_divisor")
    to_hu, unit = (float(np.mean(divisor)), " HU") if divisor else (1.0, "")
    rows = [line.split(",") for line in lines]
    return [
        f"{m:11s} flat-region sd {float(s) * to_hu:.4g}{unit}  residual lag-1 "
        + (f"{float(r):+.2f}" if np.isfinite(float(r)) else "—")
        + (f"  uPSNR {float(u):.2f} dB" if np.isfinite(float(u)) else "")
        + (f"  pair PSNR {float(p):.2f} dB" if np.isfinite(float(p)) else "")
        + (f"  edge {float(e):.2f} px" if np.isfinite(float(e)) else "")
        for m, s, r, u, p, e, *_ in (row + ["nan", "nan"] for row in rows)
    ]
