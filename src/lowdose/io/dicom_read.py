"""Reading DICOM CT slices in Hounsfield units, with one-line errors that name the file.

Values: ``HU = stored * RescaleSlope + RescaleIntercept`` with both read from *each* file (DICOM's
identity default, slope 1 and intercept 0, when a file omits them; -1024 is never assumed).
Compressed transfer syntaxes are decoded by pydicom's plugins: JPEG 2000 through
``pylibjpeg-openjpeg``, JPEG (baseline, extended, lossless) and JPEG-LS through
``pylibjpeg-libjpeg`` or Pillow, RLE natively. Order within a series: position along the slice
normal (``ImagePositionPatient`` projected on ``row x column`` of ``ImageOrientationPatient``),
then ``InstanceNumber``, then file name.

Files written without preamble and file meta (old exports) are read too, when their first bytes
are those of a DICOM dataset (:func:`lowdose.io.listing.is_dicom_file`).

Writing (:func:`lowdose.io.dicom_write.write_dicom_like`) is in its own module.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.listing import is_dataset_without_preamble

if TYPE_CHECKING:  # pydicom costs ~0.4 s: imported where a file is read or written
    import pydicom

# Transfer syntax name fragments -> the package that adds a decoder for them.
_DECODER_PACKAGES = (
    ("JPEG 2000", "pylibjpeg-openjpeg"),
    ("High-Throughput JPEG 2000", "pylibjpeg-openjpeg>=2.4"),
    ("JPEG-LS", "pylibjpeg-libjpeg"),
    ("JPEG", "pylibjpeg-libjpeg (or Pillow)"),
    ("RLE", "pylibjpeg-rle"),
)


@dataclass(frozen=True)
class SliceInfo:
    """Where one slice came from and where it sits.

    Attributes
    ----------
    source : Path
        The file read.
    patient_id, series_uid : str
        DICOM ``PatientID`` and ``SeriesInstanceUID`` (the file stem for non-DICOM input).
    position_mm : float
        Position along the slice normal in mm (NaN when unknown).
    instance_number : int
        ``InstanceNumber`` (0 when absent).
    pixel_spacing_mm : tuple of float or None
        (row, column) spacing from ``PixelSpacing``.
    frame : int
        Frame index in a multi-frame file (0 otherwise).
    modality : str
        DICOM ``Modality`` ("CT", "MR", ...; "" when absent or not DICOM).
    padding_hu : float or None
        DICOM ``PixelPaddingValue`` (stored units, as the pixels' type) through the rescale: the
        value the scanner put outside the reconstructed field of view; None without the tag.
    """

    source: Path
    patient_id: str
    series_uid: str
    position_mm: float = math.nan
    instance_number: int = 0
    pixel_spacing_mm: tuple[float, float] | None = None
    frame: int = 0
    modality: str = ""
    padding_hu: float | None = None


@dataclass(frozen=True)
class DicomSlice:
    """One decoded DICOM file: HU frames (F, H, W) float32, their info, and the header."""

    hu: np.ndarray
    infos: tuple[SliceInfo, ...]
    header: pydicom.Dataset


def read_dicom_file(path: Path) -> DicomSlice:
    """Read one DICOM file to HU, raising a one-line :class:`LowdoseInputError` naming it.

    Parameters
    ----------
    path : Path
        A DICOM Part-10 file, or a dataset without preamble
        (:func:`lowdose.io.listing.is_dicom_file`).

    Returns
    -------
    DicomSlice
        ``hu`` (F, H, W) float32 (F = NumberOfFrames, 1 for ordinary slices); ``header`` is the
        dataset with its pixel data removed (a template for writing back).

    Raises
    ------
    LowdoseInputError
        Not DICOM, truncated, no pixel data, colour image, unsupported compression.
    """
    import pydicom.errors

    path = Path(path)
    try:
        ds = pydicom.dcmread(path, force=is_dataset_without_preamble(path))
    except pydicom.errors.InvalidDicomError:
        raise LowdoseInputError(
            f"{path}: not a DICOM file (no 'DICM' marker); remove it or pass --skip-bad"
        ) from None
    except (EOFError, struct.error, OSError, ValueError, KeyError, TypeError) as exc:
        raise LowdoseInputError(
            f"{path}: truncated or corrupt DICOM header ({type(exc).__name__}); "
            "re-export the file or pass --skip-bad"
        ) from None
    if not any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        _raise_no_pixels(ds, path)
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise LowdoseInputError(
            f"{path}: colour image ({ds.get('PhotometricInterpretation')}); CT must be grayscale"
        )
    _name_the_syntax_read(ds)
    stored = _decode_pixels(ds, path)
    frames = stored.reshape(-1, *stored.shape[-2:])  # (F, H, W)
    slope, intercept = rescale_of(ds)
    hu = (frames.astype(np.float64) * slope + intercept).astype(np.float32)
    infos = tuple(_slice_info(ds, path, frame) for frame in range(frames.shape[0]))
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:  # headers are kept as write-back templates; drop the big part
            delattr(ds, keyword)
    return DicomSlice(hu=hu, infos=infos, header=ds)


def _raise_no_pixels(ds: pydicom.Dataset, path: Path) -> None:
    # pydicom stops quietly at end of file, so a file cut inside its header reads as a short
    # dataset: an image class (or image attributes) without pixel data means it was cut off.
    meta = getattr(ds, "file_meta", {})
    sop = ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
    is_image = "Rows" in ds or (sop is not None and "Image" in getattr(sop, "name", ""))
    if is_image:
        raise LowdoseInputError(
            f"{path}: image header but no pixel data (file truncated, or saved without "
            "pixels); re-export it or pass --skip-bad"
        )
    raise LowdoseInputError(
        f"{path}: DICOM without pixel data (Modality {ds.get('Modality', '?')}, not an "
        "image); remove it or pass --skip-bad"
    )


def _name_the_syntax_read(ds: pydicom.Dataset) -> None:
    """A file without file meta (no preamble, old exports) names no transfer syntax, and pydicom
    will not decode its pixels: name the one pydicom found reading it (never compressed)."""
    import pydicom.dataset
    import pydicom.uid

    implicit, little = ds.original_encoding[:2]
    if "TransferSyntaxUID" in getattr(ds, "file_meta", {}) or little is None:
        return
    ds.file_meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (
        pydicom.uid.ImplicitVRLittleEndian
        if implicit
        else pydicom.uid.ExplicitVRLittleEndian
        if little
        else pydicom.uid.ExplicitVRBigEndian
    )


def _decode_pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        name = syntax.name if syntax is not None else "unknown transfer syntax"
        package = next((pkg for key, pkg in _DECODER_PACKAGES if key in name), None)
        fix = (
            f"install {package}"
            if package
            else "no Python decoder exists; convert it to uncompressed first (gdcmconv --raw)"
        )
        raise LowdoseInputError(
            f"{path}: cannot decode compressed pixel data ({name}): {fix}"
        ) from exc
    except (ValueError, EOFError, struct.error, AttributeError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise LowdoseInputError(
            f"{path}: truncated or inconsistent pixel data ({detail}); re-export or --skip-bad"
        ) from None


def rescale_of(ds: pydicom.Dataset) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of a file: HU = stored * slope + intercept.

    From the dataset, else its shared functional group (enhanced multi-frame), else DICOM's
    identity default (1, 0); the writer (:mod:`lowdose.io.dicom_write`) inverts the same pair.
    """
    source = ds
    if "RescaleSlope" not in ds and "SharedFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        if "PixelValueTransformationSequence" in shared:
            source = shared.PixelValueTransformationSequence[0]
    slope = float(source.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(source.get("RescaleIntercept", 0.0) or 0.0)
    return slope, intercept


def _slice_info(ds: pydicom.Dataset, path: Path, frame: int) -> SliceInfo:
    spacing = ds.get("PixelSpacing")
    step = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")  # between frames, mm
    return SliceInfo(
        source=path,
        patient_id=str(ds.get("PatientID", "") or path.parent.name),
        series_uid=str(ds.get("SeriesInstanceUID", "") or path.parent.name),
        position_mm=_position_along_normal(ds) + frame * float(step or 0.0),
        instance_number=int(ds.get("InstanceNumber", 0) or 0),
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])) if spacing else None,
        frame=frame,
        modality=str(ds.get("Modality", "") or ""),
        padding_hu=_padding_hu(ds),
    )


def _padding_hu(ds: pydicom.Dataset) -> float | None:
    """PixelPaddingValue in HU, read as the pixels' type: some scanners write the signed -2000
    with VR US (63536), the same 16-bit pattern."""
    value = ds.get("PixelPaddingValue")
    if not isinstance(value, int):  # absent, or undecodable raw bytes
        return None
    stored = value % (1 << 16)
    if int(ds.get("PixelRepresentation", 0)) == 1 and stored >= 1 << 15:
        stored -= 1 << 16
    slope, intercept = rescale_of(ds)
    return float(np.float32(stored * slope + intercept))  # as the pixels' float32 HU


def _position_along_normal(ds: pydicom.Dataset) -> float:
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if not position or not orientation or len(orientation) != 6:
        return math.nan
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return float(np.dot(np.cross(row, col), np.asarray(position, float)))


def read_dicom_series(paths, *, skip_bad: bool = False):
    """Read DICOM files, group them by series and sort each series along its normal.

    Parameters
    ----------
    paths : sequence of Path
        Candidate files (all must be DICOM unless ``skip_bad``).
    skip_bad : bool
        Skip files that fail (returned with their one-line reason) instead of raising.

    Returns
    -------
    hu : ndarray (I, H, W) float32
    infos : list of SliceInfo
    headers : list of pydicom.Dataset (one per slice; frames of one file share it)
    skipped : list of (Path, str)
    """
    read, skipped = [], []
    for path in sorted(Path(p) for p in paths):
        try:
            read.append(read_dicom_file(path))
        except LowdoseInputError as exc:
            if not skip_bad:
                raise
            skipped.append((path, str(exc)))
    read, shape_skips = _drop_mixed_shapes(read, skip_bad)
    skipped += shape_skips
    if not read:
        raise LowdoseInputError(f"no readable DICOM slices among {len(skipped)} files")
    rows = [(item.infos[f], item.hu[f], item.header) for item in read for f in range(len(item.hu))]
    rows.sort(key=_order_key)
    hu = np.stack([hu for _, hu, _ in rows]).astype(np.float32, copy=False)
    return hu, [info for info, _, _ in rows], [header for _, _, header in rows], skipped


def _order_key(row) -> tuple:
    info, _, header = row
    position = info.position_mm if math.isfinite(info.position_mm) else 0.0
    series = (info.patient_id, str(header.get("StudyInstanceUID", "")), info.series_uid)
    return (*series, position, info.instance_number, str(info.source), info.frame)


def _drop_mixed_shapes(read: list[DicomSlice], skip_bad: bool):
    """Every slice of one input (one stack, even of several series) must have the size most of
    its slices have; name the odd file (or skip it under ``skip_bad``)."""
    counts: dict[tuple[int, int], int] = {}
    for item in read:
        counts[item.hu.shape[1:]] = counts.get(item.hu.shape[1:], 0) + len(item.hu)
    kept, skipped = [], []
    for item in read:
        (rows, cols), info = item.hu.shape[1:], item.infos[0]
        size = max(counts, key=counts.get)
        if (rows, cols) == size:
            kept.append(item)
            continue
        message = (
            f"{info.source}: slice size {rows}x{cols} (series {info.series_uid}) differs from "
            f"{size[0]}x{size[1]} of the other {counts[size]} slices in this input; pass one "
            f"series per folder, or --skip-bad to keep the {size[0]}x{size[1]} slices"
        )
        if not skip_bad:
            raise LowdoseInputError(message)
        skipped.append((info.source, message))
    return kept, skipped
