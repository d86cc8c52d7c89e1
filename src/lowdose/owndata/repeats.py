"""Datasets from users' own noisy data: two or more independent acquisitions, no clean image.

:func:`build_from_repeats` reads the inputs (:mod:`lowdose.owndata.acquisitions`), pairs their
slices, checks every pair shows the same object (:mod:`lowdose.physics.noise_estimation`), estimates
the noise variance from the pairs, and writes the standard dataset file with ``noisy`` (I, N, H, W)
and no ``clean``; training then validates against the held-out second realisation.

Scaling (the CT simulator's convention, ``scaling_rule = dataset_max``):

- DICOM (HU): ``scaled = (HU + 1024) / divisor`` (``scaling_offset = 1024``). Noisy values are not
  clipped at 0: clipping the noise in air would bias the Noise2Noise targets, and inference does
  not clip either. Only the scanner's padding outside the field of view (values below
  :data:`lowdose.physics.field_of_view.PADDING_BELOW_HU` connected to the image border, e.g.
  -2048 or -3024 HU; :func:`lowdose.physics.field_of_view.field_of_view_mask`), which neither
  tissue nor the noise around air at -1000 HU reaches, is set to -1024 HU; the dataset then keeps
  the field of view as ``fov`` (I, H, W) uint8 (1 inside every realisation).

The noise variance is estimated on the values as read (before that padding rule): constant padding
and clip floors are left out by :func:`lowdose.physics.noise_estimation.pair_noise_variance` itself.
- TIFF / .npy: ``scaled = value / divisor`` (``scaling_offset = 0``), values as stored.

``divisor`` is the largest per-image maximum of the Gaussian-smoothed (sigma 2 px) pair mean over
the dataset (:func:`lowdose.data.scaling.estimate_clean_max`): a noise-robust stand-in for the clean
maximum that the CT simulator divides by.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary, split_write_and_summarise
from lowdose.data.scaling import HU_OFFSET, estimate_clean_max, hu_to_scaled
from lowdose.data.split_plan import plan_split
from lowdose.owndata.acquisitions import (
    Acquisition,
    check_geometry,
    match_indices,
    read_acquisition,
)
from lowdose.physics.field_of_view import field_of_view_mask
from lowdose.physics.noise_estimation import check_same_object, pair_noise_variance


@dataclass(frozen=True)
class PairNoise:
    """The noise variance that pairs of acquisitions show: ``Var(y1 - y2) / 2`` pooled over
    images on the dataset scale (``noise_variance``), the same in raw units squared (HU^2 for
    DICOM; ``noise_variance_raw``) and per image ((I,) float64, dataset scale)."""

    noise_variance: float
    noise_variance_raw: float
    noise_variance_per_image: np.ndarray


def build_from_repeats(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    match: Literal["position", "order"] = "position",
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_by: str = "auto",
    objects: Literal["auto", "image"] = "auto",
    skip_bad: bool = False,
) -> DatasetSummary[PairNoise]:
    """Build a dataset from N >= 2 independent noisy acquisitions of the same objects.

    Parameters
    ----------
    inputs : sequence of path
        DICOM folders/files, TIFF stacks, .npy stacks (H, W) or (S, H, W), or folders of them;
        one acquisition each, all of the same kind.
    out : path
        Dataset file to write (atomically).
    match : {"position", "order"}
        How slices are paired (see :mod:`lowdose.owndata.acquisitions`); stacks always pair by
        order.
    fractions : (train, val, test) or (train, test)
        Fractions of objects, slices or tiles per split (:mod:`lowdose.data.split_plan`).
    seed : int
        Seeds the split.
    split_by : {"auto", "patient", "volume", "slab", "region"}
        How to split (:func:`lowdose.data.split_plan.plan_split`): patient = PatientID (DICOM)
        or the stack file, volume = the series or file. ``"image"`` is read as
        ``objects="image"`` with ``"auto"`` (scripts that pass it keep working).
    objects : {"auto", "image"}
        The objects: ``"auto"`` = as above; ``"image"`` = every slice is its own patient
        (unrelated images in one stack).
    skip_bad : bool
        Leave unreadable files of a folder out instead of stopping.

    Returns
    -------
    DatasetSummary[PairNoise]

    Raises
    ------
    LowdoseInputError
        Fewer than two inputs; mixed kinds; a slice without a partner; a pair of different size
        or geometry; a pair that does not show the same object. One line naming both files.
    """
    started = time.perf_counter()
    paths = [Path(p) for p in inputs]
    if len(paths) < 2:
        named = paths[0] if paths else "nothing"
        raise LowdoseInputError(
            f"one realisation ({named}) cannot show noise: pass two or more independent "
            "acquisitions of the same objects"
        )
    acquisitions = [read_acquisition(p, skip_bad=skip_bad) for p in paths]
    check_kinds(acquisitions)
    rows = match_indices(acquisitions, match)  # (I, N)
    raw = _paired_stack(acquisitions, rows)  # (I, N, H, W)
    is_hu = acquisitions[0].kind == "dicom"
    noisy, divisor, fov = scale_measured(raw, is_hu=is_hu)
    variances_raw = np.array([pair_noise_variance(image)[0] for image in raw])
    if split_by == "image":  # scripts still pass it: every slice its own object
        objects, split_by = "image", "auto"
    patients, volumes = _object_ids(acquisitions[0], rows[:, 0], objects)
    plan = plan_split(
        patients,
        image_shape=raw.shape[2:],
        rng=np.random.default_rng(seed),
        method=split_by,
        volume_id=volumes,
        fractions=fractions,
    )
    pooled_raw = float(np.mean(variances_raw))
    attrs = DatasetAttrs(
        modality="ct" if is_hu else "xray",
        noise_model="measured",
        scaling_rule="dataset_max",
        noise_level=pooled_raw / divisor**2,
        scaling_offset=HU_OFFSET if is_hu else 0.0,
        raw_units="hu" if is_hu else "as stored",
        seed=seed,
        description=f"lowdose dataset from-repeats: {len(paths)} acquisitions, no clean",
    ).with_extra(
        pair_noise_variance=pooled_raw / divisor**2,
        pair_noise_variance_raw=pooled_raw,
        pair_noise_rule="Var(y_i - y_j)/2 over pixels away from clip floors, mean over pairs",
        match=match,
        inputs=" | ".join(str(p) for p in paths),
    )
    details = PairNoise(pooled_raw / divisor**2, pooled_raw, variances_raw / divisor**2)
    return split_write_and_summarise(
        out,
        plan=plan,
        clean=None,
        noisy=noisy,
        scale=np.full(len(rows), divisor, np.float32),
        attrs=attrs,
        started_s=started,
        details=details,
        fov=fov,
    )


def scale_measured(raw: np.ndarray, *, is_hu: bool) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Measured images on the dataset scale (the module docstring's rules).

    Parameters
    ----------
    raw : ndarray (I, N, H, W) float
        HU (``is_hu``) or values as stored; not modified.

    Returns
    -------
    noisy : ndarray (I, N, H, W) float32
        ``(HU + 1024) / divisor`` with out-of-field padding set to -1024 HU, or ``raw / divisor``.
    divisor : float
    fov : ndarray (I, H, W) bool or None
        True inside the field of view of every realisation; None when nothing is padding.
    """
    if not is_hu:
        divisor = dataset_divisor(raw)
        return (raw / divisor).astype(np.float32), divisor, None
    inside = field_of_view_mask(raw.reshape(-1, *raw.shape[2:])).reshape(raw.shape)
    padded_hu = np.where(inside, raw, -HU_OFFSET)  # the noise around air is kept unclipped
    divisor = dataset_divisor(padded_hu + HU_OFFSET)
    fov = inside.all(axis=1)
    return hu_to_scaled(padded_hu, divisor), divisor, None if fov.all() else fov


def check_kinds(acquisitions: list[Acquisition]) -> None:
    """Raise unless every acquisition has the first one's kind (DICOM, TIFF, .npy)."""
    first = acquisitions[0]
    for other in acquisitions[1:]:
        if other.kind != first.kind:
            raise LowdoseInputError(
                f"{first.path} is {first.kind} but {other.path} is {other.kind}; "
                "give every acquisition in the same format"
            )


def _paired_stack(acquisitions: list[Acquisition], rows: np.ndarray) -> np.ndarray:
    """(I, N, H, W) float64 raw values after the geometry and same-object checks of each pair."""
    first = acquisitions[0]
    for i, row_a in enumerate(rows[:, 0]):
        for n, other in enumerate(acquisitions[1:], start=1):
            check_geometry(first, int(row_a), other, int(rows[i, n]))
            check_same_object(
                first.values[row_a],
                other.values[rows[i, n]],
                first.labels[row_a],
                other.labels[rows[i, n]],
            )
    return np.stack([a.values[rows[:, n]] for n, a in enumerate(acquisitions)], axis=1).astype(
        np.float64
    )


def dataset_divisor(shifted: np.ndarray) -> float:
    """The largest smoothed maximum of the realisations' mean, (I, N, H, W) -> float > 0."""

    divisor = float(np.max(estimate_clean_max(shifted.mean(axis=1))))
    if not divisor > 0:
        raise LowdoseInputError("the images have no positive values to scale by; check units")
    return divisor


def _object_ids(first: Acquisition, rows: np.ndarray, objects: str):
    """(patient, volume) ids (I,) str of the pairs, read from the first acquisition."""
    if objects not in ("auto", "image"):
        raise LowdoseInputError(f"--objects {objects!r} is unknown; use 'auto' or 'image'")
    if objects == "image":
        ids = np.array([f"image{int(r):05d}" for r in rows])
        return ids, ids
    patients = np.array([first.object_id[int(r)] for r in rows])
    return patients, np.array([first.volume_id[int(r)] for r in rows])
