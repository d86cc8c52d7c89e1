"""A copy of a dataset file at a lower dose, made from its noisy realisations alone.

:func:`renoise_dataset` writes ``out``: the same images, splits, scales and clean references as
``source``, with **every noisy realisation re-noised independently** to ``dose_fraction`` ``p``
of the acquired dose (:mod:`lowdose.physics.dose_thinning`):

- ``noise_model = "poisson"`` (X-ray projections): binomial thinning of the photon counts; the
  new ``noise_level`` is ``p * photons_per_pixel``;
- ``noise_model = "gaussian"`` (CT AWGN): independent extra white Gaussian noise; the new
  ``noise_level`` is ``sigma / sqrt(p)``.

No clean image is read to make the noise, so a model trained on the copy is still clean-free
(a Noise2Noise *specialist* at ``p`` of the dose, trained on exactly the information a
clean-free user has). The ``clean`` array is copied unchanged, only so that a final evaluation
can score against it; ``achieved_psnr_db`` (and, for CT in HU, ``achieved_psnr_hu_window_db``)
is measured again against it. Sinogram-noise CT and measured data cannot be re-noised in the
image domain and raise.

Every realisation draws from its own stream ``default_rng([seed, RENOISE_STREAM, p in ppm, row,
realisation])``: realisations stay independent of each other (a Noise2Noise pair stays valid),
copies at two fractions never share draws, and the file does not depend on the block size.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr_hu_window
from lowdose.core.progress import Progress
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary, noise_correlation_attrs, summarise_dataset
from lowdose.data.dataset import DatasetInfo, open_dataset, read_info, read_scale
from lowdose.data.scaling import scaled_to_hu
from lowdose.data.writer import dataset_writer
from lowdose.physics.dose_thinning import (
    DoseRenoiser,
    checked_dose_fraction,
    dose_renoiser,
    sigma_at_dose,
)

RENOISE_STREAM = 0x72656E6F
"""Second key of every re-noising stream ("reno"): apart from the builders' noise streams."""
BLOCK_IMAGES = 16
"""Images read, re-noised and written at a time (bounded memory for files larger than RAM)."""
STALE_EXTRA = ("sigma_hu", "achieved_psnr_hu_window_db", "noise_neighbour_correlation")
"""Builder extras that describe the source's noise: dropped (the HU-window PSNR is re-measured)."""
_METHODS = {
    "poisson": "binomial thinning of the photon counts",
    "gaussian": "added independent white Gaussian noise",
}


def renoise_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    dose_fraction: float,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> DatasetSummary:
    """Write ``out``: ``source`` with every noisy realisation re-noised to ``dose_fraction``.

    Parameters
    ----------
    source : path
        A dataset file (docs/interfaces.md) with ``noise_model`` ``poisson`` or ``gaussian`` and
        its ``noise_level`` (photons per pixel, or sigma on the dataset scale).
    out : path
        Destination ``.h5``, written atomically (a failure leaves no file, or the old one, there);
        must not be ``source``.
    dose_fraction : float
        ``p`` in (0, 1]: the fraction of the acquired dose (1 copies the noise unchanged).
    seed : int
        >= 0; with ``p`` and each image's row and realisation it keys the noise streams.
    progress : Progress, optional
        ``progress("re-noising", done, total)`` in images.

    Returns
    -------
    DatasetSummary
        Of ``out``: ``attrs.noise_level`` the new level, ``attrs.achieved_psnr_db`` measured
        against the copied clean images (NaN without them), ``attrs.target_psnr_db`` NaN (the
        level follows from ``p``, it was not solved for), and in ``attrs.extra``:
        ``renoised_from`` (the source file's name), ``renoised_dose_fraction``,
        ``renoised_from_noise_level``, ``renoised_from_achieved_psnr_db``, ``renoise_method``,
        ``renoise_seed``.

    Raises
    ------
    LowdoseInputError
        One line naming the file: a noise model that cannot be re-noised (sinogram, measured),
        a missing noise level, ``p`` outside (0, 1], a negative seed, or ``out`` = ``source``.
    """
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    fraction = checked_dose_fraction(dose_fraction, "dose_fraction")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise LowdoseInputError(f"seed={seed!r}: use an integer >= 0")
    info = read_info(source)
    renoiser = dose_renoiser(
        info.attrs.noise_model, info.attrs.noise_level, where=str(source), purpose="re-noising"
    )
    if out.resolve() == source.resolve():
        raise LowdoseInputError(f"{out}: the copy would overwrite its source; use another path")
    attrs = renoised_attrs(info.attrs, source, renoiser, fraction, seed)
    scale = read_scale(source)  # (I,) float64 stored divisors
    with open_dataset(source) as handle:
        optional = {
            key: handle[key][()] if key in handle else None for key in ("tile_origin", "fov")
        }
        with dataset_writer(
            out,
            object_id=info.object_id,
            split=info.split,
            scale=scale,
            n_realisations=info.shape[1],
            image_shape=info.shape[2:],
            has_clean=info.has_clean,
            attrs=attrs,
            **optional,
        ) as writer:
            hu_window_db = _copy_renoised(
                handle, writer, info, scale, renoiser, (fraction, seed), progress
            )
            if not math.isnan(hu_window_db):
                writer.add_extra(achieved_psnr_hu_window_db=hu_window_db)
    return summarise_dataset(out, started_s=started)


def renoised_attrs(
    attrs: DatasetAttrs, source: Path, renoiser: DoseRenoiser, fraction: float, seed: int
) -> DatasetAttrs:
    """The copy's attributes: new level, no target, PSNR to be measured, provenance in extra."""
    if renoiser.noise_model == "poisson":
        level, unit = fraction * renoiser.noise_level, "photons/pixel"
    else:
        level, unit = sigma_at_dose(renoiser.noise_level, fraction), "sigma"
    kept = {
        key: value
        for key, value in attrs.extra.items()
        if key not in STALE_EXTRA and not key.startswith("noise_corr_")
    }
    method = _METHODS[renoiser.noise_model]
    note = (
        f"Re-noised to {fraction:g} of the dose of {source.name} ({method}, {unit} "
        f"{renoiser.noise_level:.6g} -> {level:.6g}; no clean image read). "
    )
    return dataclasses.replace(
        attrs,
        noise_level=float(level),
        target_psnr_db=math.nan,
        achieved_psnr_db=math.nan,
        description=note + attrs.description,
        extra=kept,
    ).with_extra(
        renoised_from=source.name,
        renoised_dose_fraction=float(fraction),
        renoised_from_noise_level=float(renoiser.noise_level),
        renoised_from_achieved_psnr_db=float(attrs.achieved_psnr_db),
        renoise_method=method,
        renoise_seed=int(seed),
    )


def _copy_renoised(
    handle, writer, info: DatasetInfo, scale: np.ndarray, renoiser, key: tuple, progress
) -> float:
    """Re-noise and write every block; return the mean HU-window PSNR (NaN unless CT in HU).

    ``key`` is ``(fraction, seed)``; ``scale`` (I,) the stored divisors.
    """
    fraction, seed = key
    n_images, n_realisations = info.shape[:2]
    score_hu = info.has_clean and info.attrs.is_ct_hu
    window_db = []
    for start in range(0, n_images, BLOCK_IMAGES):
        stop = min(start + BLOCK_IMAGES, n_images)
        noisy = handle["noisy"][start:stop]  # (B, N, H, W) float32, the only input of the noise
        renoised = np.empty_like(noisy)
        for row in range(start, stop):
            for r in range(n_realisations):
                rng = np.random.default_rng(
                    [seed, RENOISE_STREAM, round(fraction * 1_000_000), row, r]
                )
                renoised[row - start, r] = renoiser.at_dose(
                    noisy[row - start, r], fraction, scale=scale[row], rng=rng
                )
        if start == 0:  # the new noise's lag-1 correlation, from the first block as builders do
            writer.add_extra(**noise_correlation_attrs(renoised))
        clean = handle["clean"][start:stop] if info.has_clean else None  # copied, for scoring
        writer.write(start, noisy=renoised, clean=clean)
        if score_hu:
            window_db.append(_hu_window_db(clean, renoised, scale[start:stop]))
        if progress is not None:
            progress("re-noising", stop, n_images)
    return float(np.mean(np.concatenate(window_db))) if window_db else math.nan


def _hu_window_db(clean, noisy, scale) -> np.ndarray:
    """(B * N,) PSNR in the -1000..1000 HU window of every realisation of a block."""
    divisor = scale[:, None, None]  # (B, 1, 1)
    clean_hu = scaled_to_hu(clean, divisor)  # (B, H, W)
    values = [
        psnr_hu_window(clean_hu, scaled_to_hu(noisy[:, r], divisor)) for r in range(noisy.shape[1])
    ]
    return np.concatenate([np.atleast_1d(v) for v in values])
