"""Writing a processed HU stack back as DICOM that a PACS files as a new, derived series.

Each output file copies its template's header (geometry, patient, study, windowing, private tags)
and gets the identity of a derived image (:func:`lowdose.io.dicom_identity.set_derived_identity`):
one new ``SeriesInstanceUID`` per input series (by UID, else by folder), a new ``SOPInstanceUID``
per file (the file meta's ``MediaStorageSOPInstanceUID`` matches), both deterministic from the
source and the ``derivation`` text; ``SeriesNumber`` + 1000, ``SourceImageSequence`` naming the
source instance, ``DerivationCodeSequence`` and "lowdose <version>" in ``SoftwareVersions``. Here:
a ``SeriesDescription`` suffix, ``ImageType`` DERIVED/SECONDARY and a ``DerivationDescription``.

Pixels are stored in the template's stored type (``BitsAllocated`` and ``PixelRepresentation``)
through the template's own slope and intercept (:func:`lowdose.io.dicom_read.rescale_of`):
``stored = round((HU - intercept) / slope)`` clipped to that type's range, so reading back gives
the written HU within one stored unit (``slope`` HU) wherever no clipping happened; values read from
a file (the padding outside the field of view) come back as the exact stored values. ``BitsStored``
is widened to ``BitsAllocated`` so that values a narrower ``BitsStored`` could not hold (noise below
the scanner's floor) are kept; ``PixelPaddingValue`` is kept, typed like the pixels.

Output is always uncompressed Explicit VR Little Endian, whatever the input's transfer syntax
(JPEG 2000, JPEG, JPEG-LS, RLE, deflated, big endian): the ``DerivationDescription`` says so when it
changed. A multi-frame template gets all its frames back in one multi-frame file. Each file is
written atomically; its bytes depend only on its template, its pixels and ``derivation``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.io.dicom_identity import set_derived_identity
from lowdose.io.dicom_read import rescale_of

if TYPE_CHECKING:  # pydicom costs ~0.4 s: imported where a file is read or written
    import pydicom

# Long strings: SeriesDescription is LO (64 characters), DerivationDescription ST (1024).
_LO_MAX, _ST_MAX = 64, 1024
# Byte-order-dependent binary VRs and their word size: swapped when a big-endian file is rewritten.
_WORD_BYTES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


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
        One header per slice (from :func:`lowdose.io.images.read_ct` ``.headers``); not modified.
        The frames of a multi-frame file share one header object: every frame must be in the
        stack, in frame order, and they are written back as one multi-frame file.
    hu_stack : array_like (I, H, W), finite
        Values in HU, each slice the size of its template (Rows x Columns).
    out_dir : str or PathLike
        Folder for the files (created); a file is named like its template's source file.
    description_suffix : str
        Appended to ``SeriesDescription``.
    derivation : str
        ``DerivationDescription``; name lowdose and the model (e.g. "denoised by lowdose
        0.1.0, unet-w48 n2n-mse, runs/ct24/best.ckpt"). It also seeds the new UIDs: the same
        sources and text give the same UIDs in any run, another text another series.

    Returns
    -------
    list of Path
        Written files, in stack order (one per multi-frame file).
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
    groups = _file_groups(templates)
    names = _file_names([template for template, _ in groups])
    datasets = [
        _derived(template, hu[rows], name, description_suffix, derivation)
        for (template, rows), name in zip(groups, names, strict=True)
    ]  # build everything first, so a bad slice stops the run before any file exists
    import pydicom.filewriter

    out = Path(out_dir)
    paths = []
    for ds, name in zip(datasets, names, strict=True):
        with atomic_path(out / name) as tmp:
            # dcmwrite, not save_as: save_as refuses the big -> little endian rewrite
            pydicom.filewriter.dcmwrite(tmp, ds, enforce_file_format=True)
        paths.append(out / name)
    return paths


def stored_values(hu: np.ndarray, template: pydicom.Dataset) -> np.ndarray:
    """HU -> stored integers of the template's type: round((HU - intercept) / slope), clipped.

    Parameters
    ----------
    hu : ndarray, any shape, float, HU
    template : pydicom.Dataset
        Gives ``BitsAllocated`` (8, 16 or 32), ``PixelRepresentation`` and the rescale.

    Returns
    -------
    ndarray, same shape, int8/uint8/int16/uint16/int32/uint32
        Clipped to the full range of that type (``BitsStored`` is widened on writing).
    """
    bits = int(template.get("BitsAllocated", 16))
    signed = int(template.get("PixelRepresentation", 0)) == 1
    if bits not in (8, 16, 32):
        raise LowdoseInputError(
            f"{_name(template)}: BitsAllocated={bits} cannot be written back; need 8/16/32 "
            "(write .npy or NIfTI instead)"
        )
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    slope, intercept = rescale_of(template)
    info = np.iinfo(dtype)
    values = np.rint((np.asarray(hu, np.float64) - intercept) / slope)
    return np.clip(values, info.min, info.max).astype(dtype)


def _file_groups(templates: list) -> list[tuple[object, list[int]]]:
    """(template, stack rows) per output file: multi-frame headers gather their frames."""
    groups: list[tuple[object, list[int]]] = []
    multi_frame: dict[tuple[str, str], list[int]] = {}
    for row, template in enumerate(templates):
        # the frames of one file: one header object as read, or copies of one file's header
        key = (_name(template), str(template.get("SOPInstanceUID", "") or id(template)))
        if _n_frames(template) <= 1:
            groups.append((template, [row]))
        elif key in multi_frame:
            multi_frame[key].append(row)
        else:
            multi_frame[key] = [row]
            groups.append((template, multi_frame[key]))
    for template, rows in groups:
        if len(rows) != _n_frames(template) and _n_frames(template) > 1:
            raise LowdoseInputError(
                f"{_name(template)}: multi-frame file of {_n_frames(template)} frames but the "
                f"stack holds {len(rows)} of them; pass every frame (as read) to write it back"
            )
    return groups


def _derived(template, hu, name: str, suffix: str, derivation: str) -> pydicom.Dataset:
    """The output dataset for one file ``name``: the template's header, ``hu`` (F, H, W) as
    pixels."""
    if (int(template.Rows), int(template.Columns)) != hu.shape[1:]:
        raise LowdoseInputError(
            f"{_name(template)}: slice {hu.shape[1:]} does not match "
            f"Rows x Columns {template.Rows}x{template.Columns}"
        )
    ds = copy.deepcopy(template)
    source_syntax = getattr(template, "file_meta", {}).get("TransferSyntaxUID")
    if ds.original_encoding[1] is False:  # big endian: binary words must be swapped
        _swap_binary_words(ds)
    for tag in [elem.tag for elem in ds if elem.tag.element == 0]:
        del ds[tag]  # retired group lengths would be wrong after the edits
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:  # would describe the old pixels
            delattr(ds, keyword)
    stored = stored_values(hu, ds)  # (F, H, W)
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = int(ds.BitsAllocated) - 1
    _type_padding_like_pixels(ds, stored.dtype)
    ds.PixelData = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB" if int(ds.BitsAllocated) == 8 else "OW"
    if "NumberOfFrames" in ds or len(stored) > 1:
        ds.NumberOfFrames = len(stored)
    set_derived_identity(ds, template, derivation=derivation, file_name=name)
    ds.SeriesDescription = (str(template.get("SeriesDescription", "")) + suffix)[-_LO_MAX:]
    ds.DerivationDescription = _derivation_text(derivation, source_syntax)
    image_type = template.get("ImageType", ["ORIGINAL", "PRIMARY", "AXIAL"])
    image_type = [image_type] if isinstance(image_type, str) else list(image_type)  # VM 1
    ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    _set_file_meta(ds)
    return ds


def _derivation_text(derivation: str, source_syntax) -> str:
    """``derivation``, plus a note when the input's transfer syntax was not the output's."""
    import pydicom.uid

    text = derivation
    if source_syntax is not None and source_syntax != pydicom.uid.ExplicitVRLittleEndian:
        name = getattr(source_syntax, "name", str(source_syntax)) or str(source_syntax)
        text += f"; rewritten uncompressed as Explicit VR Little Endian from {name}"
    return text[:_ST_MAX]


def _type_padding_like_pixels(ds: pydicom.Dataset, dtype: np.dtype) -> None:
    """PixelPaddingValue / RangeLimit as SS for signed pixels, US for unsigned (some scanners
    write -2000 as US 63536); the 16-bit pattern, hence the value, is unchanged."""
    for keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
        if keyword not in ds:
            continue
        value = ds[keyword].value
        if not isinstance(value, int):  # undecodable (raw bytes): drop rather than guess
            delattr(ds, keyword)
            continue
        value %= 1 << 16  # the 16-bit pattern (the VR is US or SS for any BitsAllocated)
        if dtype.kind == "i" and value >= 1 << 15:
            value -= 1 << 16
        delattr(ds, keyword)
        ds.add_new(keyword, "SS" if dtype.kind == "i" else "US", value)


def _swap_binary_words(ds: pydicom.Dataset) -> None:
    """Big -> little endian for OW/OL/OF/OD/OV values (pydicom converts the numeric VRs)."""
    for elem in ds.iterall():  # also decodes every raw element with the source's byte order
        size = _WORD_BYTES.get(elem.VR)
        if size and isinstance(elem.value, bytes) and len(elem.value) % size == 0:
            words = np.frombuffer(elem.value, dtype=f">u{size}")
            elem.value = words.astype(f"<u{size}").tobytes()
    ds.set_original_encoding(False, True, ds.original_character_set)


def _set_file_meta(ds: pydicom.Dataset) -> None:
    import pydicom.dataset
    import pydicom.uid

    meta = copy.deepcopy(getattr(ds, "file_meta", None)) or pydicom.dataset.FileMetaDataset()
    for tag in [elem.tag for elem in meta if elem.tag.element == 0]:
        del meta[tag]
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    if "ImplementationVersionName" in meta:  # named the toolkit that wrote the input
        del meta.ImplementationVersionName
    ds.file_meta = pydicom.dataset.FileMetaDataset(meta)
    ds.preamble = b"\0" * 128


def _n_frames(template) -> int:
    try:
        return int(template.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _name(template) -> str:
    return str(getattr(template, "filename", "") or "DICOM template")


def _file_names(templates) -> list[str]:
    """The templates' file names, or numbered names when two would collide."""
    names = [Path(getattr(t, "filename", "") or "").name for t in templates]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"slice_{i:05d}.dcm" for i in range(len(templates))]
