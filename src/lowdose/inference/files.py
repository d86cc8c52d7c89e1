"""File in, file out: denoise the user's images with a trained model, in their own format and units.

:func:`denoise_files` is what ``lowdose denoise`` runs: it reads every input (DICOM files or
series folders, NIfTI, TIFF stacks, PNG, ``.npy``; :func:`lowdose.io.images.read_image_stack`),
applies the checkpoint's scaling around the network (:func:`lowdose.inference.predict.denoise`)
and writes each result beside the others in ``out`` with the input's name, format and units
(:func:`lowdose.io.images.write_like`). Every input is read and checked before the first is
denoised, so a bad file costs no network time and leaves ``out`` untouched. With ``tta=8`` each
image is the self-ensemble of the network over its 8 rotations and mirrors, and DICOM outputs
say so in their DerivationDescription (the other formats carry no provenance field).

CT padding: outside the reconstructed field of view many scanners store -2048 or -3024 HU. For HU
inputs (DICOM of Modality CT, or any input when the checkpoint's ``raw_units`` is ``hu``, or
when it has none but the CT offset of 1024) the field of view is taken from the slice's
``PixelPaddingValue``, else detected
(:func:`lowdose.physics.field_of_view.field_of_view_mask`); the network sees air there, and the
output keeps the input's padding unchanged (DICOM: the exact stored values).

Validity range: when the checkpoint records where the model helps (``meta.validity``, measured
clean-free after training, :mod:`lowdose.training.validity`), the noise of every image is
estimated in physical units (HU sd for CT) and each series with images outside the range gets
one warning line before denoising (:mod:`lowdose.inference.validity_check`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose import __version__
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, Progress
from lowdose.core.validation import checked_images
from lowdose.data.scaling import HU_OFFSET, NetworkScaling
from lowdose.inference.predict import DENOISE_STAGE, denoise, denoise_in_field_of_view
from lowdose.inference.self_ensemble import checked_tta
from lowdose.inference.spectrum_blend import blend, blend_description, spectrum_bm3d_hu
from lowdose.inference.validity_check import validity_warnings
from lowdose.io.dicom_read import SliceInfo
from lowdose.io.images import read_image_stack, write_like
from lowdose.models.checkpoint import CheckpointMeta, load_model
from lowdose.physics.field_of_view import AIR_HU, field_of_view_mask


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


def denoise_files(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    tile: int | None = None,
    device: str = "cpu",
    batch_size: int = 4,
    tta: int = 1,
    progress: Progress | None = None,
    warn: Log | None = None,
    blend_bm3d_psd: bool = False,
) -> list[Path]:
    """Denoise every input with the model in ``checkpoint``; write the results to ``out``.

    Parameters
    ----------
    inputs : sequence of path
        Image files or DICOM series folders; none may lie in ``out``.
    out : path
        Output folder (created); each input's result keeps its name, format and units.
    checkpoint : path
        ``RUN_DIR/best.ckpt`` or a run folder (:func:`lowdose.models.checkpoint.load_model`).
    tile, device, batch_size, tta
        Passed to :func:`lowdose.inference.predict.predict`; ``tta=8`` (the self-ensemble over
        the 8 dihedral transforms) is recorded in each DICOM output's DerivationDescription.
    progress : Progress, optional
        ``progress("denoise", done, total)`` with ``done`` the images finished over all inputs.
    warn : Log, optional
        Receives one line per series (DICOM) or file whose images' estimated noise lies outside
        the model's validity range (:func:`lowdose.inference.validity_check.validity_warnings`),
        before any input is denoised; None: no estimate.
    blend_bm3d_psd : bool
        CT in HU only: average the network's output with BM3D given each slice's own noise
        spectrum (:mod:`lowdose.inference.spectrum_blend`, the one-scan recipe of ``fit``).

    Returns
    -------
    list of Path
        Files written (DICOM series: one per slice), each atomically.

    Raises
    ------
    LowdoseInputError
        An input inside ``out``, a missing or unreadable file, images that are not finite
        single-channel (H, W) / (B, H, W) (the message names the file), or ``tta`` not 1 or 8.
    """
    checked_tta(tta)
    out = Path(out)
    paths = [Path(path) for path in inputs]
    check_out_folder(paths, out)
    network, meta = load_model(checkpoint)
    if blend_bm3d_psd and meta.scaling.raw_units.strip().lower() != "hu":
        raise LowdoseInputError(
            f"{checkpoint}: the BM3D blend needs a model for CT in HU; drop the blend"
        )
    loaded = [read_input(path) for path in paths]
    if warn is not None and meta.validity is not None:  # None: a model measured before issue 16
        for item in loaded:
            inside = field_of_view(item, meta.scaling)
            for line in validity_warnings(item.path, item.images, meta.scaling, meta.validity,
                                          file_meta=item.file_meta, inside=inside):  # fmt: skip
                warn(line)
    total = sum(item.n_images for item in loaded)
    derivation = derivation_text(meta, tta=tta)
    if blend_bm3d_psd:
        derivation += f"; {blend_description()}"
    written: list[Path] = []
    finished = 0
    for item in loaded:
        run = {"scaling": meta.scaling, "tile": tile, "device": device, "batch_size": batch_size,
               "tta": tta, "progress": _offset(progress, finished, total)}  # fmt: skip
        inside = field_of_view(item, meta.scaling)
        if inside is None:
            result = denoise(network, item.images, **run)
        else:
            result = denoise_in_field_of_view(network, item.images, inside, **run)
        if blend_bm3d_psd:
            result = _blended(item.images, result, inside, progress)
        written += write_like(item.path, result, out, item.file_meta, derivation=derivation)
        finished += item.n_images
    return written


def _blended(images, network_output, inside, progress) -> np.ndarray:
    """The network's output averaged with spectrum BM3D inside the field of view (HU)."""
    # BM3D sees air outside the field of view, as the network does; the padding comes back as is
    filled = images if inside is None else np.where(inside, images, np.float32(AIR_HU))
    filtered = spectrum_bm3d_hu(filled, inside=inside, progress=progress)
    mixed = blend(network_output, filtered)
    return mixed if inside is None else np.where(inside, mixed, images).astype(np.float32)


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
        padding (then the input is denoised whole, as before).
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


def check_out_folder(inputs: Sequence[Path], out: Path) -> None:
    """Raise if ``out`` is the folder of an input: writing there could overwrite the input."""
    for path in inputs:
        folder = path if path.is_dir() else path.parent
        if folder.resolve() == out.resolve():
            raise LowdoseInputError(
                f"--out {out} holds the input {path}; choose another folder so inputs stay intact"
            )


def derivation_text(meta: CheckpointMeta, *, tta: int = 1) -> str:
    """DICOM DerivationDescription: lowdose version, model name, mode and loss, and for
    ``tta=8`` the self-ensemble (``... n2n-mse, self-ensemble tta8 (mean over 8
    rotated/mirrored copies)``); ``tta=1`` leaves the text as it always was."""
    text = f"denoised by lowdose {__version__} {meta.model.name} {meta.mode}-{meta.loss}"
    if checked_tta(tta) == 1:
        return text
    return f"{text}, self-ensemble tta{tta} (mean over {tta} rotated/mirrored copies)"


def _offset(progress: Progress | None, before: int, total: int) -> Progress | None:
    """Report one input's image count as the running count over all inputs."""
    if progress is None:
        return None

    def report(stage: str, done: int, _input_total: int) -> None:
        progress(DENOISE_STAGE, before + done, total)

    return report
