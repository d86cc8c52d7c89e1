"""One unit of a denoising job: read it, bring it to the model's units, denoise it, write it.

A unit is one DICOM series or one other image file (:mod:`lowdose.io.series_index`).
:func:`read_unit` reads and checks its images; :func:`field_of_view` says where an HU image holds
reconstructed values rather than the scanner's padding; :class:`UnitWork` is the step the
predict loop runs per unit (:mod:`lowdose.inference.predict_loop`): read, convert units
(:mod:`lowdose.inference.input_units`), denoise inside the field of view, optionally blend with
spectrum BM3D, convert back, write into a staging folder and commit
(:mod:`lowdose.inference.work_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, Progress
from lowdose.core.validation import checked_images
from lowdose.data.scaling import HU_OFFSET, NetworkScaling
from lowdose.inference.input_units import InputUnits, from_model_units, to_model_units
from lowdose.inference.predict import denoise, denoise_in_field_of_view
from lowdose.inference.spectrum_blend import blend, spectrum_bm3d_hu
from lowdose.inference.validity_check import validity_warnings
from lowdose.inference.work_plan import commit, staging_folder
from lowdose.io.dicom_read import SliceInfo, read_dicom_series
from lowdose.io.images import read_image_stack, write_like
from lowdose.io.series_index import SeriesFiles
from lowdose.models.validity_range import ValidityRange
from lowdose.physics.field_of_view import AIR_HU, field_of_view_mask

SERIES_STAGE = "series"


@dataclass(frozen=True)
class InputImages:
    """One input read for denoising.

    Attributes
    ----------
    path : Path
        The file or DICOM series folder.
    images : ndarray (H, W) or (B, H, W), finite
        Values in the input's units (HU for DICOM and NIfTI).
    kind : str
        ``"dicom"``, ``"nifti"``, ``"tiff"``, ``"png"`` or ``"npy"``.
    file_meta : dict
        What :func:`lowdose.io.images.write_like` needs to write the result back alike.
    """

    path: Path
    images: np.ndarray
    kind: str
    file_meta: dict

    @property
    def n_images(self) -> int:
        return 1 if self.images.ndim == 2 else int(self.images.shape[0])


def read_unit(unit: SeriesFiles, *, skip_bad: bool = False, warn: Log | None = None) -> InputImages:
    """Read one unit's files and check its images, or raise one error line naming the file."""
    if not unit.is_dicom:
        return read_input(unit.files[0])
    path = unit.input_path / unit.relative_folder if unit.input_path.is_dir() else unit.files[0]
    try:
        hu, infos, headers, skipped = read_dicom_series(unit.files, skip_bad=skip_bad)
    except LowdoseInputError:
        raise
    except Exception as exc:  # any library's parse error becomes one line naming the series
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LowdoseInputError(f"{path}: cannot read this DICOM series ({reason})") from None
    if warn is not None and skipped:
        warn(f"{path}: skipped {len(skipped)} unreadable file(s): {skipped[0][1]}")
    file_meta = {
        "units": "hu",
        "source": str(path),
        "headers": tuple(headers),
        "slices": tuple(infos),
    }
    return InputImages(path, checked_images(hu, str(path)), "dicom", file_meta)


def read_input(path: Path) -> InputImages:
    """Read one input and check its images, or raise one error line naming the file."""
    if not path.exists():
        raise LowdoseInputError(f"{path}: no such file or folder")
    try:
        array, kind, file_meta = read_image_stack(path)
    except LowdoseInputError:
        raise
    except Exception as exc:  # any library's parse error becomes one line naming the file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LowdoseInputError(
            f"{path}: cannot read it ({reason}); pass .npy, .tif/.tiff, .png, NIfTI or DICOM"
        ) from None
    return InputImages(path, checked_images(array, str(path)), kind, file_meta)


def field_of_view(item: InputImages, scaling: NetworkScaling) -> np.ndarray | None:
    """Where an input's images hold reconstructed CT values, or None where nothing is padding.

    Parameters
    ----------
    item : InputImages
        One input as read.
    scaling : NetworkScaling
        The checkpoint's scaling: ``raw_units == "hu"`` (or, when a checkpoint has no
        ``raw_units``, the CT offset of 1024) makes every input an HU input.

    Returns
    -------
    ndarray of bool, shape of ``item.images``, or None
        True inside the field of view; None when no image of the input is an HU image with
        padding (then the input is denoised whole).
    """
    stack = item.images[None] if item.images.ndim == 2 else item.images  # (B, H, W)
    slices: tuple[SliceInfo, ...] = tuple(item.file_meta.get("slices") or ())
    units = scaling.raw_units.strip().lower()
    # checkpoints without raw_units: the CT offset (HU + 1024) says HU too
    model_hu = units == "hu" or (not units and scaling.scaling_offset == HU_OFFSET)
    inside = np.ones(stack.shape, dtype=bool)
    for index, image in enumerate(stack):
        info = slices[index] if len(slices) == len(stack) else None
        is_ct = item.kind == "dicom" and info is not None and info.modality.upper() == "CT"
        if not (is_ct or model_hu):
            continue  # padding rules are in HU: other units are left alone
        padding_hu = info.padding_hu if info is not None else None
        inside[index] = field_of_view_mask(image, padding_hu=padding_hu)
    if inside.all():
        return None
    return inside.reshape(item.images.shape)


@dataclass(frozen=True)
class DenoiseJob:
    """What every unit of one ``denoise_files`` call shares (picklable for CPU processes)."""

    out: Path
    scaling: NetworkScaling
    validity: ValidityRange | None
    derivation: str
    units: InputUnits
    tile: int | None
    batch_size: int
    tta: int
    blend_bm3d_psd: bool
    skip_bad: bool


@dataclass
class UnitWork:
    """Read, check, denoise and write one unit (the predict loop's step)."""

    network: nn.Module
    job: DenoiseJob
    progress: Progress | None = None
    warn: Log | None = None
    n_units: int = 1
    done: int = field(default=0)

    def __call__(self, unit: SeriesFiles, device: str) -> None:
        job = self.job
        item = read_unit(unit, skip_bad=job.skip_bad, warn=self.warn)
        dtype = str(item.file_meta.get("dtype", "float32"))
        values = to_model_units(
            item.images, job.units, job.scaling, dtype=dtype, source=str(item.path)
        )
        model_item = InputImages(item.path, values, item.kind, item.file_meta)
        inside = field_of_view(model_item, job.scaling)
        if self.warn is not None and job.validity is not None:
            for line in validity_warnings(
                item.path,
                values,
                job.scaling,
                job.validity,
                file_meta=item.file_meta,
                inside=inside,
            ):
                self.warn(line)
        image_progress = self.progress if self.n_units == 1 else None
        run = {
            "scaling": job.scaling,
            "tile": job.tile,
            "device": device,
            "batch_size": job.batch_size,
            "tta": job.tta,
            "progress": image_progress,
        }
        if inside is None:
            result = denoise(self.network, values, **run)
        else:
            result = denoise_in_field_of_view(self.network, values, inside, **run)
        if job.blend_bm3d_psd:
            result = _blended(values, result, inside, image_progress)
        result = from_model_units(
            result, job.units, job.scaling, dtype=dtype, reference=item.images
        )
        staging = staging_folder(unit, job.out)
        staged = write_like(item.path, result, staging, item.file_meta, derivation=job.derivation)
        commit(unit, staged, job.out, job.derivation)
        self.done += 1
        if self.progress is not None and self.n_units > 1:
            self.progress(SERIES_STAGE, self.done, self.n_units)


def _blended(images, network_output, inside, progress) -> np.ndarray:
    """The network's output averaged with spectrum BM3D inside the field of view (HU)."""
    # BM3D sees air outside the field of view, as the network does; the padding comes back as is
    filled = images if inside is None else np.where(inside, images, np.float32(AIR_HU))
    filtered = spectrum_bm3d_hu(filled, inside=inside, progress=progress)
    mixed = blend(network_output, filtered)
    return mixed if inside is None else np.where(inside, mixed, images).astype(np.float32)
