"""Accuracy range against clean: trained denoisers over a sweep of noise levels (paper Figs. 2, 4).

Scored against the clean test images, unlike the clean-free validity range a checkpoint stores
(:mod:`lowdose.training.validity`), which needs no clean image.

The same clean test images are re-noised at a range of levels whose input PSNR spans ~4 to ~50 dB,
with the dataset's own noise model (Poisson photon noise for X-ray projections, AWGN or
sinogram-domain Poisson + FBP for CT); each model and each oracle-tuned filter denoises them, and
the output PSNR and the gain (output minus input PSNR) are recorded per image. Metrics use
data_range 1 on the dataset's scale and unclipped outputs. A subset of ``n_images`` test images
is spread evenly over the test objects (:func:`spread_over_objects`), never the first few images
of one phantom or patient.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.baselines.spectrum_tuning import tune_psd_scale_oracle
from lowdose.baselines.tuning import tune_oracle
from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr
from lowdose.core.progress import Log
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split, read_attrs
from lowdose.data.results import SWEEP_COLUMNS
from lowdose.inference.predict import predict
from lowdose.models.checkpoint import load_model
from lowdose.physics import noise, noise_levels
from lowdose.physics.noise_spectrum import noise_psd
from lowdose.simulate.ct_sweep import sinogram_sweep_model

#: the sweep's name for BM3D given the noise power spectrum (rows: method bm3d, oracle-psd)
PSD_FILTER = "bm3d-psd"


@dataclass(frozen=True)
class SweepModel:
    """A trained model to sweep: its label in plots, checkpoint, and the PSNR it was trained at."""

    label: str
    checkpoint: Path
    trained_at_db: float


def sweep_model(
    checkpoint: str | os.PathLike,
    *,
    trained_at_db: float,
    name: str | None = None,
    experiment: str | None = None,
) -> SweepModel:
    """The one place a swept model gets its label (the ``method`` of ``sweep.csv``).

    Parameters
    ----------
    checkpoint
        A checkpoint, or a run folder (its ``best.ckpt``).
    trained_at_db
        Input PSNR (dB) of the data it was trained on; NaN when unknown.
    name
        The model's name; default the run folder's name (else the checkpoint's stem).
    experiment
        For a model trained in another experiment: appended as ``name (experiment)``.

    >>> sweep_model("runs/x/train/n2n-mse/best.ckpt", trained_at_db=29.9).label
    'n2n-mse'
    >>> sweep_model("a/n2n-mse.ckpt", trained_at_db=24.0, name="n2n-mse", experiment="ct24").label
    'n2n-mse (ct24)'
    """
    path = Path(checkpoint)
    path = path / "best.ckpt" if path.is_dir() else path
    label = name or path.parent.name or path.stem
    label = f"{label} ({experiment})" if experiment else label
    return SweepModel(label, path, float(trained_at_db))


def trained_sweep_models(
    data_path: str | os.PathLike,
    checkpoints: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
) -> list[SweepModel]:
    """Models trained on ``data_path`` itself: trained at the dataset's achieved PSNR.

    ``checkpoints`` is a sequence of checkpoints / run folders (labelled by folder name) or a
    mapping name -> checkpoint.
    """
    trained_at = read_attrs(data_path).achieved_psnr_db
    if isinstance(checkpoints, Mapping):
        return [sweep_model(c, trained_at_db=trained_at, name=n) for n, c in checkpoints.items()]
    return [sweep_model(c, trained_at_db=trained_at) for c in checkpoints]


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


def noise_model_for(attrs: DatasetAttrs) -> tuple[str, NoiseFunction, Callable]:
    """The dataset's noise model as (name, noise function, level solver for a target PSNR).

    The solver maps ``(clean scaled (I, H, W), scale (I,), target_db) -> level``.
    """
    model = attrs.noise_model
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


def spread_over_objects(object_id, n_images: int | None) -> np.ndarray:
    """Positions of ``n_images`` images spread evenly over the objects, in file order.

    Objects take turns (round-robin in order of first appearance) until ``n_images`` are given
    out, so every object gets one before any gets two; within an object of ``m`` images, ``c``
    chosen are the centres of ``c`` equal strata, positions ``floor((j + 0.5) m / c)`` (one
    image: the middle one). Deterministic: no random numbers.

    Parameters
    ----------
    object_id
        (I,) object of each image (phantom or patient), in file order.
    n_images
        Images to choose (>= 1); None or ``>= I`` chooses all.

    Returns
    -------
    numpy.ndarray
        (min(n_images, I),) int64 positions into ``object_id``, increasing.

    >>> spread_over_objects(["a"] * 4 + ["b"] * 2, 3).tolist()
    [1, 3, 5]
    """
    ids = np.asarray(object_id)
    if n_images is not None and n_images < 1:
        raise LowdoseInputError(f"n_images={n_images}: choose at least 1 image (or all: None)")
    if n_images is None or n_images >= len(ids):
        return np.arange(len(ids), dtype=np.int64)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in np.argsort(first)]  # objects in file order
    counts = [0] * len(members)
    while sum(counts) < n_images:  # round-robin: one more image for each object that has one
        for k, images in enumerate(members):
            if counts[k] < len(images) and sum(counts) < n_images:
                counts[k] += 1
    chosen = [
        images[((np.arange(c) + 0.5) * len(images) / c).astype(int)]
        for images, c in zip(members, counts, strict=True)
        if c
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def run_sweep(
    data_path: str | Path,
    models: Sequence[SweepModel],
    *,
    targets_db: Sequence[float],
    filters: Sequence[str] = ("gaussian", "median", "bilateral"),
    n_images: int | None = 20,
    seed: int = 0,
    log: Log | None = None,
):
    """Re-noise test images at each target input PSNR; denoise with models and oracle filters.

    Parameters
    ----------
    data_path
        HDF5 dataset with ``clean`` (the sweep needs clean references).
    models
        Trained models to sweep (:func:`sweep_model`, :func:`trained_sweep_models`).
    targets_db
        Target input PSNRs (dB, data_range 1 on the dataset scale); the achieved input PSNR per
        image is what the table records.
    filters
        Filters tuned per image against the clean reference (``oracle``); ``bm3d-psd`` is BM3D
        given each level's true noise power spectrum, its strength tuned per image against the
        clean image (``oracle-psd``: correlated noise such as FBP's).
    n_images
        Test images to sweep, spread evenly over the test objects (:func:`spread_over_objects`:
        round-robin over phantoms/patients, evenly spaced within each); all if None.
    seed
        Seeds the noise; level ``k`` uses ``default_rng([seed, k])``.
    log
        Receives one line per finished level (its achieved mean input PSNR).

    Returns
    -------
    pandas.DataFrame
        One row per method x level x image with the columns of
        :data:`lowdose.data.results.SWEEP_COLUMNS`.
    """
    import pandas as pd

    split = load_split(data_path, "test")
    if split.clean is None:
        raise LowdoseInputError(
            f"{data_path}: the sweep needs clean test images; this file has none"
        )
    pick = spread_over_objects(split.object_id, n_images)
    clean = split.clean[pick].astype(np.float32)
    index = np.asarray(split.index)[pick]
    scale = np.asarray(split.scale)[pick]
    _, add_noise, solve = noise_model_for(split.attrs)
    loaded = [(spec, load_model(spec.checkpoint)[0]) for spec in models]
    rows = []
    for k, target in enumerate(targets_db):
        level = float(solve(clean, scale, float(target)))
        noisy = add_noise(clean, scale, level, np.random.default_rng([seed, k]))
        input_db = np.atleast_1d(psnr(clean, noisy, data_range=1.0))
        outputs = _level_outputs(clean, noisy, loaded, filters)
        for (method, trained_at, tuning), out_db in outputs.items():
            for i in range(len(clean)):
                rows.append(
                    (
                        method,
                        trained_at,
                        level,
                        int(index[i]),
                        input_db[i],
                        out_db[i],
                        out_db[i] - input_db[i],
                        tuning,
                    )
                )
        if log is not None:
            log(f"level {k + 1}/{len(targets_db)}: input {input_db.mean():.2f} dB")
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def _level_outputs(clean, noisy, loaded, filters) -> dict[tuple, np.ndarray]:
    """(method, trained_at_db, tuning) -> (I,) output PSNR in dB at one noise level."""
    outputs = {}
    for spec, model in loaded:
        estimate = predict(model, noisy)
        key = (spec.label, spec.trained_at_db, "none")
        outputs[key] = np.atleast_1d(psnr(clean, estimate, data_range=1.0))
    for name in filters:
        if name == PSD_FILTER:
            outputs[("bm3d", np.nan, "oracle-psd")] = _oracle_psd_db(clean, noisy)
            continue
        result = tune_oracle(noisy, clean, name)
        outputs[(name, np.nan, "oracle")] = np.atleast_1d(result.best_psnr_db)
    return outputs


def _oracle_psd_db(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """(I,) PSNR of BM3D given the level's true noise spectrum, strength tuned per image
    against clean (``oracle-psd``: the sweep's filters are all oracles)."""
    psd = noise_psd(noisy.astype(np.float64) - clean)
    tuned = tune_psd_scale_oracle(noisy, clean, psd, data_range=1.0)
    return np.array([max(t["value"] for t in result.table) for result in tuned])


def write_sweep(table, out_dir: str | Path) -> Path:
    """Write ``sweep.csv`` atomically into ``out_dir`` and return its path."""
    path = Path(out_dir) / "sweep.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path
