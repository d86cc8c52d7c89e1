"""The library face of lowdose: denoise an array or files, fit a model to your data, from Python.

``import lowdose`` stays light: :func:`denoise` and :func:`fit` (and
:func:`lowdose.models.checkpoint.load_model` beside them) are resolved on first use, so torch is
imported by the first call, not by the import.

* :func:`denoise` with an array, ``(H, W)`` or ``(B, H, W)``, returns the denoised array in the
  input's units; with a path (or a list of paths) it denoises the files as ``lowdose denoise``
  does and returns the files it wrote in ``out``.
* :func:`fit` runs ``lowdose fit``: a dataset from the user's own scans, clean-free training
  within a budget, the inputs denoised, a comparison with blind filters and a report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lowdose.core.atomic import atomic_path
from lowdose.core.devices import resolve_device
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, Progress, ProgressScope, no_progress
from lowdose.core.validation import checked_images
from lowdose.inference.files import InputImages, denoise_files, field_of_view
from lowdose.inference.input_units import from_model_units, parse_units, to_model_units
from lowdose.inference.predict import denoise as denoise_raw
from lowdose.inference.predict import denoise_in_field_of_view
from lowdose.inference.self_ensemble import checked_tta
from lowdose.models.checkpoint import load_model
from lowdose.pipeline.fit import FitOptions, FitResult, run_fit

PathInput = str | os.PathLike
_ARRAY_NAME = "array.npy"


def denoise(
    images,
    *,
    model: PathInput = "builtin:ct-sinogram",
    device: str = "auto",
    units: str | None = None,
    tta: int = 1,
    out: PathInput | None = None,
    tile: int | None = None,
    batch_size: int = 4,
    progress: Progress | None = None,
    **options: Any,
):
    """Denoise an array, or image files, with a trained or built-in model.

    Parameters
    ----------
    images : ndarray or path or sequence of path
        An array ``(H, W)`` or ``(B, H, W)``, real and finite, in ``units``; or image files or
        DICOM series folders (DICOM, NIfTI, TIFF, PNG, ``.npy``), denoised as
        ``lowdose denoise`` does (:func:`lowdose.inference.files.denoise_files`).
    model : str or path
        ``"builtin:NAME"`` (``lowdose models`` lists them: ``ct-sinogram`` for CT scans,
        ``ct-awgn``, ``xray-poisson``), a checkpoint ``RUN_DIR/best.ckpt`` or a run folder.
    device : str
        ``"auto"`` (a GPU when torch sees one, else the CPU:
        :func:`lowdose.core.devices.resolve_device`), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
    units : str, optional
        What the numbers are, as ``lowdose denoise --units`` takes it
        (:mod:`lowdose.inference.input_units`): None or ``"auto"`` the model's own units
        (HU for CT, ``"transmission"`` for ``xray-poisson``), checked to look like them;
        ``"hu"`` / the raw units stated (unchecked); ``"scaled"`` already on the model's network
        scale (``(HU + 1024) / divisor`` for CT); ``"window:C,W"`` a display image of that HU
        window. The result comes back in the same units.
    tta : {1, 8}
        8: the mean over the 8 rotations and mirrors of each image (8x the time).
    out : path, optional
        Paths only, and required there: the folder the results are written to.
    tile, batch_size
        Tile side in pixels (default: what fits in memory) and tiles per forward pass.
    progress : Progress, optional
        ``progress("denoise", done, total)`` after each image.
    **options
        Paths only: further keyword arguments of ``denoise_files`` (``warn``,
        ``blend_bm3d_psd`` ...).

    Returns
    -------
    ndarray, float32, shape of ``images``
        For an array: the denoised images in ``units``. For HU models the outside of a CT
        scanner's field of view (padding such as -2048 HU) comes back unchanged.
    list of Path
        For paths: the files written in ``out``, each in its input's format and units.

    Raises
    ------
    LowdoseInputError
        One line: units the model cannot take (it names the options), an array that is not
        finite ``(H, W)`` / ``(B, H, W)``, ``out`` missing for paths (or given for an array),
        an unknown model, ``tta`` not 1 or 8, or an unreadable file.

    Examples
    --------
    A noisy slice in HU (a water disc in air, white noise of 300 HU: the regime of the built-in
    ``ct-awgn``), denoised:

    >>> import numpy as np, lowdose
    >>> yy, xx = np.mgrid[:64, :64]
    >>> clean = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 24**2, 0.0, -1000.0)
    >>> noisy = (clean + np.random.default_rng(0).normal(0, 300, clean.shape)).astype(np.float32)
    >>> result = lowdose.denoise(noisy, model="builtin:ct-awgn", device="cpu")
    >>> result.shape, result.dtype
    ((64, 64), dtype('float32'))
    >>> rmse = lambda image: float(np.sqrt(np.mean((image - clean) ** 2)))
    >>> bool(rmse(result) < rmse(noisy) / 2)
    True

    Files: a stack saved as ``.npy`` comes back as ``.npy`` in ``out``:

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "scan.npy", noisy[None])
    >>> written = lowdose.denoise(folder / "scan.npy", out=folder / "denoised", device="cpu",
    ...                           model="builtin:ct-awgn")
    >>> [path.name for path in written], np.load(written[0]).shape
    (['scan.npy'], (1, 64, 64))
    """
    run = {
        "device": resolve_device(device),
        "tta": checked_tta(tta),
        "tile": tile,
        "batch_size": batch_size,
        "progress": progress,
    }
    paths = _as_paths(images)
    if paths is not None:
        if out is None:
            raise LowdoseInputError("denoise of files needs out=FOLDER for the results")
        if units is not None:
            options["units"] = (
                units  # only when asked: a denoise_files without ``units`` still works
            )
        return denoise_files(paths, out, model, **run, **options)
    if out is not None or options:
        extra = ", ".join(["out"] * (out is not None) + sorted(options))
        raise LowdoseInputError(f"denoise of an array takes no {extra}; those are for file inputs")
    network, meta = load_model(model)
    array = checked_images(images, "images")
    stated = parse_units(units, meta.scaling)  # None: the model's units, checked (auto)
    dtype = str(np.asarray(images).dtype)
    values = to_model_units(array, stated, meta.scaling, dtype=dtype, source="array")
    # the field of view of lowdose denoise: HU padding outside it is shown as air, kept as is
    inside = field_of_view(InputImages(Path("array"), values, "npy", {}), meta.scaling)
    if inside is None:
        result = denoise_raw(network, values, scaling=meta.scaling, **run)
    else:
        result = denoise_in_field_of_view(network, values, inside, scaling=meta.scaling, **run)
    return from_model_units(result, stated, meta.scaling, dtype=dtype, reference=array)


def _as_paths(images) -> list[Path] | None:
    """The inputs as paths, or None for an array (anything that is not a path or paths)."""
    if isinstance(images, str | os.PathLike):
        return [Path(images)]
    is_sequence = isinstance(images, Sequence) and not isinstance(images, np.ndarray)
    if is_sequence and images and all(isinstance(i, str | os.PathLike) for i in images):
        return [Path(item) for item in images]
    return None


def fit(
    inputs,
    *,
    out: PathInput,
    log: Log | None = None,
    bars: ProgressScope = no_progress,
    **options: Any,
) -> FitResult:
    """Denoise your own scans without clean images: what ``lowdose fit`` runs, from Python.

    Parameters
    ----------
    inputs : path or sequence of path or ndarray
        DICOM folders or files, TIFF/PNG/``.npy`` images or stacks, or a sinogram (with
        ``angles=``); two or more inputs are repeated acquisitions of the same object. An array
        ``(H, W)`` or ``(B, H, W)`` is saved as ``OUT/input/array.npy`` and fitted as that file.
    out : path
        Folder for the dataset, the model, the denoised inputs and ``report.html``; a fit
        interrupted there resumes where it stopped.
    log : Log, optional
        Receives the fit's lines for people (route, training, scores); None: silent.
    bars : ProgressScope
        Progress bars for the long stages (:mod:`lowdose.core.progress`).
    **options
        The fields of :class:`lowdose.pipeline.fit.FitOptions` (the options of ``lowdose
        fit``): ``budget`` (``"HH:MM:SS"``), ``mode`` (``"auto"``, ``"n2n"``, ``"nb2nb"``,
        ``"n2v"``, ``"blend"``), ``modality``, ``angles``, ``device``, ``units``, ``seed`` ...

    Returns
    -------
    FitResult
        The route and mode chosen, the dataset, the training run (None without training), the
        denoised files, the report and the method the comparison would use.

    Raises
    ------
    LowdoseInputError
        An unknown option (the line names the known ones), or whatever ``lowdose fit`` refuses.

    Examples
    --------
    Minutes of training, so not run here:

    >>> result = lowdose.fit(["scan1/", "scan2/"], out="fit", budget="00:05:00")  # doctest: +SKIP
    >>> result.report  # doctest: +SKIP
    PosixPath('fit/report.html')
    """
    known = sorted(FitOptions.__dataclass_fields__)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise LowdoseInputError(f"fit takes no {', '.join(unknown)}; use {', '.join(known)}")
    out = Path(out)
    fresh = not out.exists()
    paths = _as_paths(inputs)
    try:
        if paths is None:
            paths = [_saved_array(inputs, out / "input")]
        return run_fit(paths, out, FitOptions(**options), log=log or _silent, bars=bars)
    except LowdoseInputError:
        if fresh:  # as run_fit does: bad input in a new fit leaves nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _saved_array(images, folder: Path) -> Path:
    """Save an array for ``fit`` as ``folder/array.npy``; an unchanged one is not rewritten, so
    that the fit's stage cache (keyed by file size and time) reuses its finished stages."""
    array = checked_images(images, "images")
    target = folder / _ARRAY_NAME
    if target.is_file() and np.array_equal(np.load(target), array):
        return target
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
    return target


def _silent(_line: str) -> None:
    """A :class:`Log` that drops every line."""
