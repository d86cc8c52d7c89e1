"""Reading Data Exchange HDF5 scans, the layout of tomopy and dxchange users.

The layout (De Carlo et al., J. Synchrotron Rad. 21 (2014) 1224): ``/exchange/data`` holds the
projections ``(n_angles, rows, columns)``, ``/exchange/data_white`` the flat (open-beam) frames,
``/exchange/data_dark`` the dark frames (all of them, before and after the scan, in file order)
and ``/exchange/theta`` the angles. Every part but the data is optional.

The unit of ``theta``: the Data Exchange definition stores **degrees**, and dxchange's
``read_aps_32id`` converts them to radians on reading (``theta * pi / 180``), which is why tomopy
code holds radians while the files hold degrees. Here a ``units`` attribute on ``theta`` decides
when present; otherwise degrees, unless the values span at most ~2 pi (then radians, and the
note says so: :func:`lowdose.io.scan_parts.angles_in_degrees`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.scan_parts import ScanParts, angles_in_degrees, matched_to_views
from lowdose.io.sinogram import checked_numeric

DATA_KEY = "exchange/data"
FLATS_KEY = "exchange/data_white"
DARKS_KEY = "exchange/data_dark"
THETA_KEY = "exchange/theta"


def is_data_exchange(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file holding ``/exchange/data``."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return DATA_KEY in handle
    except OSError:
        return False


def read_data_exchange(path: Path, *, dataset_key: str | None = None) -> ScanParts:
    """The projections, flats, darks and angles of a Data Exchange file.

    Parameters
    ----------
    path : Path
        An HDF5 file with ``/exchange/data``.
    dataset_key : str, optional
        Another dataset to read as the projections (default ``/exchange/data``).

    Returns
    -------
    ScanParts
        ``layout="data-exchange"``, arrays in their stored dtype, angles in degrees.
    """
    import h5py

    data_key = (dataset_key or DATA_KEY).strip("/")
    try:
        with h5py.File(path, "r") as handle:
            if data_key not in handle or not hasattr(handle[data_key], "shape"):
                raise LowdoseInputError(f"{path}: no dataset /{data_key}; check --dataset-key")
            projections = checked_numeric(np.asarray(handle[data_key][()]), f"{path}:/{data_key}")
            if projections.ndim != 3 or min(projections.shape) < 1:
                raise LowdoseInputError(
                    f"{path}: /{data_key} has shape {projections.shape}; Data Exchange "
                    "projections are (n_angles, rows, columns)"
                )
            flats = _frames(handle, FLATS_KEY, projections.shape, path)
            darks = _frames(handle, DARKS_KEY, projections.shape, path)
            theta = handle[THETA_KEY] if THETA_KEY in handle else None
            stored_theta = None if theta is None or theta.size == 0 else np.asarray(theta[()])
            unit = _unit_label(theta) if theta is not None else None
    except OSError as exc:
        raise LowdoseInputError(f"{path}: cannot be read as HDF5 ({exc}); check the file") from None
    n_angles, rows, cols = projections.shape
    parts = ScanParts("data-exchange", projections, flats, darks)
    theta_note = "no theta"
    if stored_theta is not None:
        angles, how = angles_in_degrees(stored_theta, name=f"/{THETA_KEY}", unit=unit, source=path)
        parts.angles_deg, trimmed = matched_to_views(angles, n_angles, name="theta", source=path)
        parts.angles_from = f"/{THETA_KEY}"
        theta_note = "theta in " + how.split(" in ", 1)[1]
        parts.notes.extend(line for line in (trimmed,) if line)
    parts.notes.insert(
        0,
        f"Data Exchange: {n_angles} projections {rows} x {cols} ({projections.dtype}), "
        f"{_count(flats)} flats, {_count(darks)} darks, {theta_note}",
    )
    return parts


def _frames(handle, key: str, shape: tuple, path: Path) -> np.ndarray | None:
    """Reference frames as (n, rows, cols), or None when the dataset is absent or empty."""
    if key not in handle or handle[key].size == 0:
        return None
    frames = checked_numeric(np.asarray(handle[key][()]), f"{path}:/{key}")
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or frames.shape[1:] != tuple(shape[1:]):
        raise LowdoseInputError(
            f"{path}: /{key} has shape {frames.shape} but the projections are {shape[1]} x "
            f"{shape[2]}; fix the file"
        )
    return frames


def _unit_label(dataset) -> str | None:
    for name in ("units", "unit"):
        if name in dataset.attrs:
            value = dataset.attrs[name]
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _count(frames: np.ndarray | None) -> int:
    return 0 if frames is None else len(frames)
