"""Validity range of trained denoisers (the paper's Figures 2 and 4).

The same clean test images are re-noised at a range of levels whose input PSNR spans ~4 to ~50 dB,
with the dataset's own noise model (Poisson photon noise for X-ray projections, AWGN or
sinogram-domain Poisson + FBP for CT); each model and each oracle-tuned filter denoises them, and
the output PSNR and the gain (output minus input PSNR) are recorded per image. Metrics use
data_range 1 on the dataset's scale and unclipped outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from lowdose.baselines.tuning import tune_oracle
from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr
from lowdose.data.dataset import load_split
from lowdose.inference.predict import predict
from lowdose.physics import noise, noise_levels
from lowdose.physics.ct_noise import sinogram_sweep_model
from lowdose.training.run import load_model

SWEEP_COLUMNS = (
    "method",
    "model_trained_at_db",
    "noise_level",
    "image_index",
    "input_psnr_db",
    "output_psnr_db",
    "gain_db",
    "tuning",
)


@dataclass(frozen=True)
class SweepModel:
    """A trained model to sweep: its label in plots, checkpoint, and the PSNR it was trained at."""

    label: str
    checkpoint: Path
    trained_at_db: float


# (clean scaled stack, scale per image, level, rng) -> noisy scaled stack
NoiseFunction = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], np.ndarray]


def default_targets_db(low_db: float = 4.0, high_db: float = 50.0, levels: int = 15) -> np.ndarray:
    """Target input PSNRs (dB), evenly spaced over ``[low_db, high_db]``."""
    if levels < 2 or not high_db > low_db:
        raise LowdoseInputError(
            f"sweep range {low_db}:{high_db} dB with {levels} levels is empty; "
            "use e.g. --psnr-range 4:50 --levels 15"
        )
    return np.linspace(low_db, high_db, levels)


def noise_model_for(attrs: dict) -> tuple[str, NoiseFunction, Callable]:
    """The dataset's noise model as (name, noise function, level solver for a target PSNR).

    The solver maps ``(clean scaled (I, H, W), scale (I,), target_db) -> level``.
    """
    model = str(attrs.get("noise_model", ""))
    if model == "poisson":
        return "poisson", _poisson_scaled, _solve_poisson
    if model == "gaussian":
        return "gaussian", _gaussian_scaled, _solve_gaussian
    if model == "sinogram":
        return "sinogram", *sinogram_sweep_model(attrs)
    raise LowdoseInputError(
        f"noise_model {model!r} of the dataset has no sweep; supported: poisson, gaussian, sinogram"
    )


def _poisson_scaled(clean, scale, photons, rng):
    # Back to raw transmission (paper scaling divided it by its own clean max), count photons,
    # and divide the noisy copy by the same number.
    transmission = clean * scale[:, None, None]
    noisy = noise.add_poisson_transmission(transmission, photons, rng=rng)
    return (noisy / scale[:, None, None]).astype(np.float32)


def _solve_poisson(clean, scale, target_db):
    return noise_levels.solve_photons_for_psnr(clean * scale[:, None, None], target_db).level


def _gaussian_scaled(clean, scale, sigma, rng):
    return noise.add_gaussian(clean, sigma, rng=rng).astype(np.float32)


def _solve_gaussian(clean, scale, target_db):
    return noise_levels.solve_sigma_for_psnr(clean, target_db, data_range=1.0).level


def run_sweep(
    data_path: str | Path,
    models: Sequence[SweepModel],
    *,
    targets_db: Sequence[float],
    filters: Sequence[str] = ("gaussian", "median", "bilateral"),
    n_images: int | None = 20,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
):
    """Re-noise test images at each target input PSNR; denoise with models and oracle filters.

    Parameters
    ----------
    data_path
        HDF5 dataset with ``clean`` (the sweep needs clean references).
    models
        Trained models to sweep.
    targets_db
        Target input PSNRs (dB, data_range 1 on the dataset scale); the achieved input PSNR per
        image is what the table records.
    filters
        Filters tuned per image against the clean reference (``oracle``).
    n_images
        First ``n_images`` test images (all if None).
    seed
        Seeds the noise; level ``k`` uses ``default_rng([seed, k])``.

    Returns
    -------
    pandas.DataFrame
        One row per method x level x image with the columns of :data:`SWEEP_COLUMNS`.
    """
    import pandas as pd

    split = load_split(data_path, "test")
    if split.clean is None:
        raise LowdoseInputError(
            f"{data_path}: the sweep needs clean test images; this file has none"
        )
    clean = split.clean[:n_images].astype(np.float32)
    index = np.asarray(split.index)[: len(clean)]
    with h5py.File(data_path, "r") as handle:
        scale = np.asarray(handle["scale"][np.sort(index)], dtype=np.float64)
    _, add_noise, solve = noise_model_for(split.attrs)
    loaded = [(m, *load_model(m.checkpoint)) for m in models]
    rows = []
    for k, target in enumerate(targets_db):
        level = float(solve(clean, scale, float(target)))
        noisy = add_noise(clean, scale, level, np.random.default_rng([seed, k]))
        input_db = np.atleast_1d(psnr(clean, noisy, data_range=1.0))
        outputs = {}
        for spec, model, _meta in loaded:
            estimate = predict(model, noisy)
            outputs[(spec.label, spec.trained_at_db, "none")] = psnr(
                clean, estimate, data_range=1.0
            )
        for name in filters:
            result = tune_oracle(noisy, clean, name)
            outputs[(name, np.nan, "oracle")] = np.asarray(result.best_psnr_db)
        for (method, trained_at, tuning), out_db in outputs.items():
            out_db = np.atleast_1d(out_db)
            for i in range(len(clean)):
                rows.append(
                    (method, trained_at, level, int(index[i]), input_db[i], out_db[i],
                     out_db[i] - input_db[i], tuning)
                )  # fmt: skip
        if progress is not None:
            progress(f"level {k + 1}/{len(targets_db)}: input {input_db.mean():.2f} dB")
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def write_sweep(table, out_dir: str | Path) -> Path:
    """Write ``sweep.csv`` atomically into ``out_dir`` and return its path."""
    path = Path(out_dir) / "sweep.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path
