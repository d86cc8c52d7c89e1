"""File in, file out: denoise the user's images with a trained model, in their own format and units.

:func:`denoise_files` is what ``lowdose denoise`` runs. It streams: the inputs (DICOM files or
archive folders of many series, NIfTI, TIFF stacks, PNG, ``.npy``) are indexed from file names and
headers only (:mod:`lowdose.io.series_index`), then each unit (one DICOM series, or one other
file) is read, checked, denoised with the checkpoint's scaling around the network
(:func:`lowdose.inference.predict.denoise`) and written in the input's name, format and units
(:func:`lowdose.io.images.write_like`) before the next is read, so memory holds one series
whatever the size of the archive. The units run through Lightning's predict loop
(:mod:`lowdose.inference.predict_loop`) on one device or many. ``skip_existing`` and ``shard``
(:mod:`lowdose.inference.work_plan`) make a killed job resumable and a job splittable over an
array of jobs. Outputs mirror the inputs' folders under ``out``. With ``tta=8`` each image is the
self-ensemble of the network over its 8 rotations and mirrors, and DICOM outputs say so in their
DerivationDescription (the other formats carry no provenance field).

Units: ``units`` (``--units``, :mod:`lowdose.inference.input_units`) states what the numbers are;
by default they are checked to look like the model's units (HU: a CT slice with air or fat), so an
8-bit display PNG stops with one line instead of being denoised as HU.

CT padding: outside the reconstructed field of view many scanners store -2048 or -3024 HU. For HU
inputs (DICOM of Modality CT, or any input when the checkpoint's ``raw_units`` is ``hu``, or
when it has none but the CT offset of 1024) the field of view is taken from the slice's
``PixelPaddingValue`` and the pixels
(:func:`lowdose.physics.field_of_view.field_of_view_mask`); the network sees air there, and the
output keeps the input's padding unchanged (DICOM: the exact stored values).

Validity range: when the checkpoint records where the model helps (``meta.validity``, measured
clean-free after training, :mod:`lowdose.training.validity`), the noise of every image is
estimated in physical units (HU sd for CT) and each series with images outside the range gets
one warning line before it is denoised (:mod:`lowdose.inference.validity_check`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lowdose import __version__
from lowdose.core.devices import resolve_device
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, Progress
from lowdose.data.scaling import HU_OFFSET, NetworkScaling
from lowdose.inference.input_units import parse_units, to_model_units
from lowdose.inference.predict import checked_device
from lowdose.inference.predict_loop import run_units
from lowdose.inference.self_ensemble import checked_tta
from lowdose.inference.spectrum_blend import blend_description
from lowdose.inference.unit_work import (
    DenoiseJob,
    InputImages,
    UnitWork,
    field_of_view,
    read_input,
    read_unit,
)
from lowdose.inference.work_plan import (
    finished,
    parse_shard,
    recorded_files,
    remove_empty_staging,
)
from lowdose.io.listing import describe_ignored
from lowdose.io.series_index import SeriesFiles, index_input
from lowdose.models.checkpoint import CheckpointMeta, load_model

HU_MODEL = NetworkScaling("dataset_max", HU_OFFSET, "hu", 1.0)
"""Any CT model in HU: what the units of an input for one are checked against."""

__all__ = [
    "InputImages",
    "check_hu_inputs",
    "denoise_files",
    "field_of_view",
    "read_input",
    "read_unit",
]
"""The unit readers live in :mod:`lowdose.inference.unit_work`; named here for callers."""


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
    units: str | None = None,
    skip_existing: bool = False,
    shard: str | None = None,
    devices: int = 1,
    strategy: str = "auto",
    skip_bad: bool = False,
) -> list[Path]:
    """Denoise every input with the model in ``checkpoint``, one series at a time, into ``out``.

    Parameters
    ----------
    inputs : sequence of path
        Image files, DICOM files, series folders or archive folders; ``out`` may not lie inside
        one, nor one be ``out``.
    out : path
        Output folder (created); each unit's result keeps its name, format and units, in the
        unit's folder relative to its input. ``out/.lowdose/`` holds the job's records.
    checkpoint : path
        ``RUN_DIR/best.ckpt``, a run folder or ``builtin:NAME``
        (:func:`lowdose.models.checkpoint.load_model`).
    tile, batch_size, tta
        Passed to :func:`lowdose.inference.predict.predict`; ``tta=8`` (the self-ensemble over
        the 8 dihedral transforms) is recorded in each DICOM output's DerivationDescription.
    device : str
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when torch sees one).
    progress : Progress, optional
        One input unit: ``progress("denoise", images done, images)``; several:
        ``progress("series", units done, units)``.
    warn : Log, optional
        Receives one line per unit whose images' estimated noise lies outside the model's
        validity range, per input with non-image files set aside, and for skipped files.
    blend_bm3d_psd : bool
        CT in HU only: average the network's output with BM3D given each slice's own noise
        spectrum (:mod:`lowdose.inference.spectrum_blend`, the one-scan recipe of ``fit``).
    units : str, optional
        ``auto`` (default), ``hu``, ``scaled``, ``window:C,W`` or the model's raw units
        (:mod:`lowdose.inference.input_units`).
    skip_existing : bool
        Leave units that an earlier run of the same model finished (its record in
        ``out/.lowdose/done``) as they are.
    shard : str, optional
        ``"K/N"``: do only the K-th of N interleaved parts of the units (1-based).
    devices : int
        Devices for Lightning's predict loop (GPUs, or CPU processes with ``ddp_spawn``).
    strategy : str
        Lightning strategy for ``devices`` > 1 (``ddp`` on GPUs, ``ddp_spawn`` on CPU).
    skip_bad : bool
        Skip unreadable files of a DICOM series (named by ``warn``) instead of stopping.

    Returns
    -------
    list of Path
        The files of every unit of this shard (written now, or earlier when skipped as
        finished), in unit order.

    Raises
    ------
    LowdoseInputError
        ``out`` inside an input, a missing or unreadable file, images that are not finite
        single-channel (H, W) / (B, H, W) (the message names the file), units that do not look
        like the model's, ``tta`` not 1 or 8, a bad ``shard``. Units finished before the error
        stay finished (a rerun with ``skip_existing`` resumes after them).
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
    job = DenoiseJob(
        out=out,
        scaling=meta.scaling,
        validity=meta.validity,
        derivation=_derivation(meta, tta, blend_bm3d_psd),
        units=parse_units(units, meta.scaling),
        tile=tile,
        batch_size=batch_size,
        tta=tta,
        blend_bm3d_psd=blend_bm3d_psd,
        skip_bad=skip_bad,
    )
    chosen = _units_of_this_job(paths, parse_shard(shard), warn)
    todo = [unit for unit in chosen if not (skip_existing and finished(unit, out, job.derivation))]
    if warn is not None and len(todo) < len(chosen):
        warn(
            f"skipping {len(chosen) - len(todo)} series finished earlier in {out} (--skip-existing)"
        )
    accelerator, device_ids = _placement(device, devices)
    one_process = devices == 1
    work = UnitWork(
        network,
        job,
        progress=progress if one_process else None,
        warn=warn if one_process else None,
        n_units=len(todo),
    )
    run_units(network, todo, work, accelerator=accelerator, devices=device_ids, strategy=strategy)
    remove_empty_staging(out)
    return [path for unit in chosen for path in recorded_files(unit, out)]


def check_hu_inputs(
    paths: Sequence[Path],
    units: str | None,
    *,
    modality: str | None = None,
    skip_bad: bool = False,
) -> None:
    """Before any work: raise one line unless each CT input's first unit looks like HU.

    For ``fit``, which trains on the values as read: ``units`` may state ``hu`` (unchecked) or
    be ``auto`` (checked, :func:`lowdose.inference.input_units.check_plausible`); display or
    scaled values are refused, since training would learn them as HU. The inputs taken as CT:
    DICOM of Modality CT, and with ``modality="ct"`` every input; ``modality="xray"`` none.
    """
    if modality == "xray":
        return
    stated = parse_units(units, HU_MODEL)
    if stated.name in ("scaled", "window"):
        raise LowdoseInputError(
            f"--units {units}: fit trains on the values as read; give it HU (DICOM, NIfTI, or "
            "images converted to HU)"
        )
    for path in paths:
        item = read_unit(index_input(path).units[0], skip_bad=skip_bad)
        slices = item.file_meta.get("slices") or ()
        is_ct = item.kind == "dicom" and bool(slices) and slices[0].modality.upper() in ("CT", "")
        if not (is_ct or modality == "ct"):
            continue
        to_model_units(item.images, stated, HU_MODEL, dtype="float32", source=str(item.path))


def _units_of_this_job(paths: list[Path], shard, warn: Log | None) -> list[SeriesFiles]:
    """Every input's units in order, then this shard's share; non-image files said once."""
    units: list[SeriesFiles] = []
    for path in paths:
        if not path.exists():
            raise LowdoseInputError(f"{path}: no such file or folder")
        index = index_input(path)
        if not index.units:
            raise LowdoseInputError(f"{path}: holds no image files (DICOM, NIfTI, TIFF, PNG, .npy)")
        if warn is not None and index.ignored:
            warn(f"{path}: {describe_ignored(index.ignored)}")
        units += index.units
    return [unit for position, unit in enumerate(units) if shard.takes(position)]


def _placement(device: str, devices: int) -> tuple[str, int | list[int]]:
    """``--device`` and ``--devices`` -> Lightning's accelerator and devices."""
    if devices < 1:
        raise LowdoseInputError(f"--devices {devices}: pass 1 or more")
    chosen = checked_device(resolve_device(device.strip().lower()))
    if chosen.type == "cpu":
        return "cpu", devices
    if chosen.type != "cuda":
        raise LowdoseInputError(f"--device {device}: use cpu, cuda, cuda:N or auto")
    if chosen.index is not None:
        return "gpu", [chosen.index + k for k in range(devices)]
    return "gpu", devices


def _derivation(meta: CheckpointMeta, tta: int, blend_bm3d_psd: bool) -> str:
    text = derivation_text(meta, tta=tta)
    return f"{text}; {blend_description()}" if blend_bm3d_psd else text


def check_out_folder(inputs: Sequence[Path], out: Path) -> None:
    """Raise if ``out`` is an input's folder or lies inside a folder input: writing there could
    overwrite inputs, and a later run over that folder would take the outputs for inputs."""
    target = out.resolve()
    for path in inputs:
        folder = path if path.is_dir() else path.parent
        inside = path.is_dir() and target.is_relative_to(folder.resolve())
        if folder.resolve() == target or inside:
            raise LowdoseInputError(
                f"--out {out} is inside the input {path}; choose a folder outside the inputs"
            )


def derivation_text(meta: CheckpointMeta, *, tta: int = 1) -> str:
    """DICOM DerivationDescription: lowdose version, model name, mode and loss, and for
    ``tta=8`` the self-ensemble (``... n2n-mse, self-ensemble tta8 (mean over 8
    rotated/mirrored copies)``); ``tta=1`` adds nothing."""
    text = f"denoised by lowdose {__version__} {meta.model.name} {meta.mode}-{meta.loss}"
    if checked_tta(tta) == 1:
        return text
    return f"{text}, self-ensemble tta{tta} (mean over {tta} rotated/mirrored copies)"
