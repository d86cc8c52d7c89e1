"""Train/val/test splits by object: one phantom or patient never lands in two splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lowdose.core.errors import LowdoseInputError

SPLITS = ("train", "val", "test")


def split_by_object(object_id: Sequence, *, fractions=(0.8, 0.2), rng: np.random.Generator):
    """Assign every image a split so that no object (phantom, patient) spans two splits.

    Parameters
    ----------
    object_id : sequence (I,)
        Object of each image.
    fractions : (train, test) or (train, val, test)
        Fractions of *objects* per split, >= 0, summing to 1. Counts are rounded by largest
        remainder; a split with a positive fraction gets at least one object.
    rng : numpy.random.Generator
        Shuffles the objects.

    Returns
    -------
    ndarray (I,) str
        ``"train"``, ``"val"`` or ``"test"`` per image.
    """
    ids = np.array([str(v) for v in np.asarray(object_id).ravel()])
    names = ("train", "test") if len(fractions) == 2 else ("train", "val", "test")
    frac = np.asarray(fractions, dtype=np.float64)
    if len(fractions) not in (2, 3) or np.any(~np.isfinite(frac) | (frac < 0)):
        raise LowdoseInputError(f"fractions {fractions!r}: pass 2 or 3 values >= 0")
    if abs(frac.sum() - 1.0) > 1e-6:
        raise LowdoseInputError(f"fractions {fractions!r} sum to {frac.sum():.6g}; make them 1")
    objects = np.unique(ids)
    if objects.size < np.count_nonzero(frac):
        raise LowdoseInputError(
            f"{objects.size} objects cannot fill {np.count_nonzero(frac)} non-empty splits"
        )
    counts = _object_counts(frac, objects.size)
    order = rng.permutation(objects.size)
    labels = np.repeat(np.array(names), counts)
    split_of = dict(zip(objects[order].tolist(), labels.tolist(), strict=True))
    return np.array([split_of[v] for v in ids.tolist()])


def _object_counts(frac: np.ndarray, n_objects: int) -> np.ndarray:
    """Objects per split: largest remainder, at least one for every positive fraction."""
    exact = frac * n_objects
    counts = np.maximum(np.floor(exact).astype(int), (frac > 0).astype(int))
    while counts.sum() > n_objects:  # the minimum of one took objects from a big split
        counts[np.argmax(counts - (frac > 0))] -= 1
    while counts.sum() < n_objects:
        counts[np.argmax(exact - counts)] += 1
    return counts


def check_split_table(object_id, split, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-image ``object_id`` and ``split``; return them as (I,) str arrays.

    Raises unless both have one entry per image, every split is one of :data:`SPLITS` and no
    object spans two splits; ``where`` (a file name) opens the message.
    """
    ids = np.array([str(v) for v in np.asarray(object_id).ravel()], dtype=str)
    splits = np.array([str(v) for v in np.asarray(split).ravel()], dtype=str)
    if ids.size == 0 or ids.shape != splits.shape:
        raise LowdoseInputError(
            f"{where}: object_id ({ids.size}) and split ({splits.size}) need one entry per image"
        )
    unknown = sorted(set(splits.tolist()) - set(SPLITS))
    if unknown:
        raise LowdoseInputError(f"{where}: split values {unknown} are unknown; use {SPLITS}")
    pairs = np.unique(np.stack([ids, splits], axis=1), axis=0)  # (unique (object, split), 2)
    objects, counts = np.unique(pairs[:, 0], return_counts=True)
    if np.any(counts > 1):
        name = str(objects[np.argmax(counts > 1)])
        used = pairs[pairs[:, 0] == name, 1].tolist()
        raise LowdoseInputError(f"{where}: object {name!r} spans splits {used}; split by object")
    return ids, splits
