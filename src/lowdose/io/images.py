"""Reading CT and image stacks from users' files, and writing results back in the same form.

Formats and the units each is taken in:

- **DICOM** (a file, or a folder of one or many series): HU through each file's RescaleSlope and
  RescaleIntercept (:mod:`lowdose.io.dicom_read`); slices grouped by series and ordered along the
  slice normal. Written back by :func:`lowdose.io.dicom_write.write_dicom_like`.
- **NIfTI** (``.nii``, ``.nii.gz``, nibabel): ``get_fdata()`` values, i.e. after the header's
  ``scl_slope``/``scl_inter``, *assumed to be HU* (the convention of CT NIfTI exports such as
  dcm2niix). The (X, Y, Z) array becomes (Z, Y, X) slices.
- **TIFF** stacks (tifffile), **PNG** (imageio, single grayscale image) and **.npy**: values as
  stored, assumed HU by :func:`read_ct` (a PNG is usually an 8-bit display image: convert it to
  HU first, or treat the numbers as raw units).

A folder is read as DICOM unless all its image files share one other format (then they are stacked
in file-name order). What is not an image is set aside and listed in ``CTStack.ignored`` (and
``meta["ignored"]`` of :func:`read_image_stack`), never fatal: hidden files, ``DICOMDIR``,
documentation by suffix, and files that are not DICOM by content such as an archive's ``LICENSE``
or ``Citations`` (:func:`lowdose.io.listing.list_image_files`; the caller prints
:func:`lowdose.io.listing.describe_ignored`). Every image file must be readable, a broken DICOM
file too, else one line naming it is raised, unless ``skip_bad=True``, which skips it and reports
it in ``CTStack.skipped``. Non-DICOM files carry no patient: each file is its own object (patient
and series id = the file stem).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.dicom_read import SliceInfo, read_dicom_series
from lowdose.io.dicom_write import write_dicom_like
from lowdose.io.formats import read_other, write_other
from lowdose.io.listing import list_image_files

_KINDS = {
    ".nii": "nifti",
    ".gz": "nifti",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".png": "png",
    ".npy": "npy",
}


@dataclass(frozen=True)
class CTStack:
    """Slices in HU with where each came from.

    Attributes
    ----------
    hu : ndarray (I, H, W) float32
        Hounsfield units (see the module docstring for the assumption per format).
    slices : tuple of SliceInfo, length I
        Patient, series, position along the normal, source file per slice.
    kind : str
        ``"dicom"``, ``"nifti"``, ``"tiff"``, ``"png"`` or ``"npy"``.
    units_note : str
        How the values were turned into HU.
    headers : tuple of pydicom.Dataset
        DICOM only: one header per slice (pixel data removed), templates for writing back.
    skipped : tuple of (Path, str)
        Files skipped under ``skip_bad=True`` with their one-line reason.
    ignored : tuple of Path
        Entries of a folder that are not images (licence, README, hidden, DICOMDIR, ...).
    extra : dict
        Format details needed to write back (NIfTI ``affine`` and ``header``, stored ``dtype``).
    """

    hu: np.ndarray
    slices: tuple[SliceInfo, ...]
    kind: str
    units_note: str
    headers: tuple = ()
    skipped: tuple[tuple[Path, str], ...] = ()
    extra: dict = field(default_factory=dict)
    ignored: tuple[Path, ...] = ()


def read_ct(path: str | os.PathLike, *, skip_bad: bool = False) -> CTStack:
    """Read CT slices in HU from a DICOM file or folder, NIfTI, TIFF, PNG or .npy.

    Parameters
    ----------
    path : str or PathLike
        A file or a folder (searched recursively).
    skip_bad : bool
        Skip unreadable files (listed in ``.skipped``) instead of raising on the first one.

    Returns
    -------
    CTStack

    Raises
    ------
    LowdoseInputError
        One line naming the bad file and the fix (not DICOM, truncated, no pixel data,
        undecodable compression, a slice size that differs within its series, ...).
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files, ignored = _candidate_files(path)
    kinds = {_kind_of(f) for f in files}
    if len(kinds) == 1 and (kind := kinds.pop()) != "dicom":
        stack = _read_other(files, kind, skip_bad)
    else:
        hu, infos, headers, skipped = read_dicom_series(files, skip_bad=skip_bad)
        note = "HU = stored * RescaleSlope + RescaleIntercept, read from each file"
        stack = CTStack(hu, tuple(infos), "dicom", note, tuple(headers), tuple(skipped))
    return dataclasses.replace(stack, ignored=tuple(ignored))


def read_image_stack(path: str | os.PathLike) -> tuple[np.ndarray, str, dict]:
    """Read any supported input for ``lowdose denoise``: values, format and write-back details.

    Returns
    -------
    array : ndarray float32
        DICOM and NIfTI: (I, H, W) in HU. TIFF, PNG, .npy: the stored shape ((H, W) or
        (I, H, W)) and values.
    kind : str
        ``"dicom"``, ``"nifti"``, ``"tiff"``, ``"png"`` or ``"npy"``.
    meta : dict
        ``units``, ``source``, ``slices`` (one :class:`SliceInfo` per image: DICOM modality and
        padding value), ``ignored`` (tuple of Path: what a folder held besides images) and
        what :func:`write_like` needs (``headers``, ``dtype``, ``affine``,
        ``nifti_header``, ``ndim``).
    """
    stack = read_ct(path)
    meta = {
        "units": "hu" if stack.kind in ("dicom", "nifti") else "as stored",
        "source": str(path),
        "headers": stack.headers,
        "slices": stack.slices,
        "ignored": stack.ignored,
        **stack.extra,
    }
    array = stack.hu
    if stack.kind in ("tiff", "png", "npy") and meta.get("ndim") == 2:
        array = array[0]
    return array, stack.kind, meta


def write_like(
    path_in: str | os.PathLike,
    array,
    out_dir: str | os.PathLike,
    meta: dict,
    *,
    derivation: str | None = None,
) -> list[Path]:
    """Write ``array`` into ``out_dir`` in the format of ``path_in`` (read by read_image_stack).

    Parameters
    ----------
    path_in : str or PathLike
        The input that was read; its file name is reused (a DICOM folder gives one file per
        slice, named like the inputs).
    array : array_like
        Same shape as :func:`read_image_stack` returned, same units.
    out_dir : str or PathLike
        Output folder; must not be the input's own folder.
    meta : dict
        The ``meta`` from :func:`read_image_stack`.
    derivation : str, optional
        DICOM ``DerivationDescription`` (default ``meta["derivation"]`` or "denoised by lowdose").

    Returns
    -------
    list of Path
        Files written (each atomically). Integer TIFF/PNG inputs are written in their stored
        dtype (rounded and clipped); float inputs, .npy and NIfTI as float32.
    """

    path_in, out = Path(path_in), Path(out_dir)
    source_dir = path_in if path_in.is_dir() else path_in.parent
    if out.resolve() == source_dir.resolve():
        raise LowdoseInputError(f"{out}: output folder is the input's folder; choose another")
    headers = meta.get("headers") or ()
    if headers:
        text = derivation or meta.get("derivation") or "denoised by lowdose"
        return write_dicom_like(headers, np.asarray(array), out, derivation=text)
    return [write_other(path_in, np.asarray(array), out, meta)]


def _candidate_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(image files, entries set aside); a file named by the user is read whatever it holds."""
    if path.is_file():
        return [path], []
    files, ignored = list_image_files(path)
    if not files:
        aside = f" ({len(ignored)} other files set aside)" if ignored else ""
        raise LowdoseInputError(
            f"{path}: folder holds no image files (DICOM, NIfTI, TIFF, ...){aside}"
        )
    return files, ignored


def _kind_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz") and not name.endswith(".nii.gz"):
        return "dicom"
    return _KINDS.get(path.suffix.lower(), "dicom")


def _read_other(files: list[Path], kind: str, skip_bad: bool) -> CTStack:

    arrays, infos, skipped, extra = [], [], [], {}
    for path in files:
        try:
            values, extra = read_other(path, kind)
        except LowdoseInputError as exc:
            if not skip_bad:
                raise
            skipped.append((path, str(exc)))
            continue
        if arrays and values.shape[1:] != arrays[0].shape[1:]:
            message = f"{path}: image size {values.shape[1:]} differs from {arrays[0].shape[1:]}"
            if not skip_bad:
                raise LowdoseInputError(message + " of the other files; resize or --skip-bad")
            skipped.append((path, message))
            continue
        arrays.append(values)
        infos += [
            SliceInfo(source=path, patient_id=path.stem, series_uid=path.stem, frame=k)
            for k in range(values.shape[0])
        ]
    if not arrays:
        raise LowdoseInputError(f"no readable {kind} files among {len(files)}")
    if len(arrays) > 1:
        extra["ndim"] = 3
    note = extra.pop("units_note", "values as stored, assumed to be HU")
    hu = np.concatenate(arrays).astype(np.float32, copy=False)
    return CTStack(hu, tuple(infos), kind, note, (), tuple(skipped), extra)
