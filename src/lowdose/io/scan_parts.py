"""What a projection reader finds in a scan, before :mod:`lowdose.io.projections` checks it.

Each layout reader (:mod:`lowdose.io.data_exchange`, :mod:`lowdose.io.tiff_stack`,
:mod:`lowdose.io.sinogram_file`) returns a :class:`ScanParts`; the rules every reader shares live
here: the unit of stored angles, and angle lists that carry extra entries for reference frames.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from lowdose.core.errors import LowdoseInputError

RADIAN_SPAN_LIMIT = 2 * math.pi * 1.01
"""Angles spanning at most this are radians unless labelled: in degrees they would be a scan of
under 6.4 degrees, which no tomography takes."""
_RADIAN_WORDS = {"rad", "rads", "radian", "radians"}
_DEGREE_WORDS = {"deg", "degs", "degree", "degrees"}


@dataclass
class ScanParts:
    """The pieces of one scan, as stored.

    Attributes
    ----------
    layout : str
        ``"data-exchange"``, ``"tiff-stack"`` or ``"sinogram"``.
    projections : ndarray (n_angles, rows, cols)
        Stored dtype (e.g. uint16 counts, float32 line integrals).
    flats, darks : ndarray (n_frames, rows, cols) or None
        Reference frames, stored dtype, all frames in file order.
    angles_deg : ndarray (n_angles,) float64 or None
        View angles in degrees (converted from radians where the file holds radians).
    angles_from : str
        Where the angles came from (a dataset, variable or file name); ``""`` when none.
    notes : list of str
        What the reader found, one line each.
    """

    layout: str
    projections: np.ndarray
    flats: np.ndarray | None = None
    darks: np.ndarray | None = None
    angles_deg: np.ndarray | None = None
    angles_from: str = ""
    notes: list[str] = field(default_factory=list)


def angles_in_degrees(values, *, name: str, unit: str | None = None, source="") -> tuple:
    """Stored angles in degrees, and one line saying which unit was read and why.

    Parameters
    ----------
    values : array_like
        The stored angles, any shape (flattened).
    name : str
        The dataset, variable or file they came from (``"anglesRad"``, ``"/exchange/theta"``).
    unit : str, optional
        A unit label from the file (an HDF5 ``units`` attribute): ``deg...`` or ``rad...``.
    source : path or str
        The file, named in errors.

    Returns
    -------
    angles_deg : ndarray (n,) float64
    note : str
        E.g. ``"angles from anglesRad in radians (by name)"``.

    Notes
    -----
    In order: the unit label; the name (a word ``rad``/``radians`` or ``deg``/``degrees`` in it,
    ``anglesRad`` included); the range, radians when the
    angles span at most :data:`RADIAN_SPAN_LIMIT`; else degrees (the Data Exchange convention).
    """
    angles = np.asarray(values, dtype=np.float64).ravel()
    if angles.size == 0 or not np.all(np.isfinite(angles)):
        raise LowdoseInputError(f"{source}: angles {name} are empty or not finite; fix the file")
    label = (unit or "").strip().lower()
    span = float(angles.max() - angles.min())
    if label.startswith("rad"):
        radians, why = True, f"its unit label {unit!r}"
    elif label.startswith("deg"):
        radians, why = False, f"its unit label {unit!r}"
    elif _RADIAN_WORDS & _words(name):
        radians, why = True, "by name"
    elif _DEGREE_WORDS & _words(name):
        radians, why = False, "by name"
    elif angles.size > 1 and 0 < span <= RADIAN_SPAN_LIMIT:
        radians, why = True, f"by range: they span {span:.4g}, a {span:.2g}-degree scan otherwise"
    else:
        radians, why = False, f"by range: they span {span:.4g}"
    unit_name = "radians" if radians else "degrees"
    angles_deg = np.rad2deg(angles) if radians else angles
    note = f"angles from {name} in {unit_name} ({why})"
    turns = int(float(angles_deg.min()) / 360.0)  # towards zero: -88 stays, 16740 -> 180
    if turns:  # whole turns change no view: start within [0, 360) so people can read them
        angles_deg = angles_deg - 360.0 * turns
        note += f"; less {turns} whole turn(s): {angles_deg.min():.4g}..{angles_deg.max():.4g} deg"
    return angles_deg, note


def matched_to_views(angles, n_views: int, *, name: str, source) -> tuple[np.ndarray, str]:
    """Angles trimmed to ``n_views``: repeats of the first and last angle dropped.

    Instruments often list an angle for every frame they took, reference frames included: flats
    and darks are taken with the stage parked at the first or last angle, so they appear as runs
    of that angle at the ends (Savu's ``image_test`` lists 111 angles for 91 projections). Only
    such runs are dropped, and only when that leaves exactly one angle per view.

    Returns
    -------
    angles : ndarray (n_views,) float64
    note : str
        ``""`` when nothing was dropped, else one line saying what was.
    """
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if angles.size == n_views:
        return angles, ""
    steps = np.abs(np.diff(angles))
    typical = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 1.0
    same = steps <= 0.01 * typical
    lead = int(np.argmin(same)) if not same.all() else len(same)  # repeats after the first
    trail = int(np.argmin(same[::-1])) if not same.all() else 0
    trimmed = angles[lead : angles.size - trail]
    if angles.size < n_views or trimmed.size != n_views:
        raise LowdoseInputError(
            f"{source}: {name} holds {angles.size} angles for {n_views} projections; give one "
            "angle per projection"
        )
    note = (
        f"{name}: {angles.size} angles for {n_views} projections; dropped {lead} repeat(s) of "
        f"the first and {trail} of the last angle (reference frames taken with the stage parked)"
    )
    return trimmed, note


def _words(name: str) -> set[str]:
    """Lower-case words of a name split at punctuation and camelCase: ``anglesRad`` -> angles,
    rad."""
    return {word.lower() for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)}
