"""Writing a processed HU stack back as DICOM that a viewer files as a new, derived series.

Each output file copies its template's header (geometry, patient, study, windowing), gets a new
``SeriesInstanceUID`` (one per input series) and ``SOPInstanceUID``, a ``SeriesDescription``
suffix, ``ImageType`` DERIVED/SECONDARY and a ``DerivationDescription``. Pixels are stored in the
template's stored type (``BitsAllocated`` and ``PixelRepresentation``) through the template's own
slope and intercept: ``stored = round((HU - intercept) / slope)`` clipped to that type's range, so
reading back gives the written HU within one stored unit (``slope`` HU) wherever no clipping
happened. ``BitsStored`` is widened to ``BitsAllocated`` so no valid value is cut twice. Output is
uncompressed explicit VR little endian, each file written atomically.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError

if TYPE_CHECKING:  # pydicom costs ~0.4 s: imported where a file is read or written
    import pydicom

# Long strings: SeriesDescription is LO (64 characters), DerivationDescription ST (1024).
_LO_MAX, _ST_MAX = 64, 1024


def write_dicom_like(
    template_datasets,
    hu_stack,
    out_dir: str | os.PathLike,
    *,
    description_suffix: str = " lowdose",
    derivation: str = "denoised by lowdose",
) -> list[Path]:
    """Write ``hu_stack`` as DICOM files shaped like ``template_datasets``.

    Parameters
    ----------
    template_datasets : sequence of pydicom.Dataset, length I
        Single-frame headers, one per slice (from :func:`lowdose.io.images.read_ct` ``.headers``);
        not modified.
    hu_stack : array_like (I, H, W), finite
        Values in HU, each slice the size of its template (Rows x Columns).
    out_dir : str or PathLike
        Folder for the files (created); a file is named like its template's source file.
    description_suffix : str
        Appended to ``SeriesDescription``.
    derivation : str
        ``DerivationDescription``; name lowdose and the model (e.g. "denoised by lowdose
        0.1.0, unet-w48 n2n-mse, runs/ct24/best.ckpt").

    Returns
    -------
    list of Path
        Written files, in stack order.
    """
    templates = list(template_datasets)
    hu = np.asarray(hu_stack, dtype=np.float64)
    if hu.ndim == 2:
        hu = hu[None]
    if hu.ndim != 3 or len(templates) != hu.shape[0]:
        raise LowdoseInputError(
            f"{len(templates)} DICOM templates for an image stack of shape {hu.shape}; "
            "pass one (H, W) slice per template"
        )
    if not np.all(np.isfinite(hu)):
        raise LowdoseInputError("the HU stack contains NaN or Inf; nothing was written")
    out = Path(out_dir)
    names = _file_names(templates)
    new_series: dict[str, str] = {}
    datasets = [
        _derived(template, slice_hu, new_series, description_suffix, derivation)
        for template, slice_hu in zip(templates, hu, strict=True)
    ]  # build everything first, so a bad slice stops the run before any file exists
    paths = []
    for ds, name in zip(datasets, names, strict=True):
        with atomic_path(out / name) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(out / name)
    return paths


def stored_values(hu: np.ndarray, template: pydicom.Dataset) -> np.ndarray:
    """HU -> stored integers of the template's type: round((HU - intercept) / slope), clipped.

    Returns
    -------
    ndarray (H, W) of int16/uint16/int8/uint8/int32/uint32 (from ``BitsAllocated`` and
    ``PixelRepresentation``).
    """
    bits = int(template.get("BitsAllocated", 16))
    signed = int(template.get("PixelRepresentation", 0)) == 1
    if bits not in (8, 16, 32):
        raise LowdoseInputError(f"BitsAllocated={bits} cannot be written back; need 8/16/32")
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    slope = float(template.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(template.get("RescaleIntercept", 0.0) or 0.0)
    info = np.iinfo(dtype)
    values = np.rint((np.asarray(hu, np.float64) - intercept) / slope)
    return np.clip(values, info.min, info.max).astype(dtype)


def _derived(template, hu, new_series: dict, suffix: str, derivation: str) -> pydicom.Dataset:
    import pydicom.dataset
    import pydicom.uid

    if int(template.get("NumberOfFrames", 1) or 1) > 1:
        raise LowdoseInputError(
            f"{getattr(template, 'filename', 'template')}: multi-frame DICOM cannot be written "
            "back; write .npy or NIfTI instead"
        )
    if (int(template.Rows), int(template.Columns)) != hu.shape:
        raise LowdoseInputError(
            f"{getattr(template, 'filename', 'template')}: slice {hu.shape} does not match "
            f"Rows x Columns {template.Rows}x{template.Columns}"
        )
    ds = copy.deepcopy(template)
    for tag in [elem.tag for elem in ds if elem.tag.element == 0]:
        del ds[tag]  # retired group lengths would be wrong after the edits
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue"):
        if keyword in ds:
            delattr(ds, keyword)
    stored = stored_values(hu, ds)
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = int(ds.BitsAllocated) - 1
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) == 8 else "OW"
    old_series = str(template.get("SeriesInstanceUID", ""))
    ds.SeriesInstanceUID = new_series.setdefault(old_series, pydicom.uid.generate_uid())
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesDescription = (str(template.get("SeriesDescription", "")) + suffix)[-_LO_MAX:]
    ds.DerivationDescription = derivation[:_ST_MAX]
    image_type = list(template.get("ImageType", ["ORIGINAL", "PRIMARY", "AXIAL"]))
    ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    _set_file_meta(ds)
    return ds


def _set_file_meta(ds: pydicom.Dataset) -> None:
    import pydicom.dataset
    import pydicom.uid

    meta = copy.deepcopy(getattr(ds, "file_meta", None)) or pydicom.dataset.FileMetaDataset()
    for tag in [elem.tag for elem in meta if elem.tag.element == 0]:
        del meta[tag]
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = pydicom.dataset.FileMetaDataset(meta)
    ds.preamble = b"\0" * 128


def _file_names(templates) -> list[str]:
    """The templates' file names, or numbered names when two would collide."""
    names = [Path(getattr(t, "filename", "") or "").name for t in templates]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"slice_{i:05d}.dcm" for i in range(len(templates))]
