"""Flat- and dark-field correction: detector counts to line integrals, ``-log((P - D) / (F - D))``.

The one home of this correction, for instrument scans (:mod:`lowdose.io.projections`) and for
pre-log sinograms (:func:`log_normalise`, for :mod:`lowdose.owndata.split_sinogram`).

Rules, each stated in the :class:`FlatFieldReport` of a correction:

* **Reference frames.** Several flat (open-beam) frames ``F`` and dark (beam-off) frames ``D``
  are reduced pixel by pixel to their **median** (which ignores a frame hit by a zinger or a
  beam dump; for two frames the median is their mean). Darks taken before *and* after a scan are
  all passed together, in order, and reduced the same way.
* **Per projection** (``per_row=True``): one flat (and, when there are as many, one dark) frame
  per projection, i.e. per row of a sinogram, each used for its own projection, not reduced.
  This is chosen automatically for a single sinogram (projections with one detector row) whose
  flats number as many as its views: a flat given per view, ``(n_angles, n_det)`` in its file.
* **Zero and negative counts.** Where ``P - D <= 0`` or ``F - D <= 0`` (photon starvation, a dead
  or over-subtracted pixel) the difference is clipped to :data:`~lowdose.physics.noise.
  ZERO_COUNT_FLOOR` counts, the noise module's half-count rule, and counted in the report.
* **No flats.** Counts without flats are refused: normalising by a guessed open beam would
  invent the scale of every line integral. Values that are line integrals already pass through
  unchanged, and the report says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.physics.noise import ZERO_COUNT_FLOOR


@dataclass(frozen=True)
class FlatFieldReport:
    """What a flat/dark correction found and did.

    Attributes
    ----------
    n_flats, n_darks : int
        Flat and dark frames given (0 when none).
    flat_rule, dark_rule : str
        How the frames were reduced, e.g. ``"median of 10 frames"``, ``"per projection"``,
        ``"none (dark = 0)"``.
    nonpositive_pixels : int
        Projection pixels whose ``P - D`` or ``F - D`` was <= 0 and so was clipped to the floor.
    fraction_clipped : float
        ``nonpositive_pixels`` over all projection pixels, in [0, 1].
    dead_flat_pixels : int
        Pixels of the reduced flat with ``F - D <= 0`` (a dead pixel, or darks brighter than
        flats); counted over every frame when the fields are per projection.
    passed_through : bool
        True when the values were line integrals already and were returned unchanged.
    """

    n_flats: int
    n_darks: int
    flat_rule: str
    dark_rule: str
    nonpositive_pixels: int
    fraction_clipped: float
    dead_flat_pixels: int = 0
    passed_through: bool = False

    def lines(self) -> list[str]:
        """What was found and done, one line each, for people."""
        if self.passed_through:
            return ["values are line integrals already: passed through unchanged (no flat/dark)"]
        lines = [
            f"flat field: {self.n_flats} frame(s), {self.flat_rule}",
            f"dark field: {self.n_darks} frame(s), {self.dark_rule}",
            f"line integrals = -log((P - D) / (F - D)); {self.nonpositive_pixels} pixel(s) "
            f"({100 * self.fraction_clipped:.3g}%) had counts <= dark and were clipped to "
            f"{ZERO_COUNT_FLOOR:g} count",
        ]
        if self.dead_flat_pixels:
            lines.append(
                f"{self.dead_flat_pixels} detector pixel(s) have flat <= dark (dead or "
                "over-subtracted); clipped the same way"
            )
        return lines


def log_ratio(counts, flat, dark=None, *, dtype=np.float32) -> tuple[np.ndarray, int, int]:
    """``-log(max(counts - dark, floor) / max(flat - dark, floor))``, broadcasting the fields.

    Parameters
    ----------
    counts : array_like (...,)
        Detector counts (photons or ADU), finite.
    flat, dark : array_like broadcastable to ``counts``
        Open-beam and beam-off counts of each pixel (``dark`` None: 0).
    dtype : numpy dtype
        Dtype of the computation and of the result.

    Returns
    -------
    values : ndarray, shape of ``counts``, ``dtype``
        Dimensionless line integrals.
    clipped : int
        Values where ``counts - dark <= 0`` or ``flat - dark <= 0`` (clipped to the floor).
    dead : int
        Elements of ``flat - dark`` (before broadcasting to ``counts``) that are <= 0.
    """
    counts = np.asarray(counts, dtype=dtype)
    dark = np.zeros(1, dtype=dtype) if dark is None else np.asarray(dark, dtype=dtype)
    try:
        open_beam = np.asarray(flat, dtype=dtype) - dark
        fits = np.broadcast_shapes(open_beam.shape, counts.shape) == counts.shape
    except ValueError:
        fits = False
    if not fits:
        raise LowdoseInputError(
            f"flat {np.shape(flat)} / dark {np.shape(dark)} do not fit counts {counts.shape}; "
            "pass (n_det,), (n_angles, n_det) or the counts' shape"
        )
    signal = counts - dark
    dead_beam = open_beam <= 0
    clipped = int(np.count_nonzero((signal <= 0) | dead_beam))
    ratio = np.maximum(signal, ZERO_COUNT_FLOOR) / np.maximum(open_beam, ZERO_COUNT_FLOOR)
    return -np.log(ratio), clipped, int(np.count_nonzero(dead_beam))


def log_normalise(counts, flat, dark=None) -> np.ndarray:
    """Pre-log counts to line integrals: ``-log(max(counts - dark, floor) / (flat - dark))``.

    Parameters
    ----------
    counts : array_like (..., n_angles, n_det)
        Detector counts (photons or ADU), finite.
    flat : array_like broadcastable to ``counts``
        Open-beam (no object) counts, e.g. (n_det,) or (n_angles, n_det).
    dark : array_like broadcastable to ``counts``, optional
        Beam-off counts (default 0).

    Returns
    -------
    ndarray, shape of ``counts``, float64
        Dimensionless line integrals; a count at or below the dark level is replaced by
        :data:`lowdose.physics.noise.ZERO_COUNT_FLOOR` counts, the noise module's rule.
    """
    values, _, dead = log_ratio(counts, flat, dark, dtype=np.float64)
    if dead:
        raise LowdoseInputError("flat - dark must be > 0 in every detector bin; check the fields")
    return values


def line_integrals(
    projections,
    flats=None,
    darks=None,
    *,
    per_row: bool = False,
    values: Literal["counts", "line-integrals"] = "counts",
    source: str | os.PathLike | None = None,
) -> tuple[np.ndarray, FlatFieldReport]:
    """Projections to line integrals with their flat and dark frames (rules: module docstring).

    Parameters
    ----------
    projections : array_like (n_angles, rows, cols)
        Counts (or, with ``values="line-integrals"``, line integrals), finite.
    flats : array_like, optional
        Open-beam frames ``(n_flats, rows, cols)``, one frame ``(rows, cols)`` or one profile
        ``(cols,)`` for every row; frames of one row ``(n_flats, 1, cols)`` serve every row.
    darks : array_like, optional
        Beam-off frames, shaped like ``flats``; all frames taken before and after the scan.
    per_row : bool
        One flat (and dark) frame per projection, ``(n_angles, rows, cols)``, used pairwise;
        automatic for one-row projections with as many flats as views (module docstring).
    values : {"counts", "line-integrals"}
        What ``projections`` hold; line integrals pass through unchanged (flats must be None).
    source : path, optional
        The file the projections came from, named in error messages.

    Returns
    -------
    line_integrals : ndarray (n_angles, rows, cols) float32
        Dimensionless ``-log`` transmission.
    report : FlatFieldReport
        The frames found, the rules applied and the pixels clipped.

    Raises
    ------
    LowdoseInputError
        Counts without flats (names ``--flat``), frames that do not fit the projections, or
        flats given with line integrals.
    """
    where = f"{source}: " if source is not None else ""
    stack = np.asarray(projections)
    if stack.ndim != 3 or min(stack.shape) < 1:
        raise LowdoseInputError(
            f"{where}projections have shape {stack.shape}; pass (n_angles, rows, cols)"
        )
    if values == "line-integrals":
        if flats is not None or darks is not None:
            raise LowdoseInputError(
                f"{where}the values are line integrals already; drop --flat/--dark"
            )
        report = FlatFieldReport(0, 0, "none", "none", 0, 0.0, passed_through=True)
        return stack.astype(np.float32), report
    if values != "counts":
        raise LowdoseInputError(f"values={values!r}: use 'counts' or 'line-integrals'")
    if flats is None:
        raise LowdoseInputError(
            f"{where}counts without flat-field (open-beam) frames cannot be turned into line "
            "integrals; pass --flat FILE (and --dark FILE)"
        )
    flat_frames = _frames(flats, stack.shape, "flat", where)
    pairwise = per_row or (stack.shape[1] == 1 and len(flat_frames) == len(stack) > 1)
    flat, flat_rule = _reduced(flat_frames, stack.shape, pairwise, "flat", where)
    if darks is None:
        dark, dark_rule, n_darks = None, "none (dark = 0)", 0
    else:
        dark_frames = _frames(darks, stack.shape, "dark", where)
        paired_darks = pairwise and len(dark_frames) == len(stack)
        dark, dark_rule = _reduced(dark_frames, stack.shape, paired_darks, "dark", where)
        n_darks = len(dark_frames)
    out, clipped, dead = log_ratio(stack, flat, dark)
    report = FlatFieldReport(
        n_flats=len(flat_frames),
        n_darks=n_darks,
        flat_rule=flat_rule,
        dark_rule=dark_rule,
        nonpositive_pixels=clipped,
        fraction_clipped=clipped / stack.size,
        dead_flat_pixels=dead,
    )
    return out, report


def _frames(array, shape: tuple[int, int, int], name: str, where: str) -> np.ndarray:
    """Reference frames as (n_frames, rows or 1, cols) float32."""
    frames = np.asarray(array, dtype=np.float32)
    if frames.ndim == 1:
        frames = frames[None, None]
    elif frames.ndim == 2:
        frames = frames[None]
    rows_ok = frames.ndim == 3 and frames.shape[1] in (1, shape[1])
    if not rows_ok or frames.shape[2] != shape[2] or len(frames) < 1:
        raise LowdoseInputError(
            f"{where}{name} frames have shape {np.shape(array)} but the projections are "
            f"{shape[1]} x {shape[2]}; pass (n_frames, {shape[1]}, {shape[2]}), "
            f"({shape[1]}, {shape[2]}) or ({shape[2]},)"
        )
    if not np.all(np.isfinite(frames)):
        raise LowdoseInputError(f"{where}{name} frames contain NaN or Inf; repair them first")
    return frames


def _reduced(frames: np.ndarray, shape, pairwise: bool, name: str, where: str):
    """One reference per pixel (or per projection when ``pairwise``) and the rule used."""
    if pairwise:
        if len(frames) != shape[0]:
            raise LowdoseInputError(
                f"{where}per-projection {name} fields need one frame per projection "
                f"({shape[0]}), got {len(frames)}"
            )
        return frames, f"per projection ({len(frames)} frames, one per view)"
    if len(frames) == 1:
        return frames[0], "one frame, used as is"
    if len(frames) == 2:
        return frames.mean(axis=0), "mean of 2 frames"
    return np.median(frames, axis=0), f"median of {len(frames)} frames"
