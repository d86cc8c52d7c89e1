"""NIfTI, TIFF, PNG and .npy files: one reader and one writer per format, errors naming the file.

Used by :mod:`lowdose.io.images`; see its docstring for the units each format is taken in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError


def read_other(path: Path, kind: str) -> tuple[np.ndarray, dict]:
    """Read one non-DICOM file.

    Returns
    -------
    values : ndarray (F, H, W) float32
        F = 1 for a single image.
    extra : dict
        ``dtype`` (stored), ``ndim`` (stored, 2 or 3), ``units_note``; NIfTI adds ``affine`` and
        ``nifti_header``.
    """
    readers = {"nifti": _read_nifti, "tiff": _read_tiff, "png": _read_png, "npy": _read_npy}
    try:
        values, extra = readers[kind](path)
    except LowdoseInputError:
        raise
    except Exception as exc:  # each library raises its own types for a damaged file
        detail = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        message = f"{path}: cannot read as {kind} ({detail}); check the file"
        raise LowdoseInputError(message) from None
    array = np.asarray(values)
    if array.ndim not in (2, 3) or min(array.shape) < 1:
        raise LowdoseInputError(
            f"{path}: {kind} image has shape {array.shape}; need (H, W) or a stack (I, H, W)"
        )
    if not (np.issubdtype(array.dtype, np.number) and not np.iscomplexobj(array)):
        raise LowdoseInputError(f"{path}: values of dtype {array.dtype}; need real numbers")
    if not np.all(np.isfinite(array)):
        raise LowdoseInputError(f"{path}: contains NaN or Inf; fill or mask them first")
    extra = {"dtype": str(array.dtype), "ndim": array.ndim, **extra}
    stack = array[None] if array.ndim == 2 else array
    return stack.astype(np.float32), extra


def _read_nifti(path: Path):
    import nibabel

    image = nibabel.load(path)
    data = np.asarray(image.get_fdata(dtype=np.float32))  # scl_slope/scl_inter applied
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise LowdoseInputError(f"{path}: NIfTI has shape {data.shape}; need one 3-D volume")
    extra = {
        "affine": image.affine,
        "nifti_header": image.header,
        "units_note": "NIfTI values after scl_slope/scl_inter, assumed HU",
    }
    return np.ascontiguousarray(data.transpose(2, 1, 0)), extra  # (X, Y, Z) -> (Z, Y, X)


def _read_tiff(path: Path):
    import tifffile

    return tifffile.imread(path), {}


def _read_png(path: Path):
    import imageio.v3 as iio

    image = iio.imread(path)
    if image.ndim == 3:
        raise LowdoseInputError(f"{path}: colour PNG {image.shape}; save it as grayscale")
    return image, {"units_note": "PNG values as stored (a display image unless made from HU)"}


def _read_npy(path: Path):
    return np.load(path, allow_pickle=False), {}


def write_other(path_in: Path, array: np.ndarray, out_dir: Path, meta: dict) -> Path:
    """Write ``array`` as ``out_dir / path_in.name`` in ``path_in``'s format, atomically.

    Integer TIFF/PNG inputs get their stored dtype back (rounded, clipped to its range); float
    TIFF, .npy and NIfTI are written as float32. NIfTI keeps the input's affine.
    """
    name = path_in.name.lower()
    target = out_dir / path_in.name
    values = np.asarray(array, dtype=np.float32)
    if name.endswith((".nii", ".nii.gz")):
        return _write_nifti(target, values, meta)
    if name.endswith(".npy"):
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            np.save(handle, values)
        return target
    stored = _as_stored_dtype(values, meta.get("dtype", "float32"))
    if name.endswith((".tif", ".tiff")):
        import tifffile

        with atomic_path(target) as tmp:
            tifffile.imwrite(tmp, stored)
        return target
    if name.endswith(".png"):
        import imageio.v3 as iio

        with atomic_path(target) as tmp:
            iio.imwrite(tmp, stored, extension=".png")
        return target
    raise LowdoseInputError(f"{path_in}: cannot write this format back; use .npy, .tif or .png")


def _as_stored_dtype(values: np.ndarray, dtype_name: str) -> np.ndarray:
    dtype = np.dtype(dtype_name)
    if not np.issubdtype(dtype, np.integer):
        return values.astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def _write_nifti(target: Path, values: np.ndarray, meta: dict) -> Path:
    import nibabel

    volume = values if values.ndim == 3 else values[None]
    header = meta.get("nifti_header")
    header = header.copy() if header is not None else None
    image = nibabel.Nifti1Image(volume.transpose(2, 1, 0), meta.get("affine"), header)
    image.set_data_dtype(np.float32)
    image.header.set_slope_inter(1.0, 0.0)
    with atomic_path(target) as tmp:
        # nibabel picks gzip from the file name, so the temporary name keeps the suffix
        staged = tmp.with_name(tmp.name + ("".join(target.suffixes[-2:])))
        nibabel.save(image, staged)
        staged.replace(tmp)
    return target
