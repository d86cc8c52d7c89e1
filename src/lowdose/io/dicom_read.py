"""Reading DICOM CT slices in Hounsfield units, with one-line errors that name the file.

Values: ``HU = stored * RescaleSlope + RescaleIntercept`` with both read from *each* file (DICOM's
identity default, slope 1 and intercept 0, when a file omits them; -1024 is never assumed).
Compressed transfer syntaxes are decoded by pydicom's plugins: JPEG 2000 through
``pylibjpeg-openjpeg``, JPEG (baseline, extended, lossless) and JPEG-LS through
``pylibjpeg-libjpeg`` or Pillow, RLE natively. Order within a series: position along the slice
normal (``ImagePositionPatient`` projected on ``row x column`` of ``ImageOrientationPatient``),
then ``InstanceNumber``, then file name.

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
    """

    source: Path
    patient_id: str
    series_uid: str
    position_mm: float = math.nan
    instance_number: int = 0
    pixel_spacing_mm: tuple[float, float] | None = None
    frame: int = 0


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
        A DICOM Part-10 file (or one without preamble that pydicom still recognises).

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
        ds = pydicom.dcmread(path)
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
    stored = _decode_pixels(ds, path)
    frames = stored.reshape(-1, *stored.shape[-2:])  # (F, H, W)
    slope, intercept = _rescale(ds)
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


def _rescale(ds: pydicom.Dataset) -> tuple[float, float]:
    """RescaleSlope/Intercept from the file, else the shared functional group, else (1, 0)."""
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
    return SliceInfo(
        source=path,
        patient_id=str(ds.get("PatientID", "") or path.parent.name),
        series_uid=str(ds.get("SeriesInstanceUID", "") or path.parent.name),
        position_mm=_position_along_normal(ds) + frame * _frame_step_mm(ds),
        instance_number=int(ds.get("InstanceNumber", 0) or 0),
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])) if spacing else None,
        frame=frame,
    )


def _position_along_normal(ds: pydicom.Dataset) -> float:
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if not position or not orientation or len(orientation) != 6:
        return math.nan
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return float(np.dot(np.cross(row, col), np.asarray(position, float)))


def _frame_step_mm(ds: pydicom.Dataset) -> float:
    step = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    return float(step) if step else 0.0


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
    shapes = {hu.shape for _, hu, _ in rows}
    if len(shapes) > 1:
        raise LowdoseInputError(
            f"series of different sizes {sorted(shapes)} in one input; read each series "
            "folder separately or resize them first"
        )
    hu = np.stack([hu for _, hu, _ in rows]).astype(np.float32, copy=False)
    return hu, [info for info, _, _ in rows], [header for _, _, header in rows], skipped


def _order_key(row) -> tuple:
    info, _, header = row
    position = info.position_mm if math.isfinite(info.position_mm) else 0.0
    series = (info.patient_id, str(header.get("StudyInstanceUID", "")), info.series_uid)
    return (*series, position, info.instance_number, str(info.source), info.frame)


def _drop_mixed_shapes(read: list[DicomSlice], skip_bad: bool):
    """Within one series every slice must have the majority's size; name the odd file."""
    by_series: dict[str, list[DicomSlice]] = {}
    for item in read:
        by_series.setdefault(item.infos[0].series_uid, []).append(item)
    kept, skipped = [], []
    for items in by_series.values():
        shapes = [item.hu.shape[1:] for item in items]
        majority = max(set(shapes), key=shapes.count)
        for item, shape in zip(items, shapes, strict=True):
            if shape == majority:
                kept.append(item)
                continue
            message = (
                f"{item.infos[0].source}: slice size {shape[0]}x{shape[1]} differs from "
                f"{majority[0]}x{majority[1]} of the rest of series {item.infos[0].series_uid}"
                "; remove it or pass --skip-bad"
            )
            if not skip_bad:
                raise LowdoseInputError(message)
            skipped.append((item.infos[0].source, message))
    return kept, skipped
