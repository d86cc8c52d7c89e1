"""The strength of spectrum-aware BM3D: a multiplier of a noise power spectrum, searched.

BM3D for correlated noise (:func:`lowdose.baselines.filters.denoise_bm3d` with ``psd``) takes
the noise power spectrum; a spectrum *estimated* from data can be off in level, and the best
strength for a figure of merit need not be the true spectrum (for MSE on quarter- and
tenth-dose CT slices the pair uMSE picked x2.0 and x2.2 of the measured spectrum). So the
spectrum's multiplier ``psd_scale`` is searched, with no cap
(:func:`lowdose.baselines.search.search` steps past the grid's edges), by one of two
objectives, each stated with the result:

- :func:`tune_psd_scale_pairs` (**clean-free**): the mean unbiased pair MSE
  ``mean((f(y1) - y2)^2) - Var(y1 - y2) / 2`` of the filtered first acquisitions against the
  second (:func:`lowdose.core.metrics.unbiased_mse`): an unbiased estimate of the MSE against the
  clean image, so the chosen strength serves **MSE** (and the PSNR over the whole image's data
  range); a windowed PSNR can prefer a different strength;
- :func:`tune_psd_scale_oracle` (**oracle**): per image, the PSNR against its clean image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lowdose.baselines.filters import denoise_bm3d
from lowdose.baselines.search import SearchPlan, search
from lowdose.baselines.tuning import check_pair_stacks
from lowdose.core.metrics import pair_noise_variance_all_pixels, psnr, unbiased_mse


def _evenly_spaced(n: int, max_images: int | None) -> np.ndarray:
    """Indices of at most ``max_images`` of ``n`` images, evenly spaced (the rule of
    :func:`lowdose.baselines.tuning.tune_blind_pairs`; here one spectrum per pair rides along)."""
    if max_images is None or n <= max_images:
        return np.arange(n)
    return np.linspace(0, n - 1, max_images).round().astype(int)


#: Where the search starts; no cap: it steps x2 past an edge while the objective improves.
PSD_SCALE_GRID: dict[str, tuple[float, ...]] = {"psd_scale": (0.5, 1.0, 2.0, 4.0)}
_PLAN = SearchPlan(
    continuous=("psd_scale",),
    coordinate=(),
    extend=None,
    refine_steps=4,  # golden-section steps: the objective is smooth in log(psd_scale)
    bounds={"psd_scale": (1e-3, 1e3)},
)


@dataclass(frozen=True)
class SpectrumTuning:
    """A chosen multiplier of a noise power spectrum.

    Attributes
    ----------
    psd_scale : float
        The chosen multiplier.
    objective : str
        What it maximised: ``"pair uMSE"`` (clean-free) or ``"PSNR vs clean"`` (oracle).
    n_images : int
        Images the objective averaged over.
    table : list of dict
        Every evaluated point: ``{"psd_scale": s, "value": objective value}`` (for the pair
        uMSE the value is ``-mean uMSE``, data units squared).
    """

    psd_scale: float
    objective: str
    n_images: int
    table: list[dict] = field(repr=False)


def tune_psd_scale_pairs(
    first, second, psd, *, inside=None, max_images: int | None = 8
) -> SpectrumTuning:
    """Multiplier of ``psd`` minimising the mean pair uMSE of BM3D, clean-free.

    Parameters
    ----------
    first, second : ndarray (I, H, W) float
        Two independent noisy acquisitions of the same images, same scale. Only noisy data.
    psd : ndarray (H, W) or (I, H, W) float
        The noise power spectrum of one acquisition (:mod:`lowdose.physics.noise_spectrum`),
        one for all pairs or one per pair.
    inside : ndarray (I, H, W) bool, optional
        Pixels that carry noise (field of view): the uMSE counts only those.
    max_images : int or None
        At most this many pairs, evenly spaced (BM3D costs ~2 s per 256^2 image).

    Returns
    -------
    SpectrumTuning
        ``objective="pair uMSE"``.
    """
    first, second = np.asarray(first), np.asarray(second)
    check_pair_stacks(first, second, "tune_psd_scale_pairs")
    keep = _evenly_spaced(len(first), max_images)
    psd = np.asarray(psd)
    psds = psd[keep] if psd.ndim == 3 else np.broadcast_to(psd, first[keep].shape)
    first, second = first[keep], second[keep]
    inside = None if inside is None else np.asarray(inside, bool)[keep]
    variance = pair_noise_variance_all_pixels(first, second, inside=inside)

    def objective(params: dict) -> float:
        pairs = zip(first, psds, strict=True)
        out = np.stack([denoise_bm3d(image, psd=p, **params) for image, p in pairs])
        umse = unbiased_mse(second, out, noise_variance=variance, inside=inside)
        return -float(np.mean(umse))

    best, _, evaluated = search(objective, PSD_SCALE_GRID, **_PLAN)
    table = [{"psd_scale": p["psd_scale"], "value": v} for p, v in evaluated]
    return SpectrumTuning(best["psd_scale"], "pair uMSE", len(first), table)


def tune_psd_scale_oracle(noisy, clean, psds, *, data_range: float) -> list[SpectrumTuning]:
    """Per image, the multiplier of its spectrum with the highest PSNR against clean (oracle).

    Parameters
    ----------
    noisy, clean : ndarray (I, H, W) float
        Filter inputs and their clean references, same scale.
    psds : ndarray (H, W) or (I, H, W) float
        One spectrum for all images, or one per image.
    data_range : float
        PSNR data range.

    Returns
    -------
    list of SpectrumTuning
        One per image, ``objective="PSNR vs clean"``.
    """
    noisy, clean = np.asarray(noisy), np.asarray(clean)
    check_pair_stacks(noisy, clean, "tune_psd_scale_oracle")
    psds = np.asarray(psds)
    psds = np.broadcast_to(psds, noisy.shape) if psds.ndim == 2 else psds
    results = []
    for image, reference, psd in zip(noisy, clean, psds, strict=True):

        def objective(params, image=image, reference=reference, psd=psd) -> float:
            out = denoise_bm3d(image, psd=psd, **params)
            return float(psnr(reference, out, data_range=data_range))

        best, _, evaluated = search(objective, PSD_SCALE_GRID, **_PLAN)
        table = [{"psd_scale": p["psd_scale"], "value": v} for p, v in evaluated]
        results.append(SpectrumTuning(best["psd_scale"], "PSNR vs clean", 1, table))
    return results
