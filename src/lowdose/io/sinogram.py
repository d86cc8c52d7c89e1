"""Reading sinograms, their angles, and flat/dark fields (for
:mod:`lowdose.owndata.split_sinogram`).

Formats: ``.npy``, TIFF (``.tif``/``.tiff``, tifffile) and HDF5 (``.h5``/``.hdf5``/``.nxs``,
h5py; the dataset named by ``dataset_key``, or the file's only dataset). A sinogram is
``(n_angles, n_det)`` or a stack ``(slices, n_angles, n_det)``.

Pre-log counts read here become line integrals in :func:`lowdose.physics.flat_field.log_normalise`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError

_HDF5 = (".h5", ".hdf5", ".hdf", ".nxs")


def read_array(path: str | os.PathLike, *, dataset_key: str | None = None) -> np.ndarray:
    """Read one array from .npy, TIFF or HDF5 as float64; raise one line naming the file."""
    return read_stored_array(path, dataset_key=dataset_key).astype(np.float64)


def read_stored_array(path: str | os.PathLike, *, dataset_key: str | None = None) -> np.ndarray:
    """Read one array from .npy, TIFF (every frame) or HDF5 in its stored numeric dtype.

    Parameters
    ----------
    path : str or PathLike
        ``.npy``, ``.tif``/``.tiff`` or ``.h5``/``.hdf5``/``.hdf``/``.nxs``.
    dataset_key : str, optional
        The HDF5 dataset (default: the file's only dataset).

    Returns
    -------
    ndarray
        As stored (e.g. uint16 counts), numeric and finite.

    Raises
    ------
    LowdoseInputError
        A missing, unreadable, non-numeric or non-finite file, named with the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise LowdoseInputError(f"{path}: no such file; check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
        elif suffix in _HDF5:
            array = _read_hdf5(path, dataset_key)
        else:
            raise LowdoseInputError(
                f"{path}: unknown sinogram format {suffix!r}; use .npy, .tif or .h5"
            )
    except (OSError, ValueError) as exc:
        if isinstance(exc, LowdoseInputError):
            raise
        reason = f"{exc.__class__.__name__}: {exc}"
        raise LowdoseInputError(f"{path}: cannot be read ({reason}); check the file") from None
    return checked_numeric(np.asarray(array), path)


def checked_numeric(array: np.ndarray, source) -> np.ndarray:
    """``array`` unchanged if it is numeric and finite; else one line naming ``source``."""
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise LowdoseInputError(f"{source}: dtype {array.dtype} is not numeric")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{source}: contains NaN or Inf; mask or repair those bins first")
    return array


def _read_hdf5(path: Path, dataset_key: str | None) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        names: list[str] = []
        handle.visititems(lambda name, obj: names.append(name) if hasattr(obj, "shape") else None)
        if dataset_key is None:
            if len(names) != 1:
                raise LowdoseInputError(
                    f"{path}: holds datasets {names[:6]}; choose one with --dataset-key"
                )
            dataset_key = names[0]
        if dataset_key not in handle:
            raise LowdoseInputError(f"{path}: no dataset {dataset_key!r}; it has {names[:6]}")
        return handle[dataset_key][()]


def read_sinogram_stack(path, *, dataset_key: str | None = None) -> np.ndarray:
    """(S, n_angles, n_det) float64 from a file holding (n_angles, n_det) or a stack of them."""
    array = read_array(path, dataset_key=dataset_key)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or min(array.shape[1:]) < 2 or array.shape[0] < 1:
        raise LowdoseInputError(
            f"{path}: shape {array.shape}; a sinogram is (n_angles, n_det) or "
            "(slices, n_angles, n_det)"
        )
    return array


def parse_angles(spec, n_angles: int) -> np.ndarray:
    """Projection angles in degrees, (n_angles,) float64.

    Parameters
    ----------
    spec : array_like, path, or str
        The angles themselves; a file (.npy, or text with one angle per line / comma separated);
        or a range ``"START:STOP"`` / ``"START:STOP:N"`` meaning N angles evenly spaced from
        START (included) to STOP (excluded), e.g. ``"0:180"`` or ``"0:360:720"``.
    n_angles : int
        Rows of the sinogram; the angles must match it.
    """
    if isinstance(spec, str) and ":" in spec and not Path(spec).exists():
        parts = spec.split(":")
        try:
            start, stop = float(parts[0]), float(parts[1])
            count = int(parts[2]) if len(parts) == 3 else n_angles
        except (ValueError, IndexError):
            raise LowdoseInputError(f"angles {spec!r}: use START:STOP or START:STOP:N") from None
        if len(parts) > 3 or count < 1:
            raise LowdoseInputError(f"angles {spec!r}: use START:STOP or START:STOP:N")
        angles = np.linspace(start, stop, count, endpoint=False)
    elif isinstance(spec, str | os.PathLike):
        path = Path(spec)
        if path.suffix.lower() in (".npy", ".tif", ".tiff", *_HDF5):
            angles = read_array(path).ravel()
        elif path.is_file():
            text = path.read_text(encoding="utf-8").replace(",", " ").split()
            try:
                angles = np.array([float(v) for v in text])
            except ValueError:
                raise LowdoseInputError(f"{path}: angles must be numbers in degrees") from None
        else:
            raise LowdoseInputError(f"angles {spec!r}: not a file nor START:STOP[:N]")
    else:
        angles = np.asarray(spec, dtype=np.float64).ravel()
    if angles.size != n_angles or not np.all(np.isfinite(angles)):
        raise LowdoseInputError(
            f"angles give {angles.size} finite values but the sinogram has {n_angles} views; "
            "pass one angle (degrees) per sinogram row"
        )
    return angles.astype(np.float64)
