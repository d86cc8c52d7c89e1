"""Reading a sinogram file as a scan: ``.mat``, ``.npy``, TIFF or (non Data Exchange) HDF5.

A sinogram is ``(n_angles, n_det)``, a stack ``(slices, n_angles, n_det)`` (lowdose's order,
:func:`lowdose.io.sinogram.read_sinogram_stack`); the scan holds it as projections
``(n_angles, slices, n_det)``: angles first, then one detector row per slice.

Files that name their arrays (MATLAB ``.mat``, HDF5 with several datasets) may carry the angles
beside the sinogram: an array whose name holds ``angle`` or ``theta`` is the angles, the other
numeric array the sinogram (``dataset_key`` picks it when there are several). MATLAB stores
``(n_det, n_angles)`` as often as not (``sino_basalt``: 627 x 530 for 530 angles): the axis
whose length matches the angles is the angle axis, and the note says when it was transposed.
Their unit follows :func:`lowdose.io.scan_parts.angles_in_degrees` (``anglesRad`` by name, the
basalt's ``angles`` by range).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.scan_parts import ScanParts, angles_in_degrees
from lowdose.io.sinogram import checked_numeric, read_stored_array

NAMED_SUFFIXES = (".mat", ".h5", ".hdf5", ".hdf", ".nxs")
_ANGLE_WORDS = ("angle", "theta")


def read_sinogram_file(path: Path, *, dataset_key: str | None = None) -> ScanParts:
    """A sinogram file as :class:`ScanParts` (rules: module docstring).

    Parameters
    ----------
    path : Path
        ``.mat``, ``.npy``, ``.tif``/``.tiff`` or HDF5.
    dataset_key : str, optional
        The variable or dataset holding the sinogram.

    Returns
    -------
    ScanParts
        ``layout="sinogram"``, projections ``(n_angles, slices, n_det)`` in the stored dtype.
    """
    angles_deg, angle_note, angles_from = None, "", ""
    if path.suffix.lower() in NAMED_SUFFIXES:
        arrays = _named_arrays(path)
        sino_name, angle_name = _pick(arrays, dataset_key, path)
        sinogram = checked_numeric(arrays[sino_name], f"{path}:{sino_name}")
        if angle_name is not None:
            angles_deg, angle_note = angles_in_degrees(
                arrays[angle_name], name=angle_name, source=path
            )
            angles_from = angle_name
    else:
        sino_name = path.name
        sinogram = read_stored_array(path, dataset_key=dataset_key)
    stored_shape = sinogram.shape
    sinogram, oriented = _angles_first(sinogram, angles_deg, path)
    n_angles, n_slices, n_det = sinogram.shape
    parts = ScanParts("sinogram", sinogram, angles_deg=angles_deg, angles_from=angles_from)
    shape_text = " x ".join(str(v) for v in stored_shape)
    parts.notes.append(
        f"sinogram: {sino_name} ({shape_text}, {sinogram.dtype}) read as {n_angles} angles x "
        f"{n_slices} slice(s) x {n_det} detector bins{oriented}"
    )
    parts.notes.extend(line for line in (angle_note,) if line)
    return parts


def _angles_first(sinogram: np.ndarray, angles_deg, path: Path) -> tuple[np.ndarray, str]:
    """(n_angles, slices, n_det) from a stored (n_angles, n_det), (n_det, n_angles) or stack."""
    if sinogram.ndim == 2:
        if angles_deg is not None and len(angles_deg) != sinogram.shape[0]:
            if len(angles_deg) != sinogram.shape[1]:
                raise LowdoseInputError(
                    f"{path}: {len(angles_deg)} angles fit neither axis of the sinogram "
                    f"{sinogram.shape}; give one angle per view"
                )
            return sinogram.T[:, None, :], " (stored detectors x angles: transposed)"
        return sinogram[:, None, :], ""
    if sinogram.ndim == 3 and min(sinogram.shape) >= 1:
        if angles_deg is not None and len(angles_deg) != sinogram.shape[1]:
            raise LowdoseInputError(
                f"{path}: {len(angles_deg)} angles for a stack of shape {sinogram.shape}; store "
                "it as (slices, n_angles, n_det)"
            )
        return np.transpose(sinogram, (1, 0, 2)), ""
    raise LowdoseInputError(
        f"{path}: shape {sinogram.shape}; a sinogram is (n_angles, n_det) or (slices, n_angles, "
        "n_det)"
    )


def _pick(arrays: dict, dataset_key: str | None, path: Path) -> tuple[str, str | None]:
    """The names of the sinogram and of the angles (None when the file has none)."""
    angle_names = [
        name
        for name, value in arrays.items()
        if any(word in name.lower() for word in _ANGLE_WORDS) and _is_vector(value)
    ]
    if dataset_key is not None:
        dataset_key = dataset_key.strip("/")
        if dataset_key not in arrays:
            raise LowdoseInputError(
                f"{path}: no array {dataset_key!r}; it has {sorted(arrays)[:8]} (--dataset-key)"
            )
        sino_name = dataset_key
    else:
        others = [n for n, v in arrays.items() if n not in angle_names and _is_image(v)]
        if len(others) != 1:
            raise LowdoseInputError(
                f"{path}: holds arrays {sorted(arrays)[:8]}; name the sinogram with --dataset-key"
            )
        sino_name = others[0]
    angle_names = [name for name in angle_names if name != sino_name]
    if len(angle_names) > 1:
        raise LowdoseInputError(
            f"{path}: several angle arrays {angle_names}; keep one beside the sinogram"
        )
    return sino_name, (angle_names[0] if angle_names else None)


def _is_image(value: np.ndarray) -> bool:
    return np.ndim(value) >= 2 and min(np.shape(value)) >= 2


def _is_vector(value: np.ndarray) -> bool:
    return np.ndim(value) >= 1 and int(np.size(value)) == max(np.shape(value))


def _named_arrays(path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays of a .mat (v5 or v7.3) or HDF5 file, by name, in MATLAB's axis order
    for .mat files."""
    if not path.is_file():
        raise LowdoseInputError(f"{path}: no such file; check the path")
    if path.suffix.lower() == ".mat":
        import scipy.io

        try:
            contents = scipy.io.loadmat(path)
        except NotImplementedError:  # a v7.3 .mat is HDF5, with the axes in reverse order
            return {name: value.T for name, value in _hdf5_arrays(path).items()}
        except (OSError, ValueError) as exc:
            raise LowdoseInputError(f"{path}: cannot be read as .mat ({exc})") from None
        return {
            name: np.asarray(value)
            for name, value in contents.items()
            if not name.startswith("__") and _numeric(value)
        }
    return _hdf5_arrays(path)


def _hdf5_arrays(path: Path) -> dict[str, np.ndarray]:
    import h5py

    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(
                lambda name, obj: (
                    arrays.update({name: obj[()]})
                    if hasattr(obj, "shape") and _numeric(obj)
                    else None
                )
            )
    except OSError as exc:
        raise LowdoseInputError(f"{path}: cannot be read as HDF5 ({exc})") from None
    return arrays


def _numeric(value) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
    )
