"""File in, file out: denoise the user's images with a trained model, in their own format and units.

:func:`denoise_files` is what ``lowdose denoise`` runs: it reads every input (DICOM files or
series folders, NIfTI, TIFF stacks, PNG, ``.npy``; :func:`lowdose.io.images.read_image_stack`),
applies the checkpoint's scaling around the network (:func:`lowdose.inference.predict.denoise`)
and writes each result beside the others in ``out`` with the input's name, format and units
(:func:`lowdose.io.images.write_like`). Every input is read and checked before the first is
denoised, so a bad file costs no network time and leaves ``out`` untouched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose import __version__
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.core.validation import checked_images
from lowdose.inference.predict import DENOISE_STAGE, denoise
from lowdose.io.images import read_image_stack, write_like
from lowdose.models.checkpoint import CheckpointMeta, load_model


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
    progress: Progress | None = None,
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
    tile, device, batch_size
        Passed to :func:`lowdose.inference.predict.predict`.
    progress : Progress, optional
        ``progress("denoise", done, total)`` with ``done`` the images finished over all inputs.

    Returns
    -------
    list of Path
        Files written (DICOM series: one per slice), each atomically.

    Raises
    ------
    LowdoseInputError
        An input inside ``out``, a missing or unreadable file, or images that are not finite
        single-channel (H, W) / (B, H, W); the message names the file.
    """
    out = Path(out)
    paths = [Path(path) for path in inputs]
    check_out_folder(paths, out)
    network, meta = load_model(checkpoint)
    loaded = [read_input(path) for path in paths]
    total = sum(item.n_images for item in loaded)
    derivation = derivation_text(meta)
    written: list[Path] = []
    finished = 0
    for item in loaded:
        result = denoise(
            network, item.images, scaling=meta.scaling, tile=tile, device=device,
            batch_size=batch_size, progress=_offset(progress, finished, total),
        )  # fmt: skip
        written += write_like(item.path, result, out, item.file_meta, derivation=derivation)
        finished += item.n_images
    return written


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


def check_out_folder(inputs: Sequence[Path], out: Path) -> None:
    """Raise if ``out`` is the folder of an input: writing there could overwrite the input."""
    for path in inputs:
        folder = path if path.is_dir() else path.parent
        if folder.resolve() == out.resolve():
            raise LowdoseInputError(
                f"--out {out} holds the input {path}; choose another folder so inputs stay intact"
            )


def derivation_text(meta: CheckpointMeta) -> str:
    """DICOM DerivationDescription: lowdose version, model name, mode and loss."""
    return f"denoised by lowdose {__version__} {meta.model.name} {meta.mode}-{meta.loss}"


def _offset(progress: Progress | None, before: int, total: int) -> Progress | None:
    """Report one input's image count as the running count over all inputs."""
    if progress is None:
        return None

    def report(stage: str, done: int, _input_total: int) -> None:
        progress(DENOISE_STAGE, before + done, total)

    return report
