"""One CT dataset file holding the same slices at several doses of sinogram noise.

FBP correlates sinogram noise, so the image-domain re-noising of
:mod:`lowdose.physics.dose_thinning` cannot lower its dose: a dose-robust Noise2Noise model for it
trains on data that already holds several doses. :func:`build_multidose_ct_dataset` simulates each
dose with :func:`lowdose.simulate.ct.build_ct_dataset` (one source, size, seed and split; noise
streams keyed by the dose: no shared draws) and :func:`merge_ct_doses` merges the files, keeping
the docs/interfaces.md layout so that every reader stays right:

- **rows** are dose-major (rows ``k*I .. (k+1)*I - 1`` are input ``k``'s): each slice once per
  dose; ``object_id``, ``split``, ``scale`` and ``clean`` (the noise-free FBP, the same at every
  dose) repeat, so a patient stays in one split and statistics still resample patients;
- **per-image doses**: (I,) float64 datasets ``dose_fraction`` (of the full-dose convention of
  :mod:`lowdose.physics.ct_dose`) and ``photons_per_ray`` (I0), read by :func:`read_image_doses`;
- **attributes**: ``noise_level`` NaN (no one I0 holds; ``evaluate``'s ``noise_level`` column is
  NaN, which summaries group with ``dropna=False``), ``target_psnr_db`` NaN, ``achieved_psnr_db``
  the mean over all rows. ``extra`` keeps what all inputs share (geometry, kernel, split,
  data_max: what the sweep and evaluation read); what differs (I0, noise SD, bias, ...) goes per
  dose into ``multi_dose_per_dose`` (JSON). The noise correlation is measured over every dose;
  ``photon_starved`` is true if any dose is.

Per-dose test scores come from the single-dose files (each with its own ``noise_level``; kept
with ``dose_folder``). Noise2Noise training reads only ``noisy``: nothing new for it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import (
    NOISE_CORRELATION_IMAGES,
    DatasetSummary,
    noise_correlation_attrs,
    summarise_dataset,
)
from lowdose.data.dataset import DatasetInfo, open_dataset, read_info, read_scale
from lowdose.data.writer import dataset_writer
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.ct import build_ct_dataset

PathLike = str | os.PathLike

DOSE_KEYS = ("dose_fraction", "photons_per_ray")  # the merged file's (I,) float64 datasets
# extras every input must share: the geometry and kernel that the sweep and evaluation read
MUST_MATCH = ("realisations_are", "views", "filter_name", "pixel_mm_mean", "data_max")
BLOCK_IMAGES = 16  # rows read and written at a time: a merge of files larger than RAM streams
_CLEAN_ATOL = 1e-5  # dataset scale (~0.02 HU at data_max 2000): the same noise-free FBP
# build_ct_dataset's keywords that this builder sets: one dose each, independent scans
_OWN_KWARGS = ("noise", "level", "view_subsets")


@dataclass(frozen=True)
class MergedDoses:
    """What a multi-dose merge wrote beyond the common attributes.

    ``per_dose``: one record per input, as the ``multi_dose_per_dose`` attribute (JSON) holds it
    (file, dose_fraction, photons_per_ray, achieved_psnr_db and the input's own extras);
    ``dose_files``: the single-dose files simulated for it (gone when no folder kept them).
    """

    per_dose: tuple[dict[str, Any], ...]
    dose_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ImageDoses:
    """Every row's dose: ``dose_fraction`` (I,) float64 of the full-dose convention, and
    ``photons_per_ray`` (I,) float64, I0 (unattenuated photons per detector bin and view)."""

    dose_fraction: np.ndarray
    photons_per_ray: np.ndarray


def read_image_doses(path: PathLike) -> ImageDoses:
    """Per-image doses of a file written by :func:`merge_ct_doses`; raises for any other file."""
    with open_dataset(path) as handle:
        if not all(key in handle for key in DOSE_KEYS):
            raise LowdoseInputError(
                f"{path}: no per-image doses; not a multi-dose file (build "
                "it with build_multidose_ct_dataset)"
            )
        values = [np.asarray(handle[key][()], dtype=np.float64) for key in DOSE_KEYS]
    return ImageDoses(*values)


def single_dose_path(out: PathLike, dose_fraction: float, folder: PathLike) -> Path:
    """Where :func:`build_multidose_ct_dataset` puts one dose: ``folder/<out stem>-dose<F>.h5``."""
    return Path(folder) / f"{Path(out).stem}-dose{dose_fraction:g}.h5"


def build_multidose_ct_dataset(
    out: PathLike,
    *,
    source: PathLike,
    dose_fractions: Sequence[float],
    size: int = 256,
    seed: int = 0,
    realisations: int = 2,
    dose_folder: PathLike | None = None,
    progress: Progress | None = None,
    **ct_options: Any,
) -> DatasetSummary[MergedDoses]:
    """Simulate sinogram noise at every dose of ``dose_fractions`` and merge the files into ``out``.

    Parameters
    ----------
    out : path
        Destination ``.h5`` (written atomically), laid out as the module docstring says.
    source : path or "phantom"
        Clean slices, as :func:`lowdose.simulate.ct.build_ct_dataset` reads them.
    dose_fractions : sequence of float
        Two or more different fractions > 0 of the full-dose convention, in the rows' order.
    size, seed, realisations : int
        Slice edge (pixels); one seed for every dose (same slices and split); independent scans
        per slice and dose.
    dose_folder : path, optional
        Keep the single-dose files there (:func:`single_dose_path`, overwritten); default: a
        temporary folder beside ``out``, removed afterwards.
    progress : Progress, optional
        ``progress("dose F: <stage>", done, total)`` while simulating, then ``"merging"``.
    **ct_options
        Other keywords of :func:`lowdose.simulate.ct.build_ct_dataset` (``views``, ``split_by``,
        ...), the same at every dose.

    Returns
    -------
    DatasetSummary[MergedDoses]
        Of ``out``, with the single-dose files in ``details.dose_files``.
    """
    fractions = [float(v) for v in dose_fractions]
    usable = all(math.isfinite(v) and v > 0 for v in fractions)
    if len(fractions) < 2 or len(set(fractions)) < len(fractions) or not usable:
        raise LowdoseInputError(
            f"dose_fractions={tuple(fractions)}: give two or more different "
            "fractions > 0, e.g. 1,0.5,0.25,0.1"
        )
    if taken := sorted(set(ct_options) & set(_OWN_KWARGS)):
        raise LowdoseInputError(
            f"{', '.join(taken)}: set by build_multidose_ct_dataset itself "
            "(one dose per fraction); remove it"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    folders = (
        contextlib.nullcontext(dose_folder)
        if dose_folder is not None
        else tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent)
    )
    with folders as folder:
        paths = [single_dose_path(out, fraction, folder) for fraction in fractions]
        for fraction, path in zip(fractions, paths, strict=True):
            build_ct_dataset(
                path,
                source=source,
                noise="sinogram",
                level=NoiseLevel(dose_fraction=fraction),
                size=size,
                seed=seed,
                realisations=realisations,
                progress=_prefixed(progress, f"dose {fraction:g}"),
                **ct_options,
            )
        summary = merge_ct_doses(out, paths, progress=progress)
    return replace(summary, details=replace(summary.details, dose_files=tuple(paths)))


def merge_ct_doses(
    out: PathLike, inputs: Sequence[PathLike], *, progress: Progress | None = None
) -> DatasetSummary[MergedDoses]:
    """Merge sinogram-noise CT files of the same slices at different doses into ``out``.

    Parameters
    ----------
    out : path
        Destination ``.h5``, written atomically (a failure leaves no file, or the old one).
    inputs : sequence of path
        Two or more sinogram-noise files of :func:`lowdose.simulate.ct.build_ct_dataset`, one per
        dose, of the same slices (ids, splits, scales, clean FBP, shape, geometry, kernel).
    progress : Progress, optional
        ``progress("merging", done, total)`` in rows written.

    Returns
    -------
    DatasetSummary[MergedDoses]
        Of ``out``.

    Raises
    ------
    LowdoseInputError
        One line naming an input that differs from the first or is not sinogram CT.
    """
    started = time.perf_counter()
    out, paths = Path(out), [Path(p) for p in inputs]
    if len(paths) < 2:
        raise LowdoseInputError(
            f"{out}: merging needs two or more single-dose files, got {len(paths)}"
        )
    infos = [read_info(path) for path in paths]
    for info in infos:
        _check_input(info, infos[0])
    photons = [float(info.attrs.extra["photons_per_ray"]) for info in infos]
    if len(set(photons)) < len(photons):
        raise LowdoseInputError(
            f"{out}: two inputs have the same photons_per_ray ({photons}); merge one file per dose"
        )
    shared = _shared_extra(infos)
    per_dose = [_dose_record(info, shared) for info in infos]
    attrs = _merged_attrs(infos[0].attrs, shared, per_dose)
    n_rows = infos[0].shape[0]
    doses = {key: np.repeat([row[key] for row in per_dose], n_rows) for key in DOSE_KEYS}
    with atomic_path(out) as tmp:
        _write_merged(tmp, infos, attrs, progress)
        with h5py.File(tmp, "a") as handle:  # the per-image doses the writer does not know
            for key, values in doses.items():
                handle.create_dataset(key, data=values.astype(np.float64))
    return summarise_dataset(out, started_s=started, details=MergedDoses(tuple(per_dose)))


def _prefixed(progress: Progress | None, prefix: str) -> Progress | None:
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{prefix}: {stage}", done, total)


def _check_input(info: DatasetInfo, first: DatasetInfo) -> None:
    """Raise unless ``info`` is sinogram CT of ``first``'s slices, split and geometry."""
    where, attrs = info.path, info.attrs
    if attrs.noise_model != "sinogram" or attrs.modality != "ct":
        raise LowdoseInputError(
            f"{where}: noise_model {attrs.noise_model!r}; merge sinogram-"
            "noise CT files (AWGN: train with --dose-range)"
        )
    for key in ("photons_per_ray", "dose_fraction_equivalent"):
        if not isinstance(attrs.extra.get(key), float | int):
            raise LowdoseInputError(
                f"{where}: no {key} attribute; rebuild it with lowdose simulate ct --noise sinogram"
            )
    same = (
        info.shape == first.shape
        and info.has_clean == first.has_clean
        and np.array_equal(info.object_id, first.object_id)
        and np.array_equal(info.split, first.split)
        and np.array_equal(read_scale(info.path), read_scale(first.path))
    )
    if not same:
        raise LowdoseInputError(
            f"{where}: its images, ids, splits or scales differ from "
            f"{first.path.name}'s; merge files of the same slices (same "
            "source, size, seed and split)"
        )
    for key in MUST_MATCH:
        mine, theirs = info.attrs.extra.get(key), first.attrs.extra.get(key)
        if mine != theirs:
            raise LowdoseInputError(
                f"{where}: {key}={mine!r} but {first.path.name} has "
                f"{theirs!r}; merge files of one geometry"
            )


def _shared_extra(infos: list[DatasetInfo]) -> dict[str, Any]:
    """The extra attributes every input holds with the same value (kept for the merged file)."""
    extras = [info.attrs.extra for info in infos]
    same = json.dumps  # as JSON text NaN equals NaN, and 1 differs from 1.0 and from True
    return {
        key: value
        for key, value in extras[0].items()
        if all(key in e and same(e[key]) == same(value) for e in extras)
    }


def _dose_record(info: DatasetInfo, shared: dict[str, Any]) -> dict[str, Any]:
    """One input's dose and the extras that describe its own noise (``multi_dose_per_dose``)."""
    extra = info.attrs.extra
    given = float(extra.get("dose_fraction", math.nan))  # NaN when I0 was given or solved
    fraction = given if math.isfinite(given) else float(extra["dose_fraction_equivalent"])
    own = {
        key: value
        for key, value in extra.items()
        if key not in shared and not key.startswith("noise_corr_")
    }
    return {
        **own,
        "file": info.path.name,
        "dose_fraction": fraction,  # never NaN, unlike own
        "photons_per_ray": float(extra["photons_per_ray"]),
        "achieved_psnr_db": float(info.attrs.achieved_psnr_db),
    }


def _merged_attrs(first: DatasetAttrs, shared: dict, per_dose: list[dict]) -> DatasetAttrs:
    """The merged file's attributes (module docstring): shared extras kept, the rest per dose."""
    key = "achieved_psnr_hu_window_db"
    window = [float(r.get(key, shared.get(key, math.nan))) for r in per_dose]
    fractions = ",".join(f"{r['dose_fraction']:g}" for r in per_dose)
    photons = ",".join(f"{r['photons_per_ray']:.6g}" for r in per_dose)
    description = (
        f"CT slices with sinogram noise at {len(per_dose)} doses (fractions "
        f"{fractions} of full dose; I0 {photons} photons per ray), each slice once per "
        "dose (lowdose simulate.ct_multidose)"
    )
    merged = replace(
        first,
        noise_level=math.nan,
        target_psnr_db=math.nan,
        achieved_psnr_db=math.nan,
        description=description,
        extra=shared,
    )
    return merged.with_extra(
        noise_level_name="per image: datasets photons_per_ray and dose_fraction",
        multi_dose_fractions=fractions,
        multi_dose_photons_per_ray=photons,
        multi_dose_per_dose=json.dumps(per_dose),
        multi_dose_rows="dose-major: rows k*I..(k+1)*I-1 hold dose k of multi_dose_fractions",
        achieved_psnr_hu_window_db=float(np.mean(window)),
        photon_starved=any(
            bool(r.get("photon_starved", shared.get("photon_starved", False))) for r in per_dose
        ),
    )


def _write_merged(tmp: Path, infos: list[DatasetInfo], attrs: DatasetAttrs, progress) -> None:
    """Write every input's rows block by block, dose-major; raise if a clean block differs."""
    first, n_doses = infos[0], len(infos)
    n_rows, n_real = first.shape[:2]
    with contextlib.ExitStack() as stack:  # the writer closes first: the inputs outlive it
        handles = [stack.enter_context(open_dataset(info.path)) for info in infos]
        optional = {
            key: np.concatenate([handles[0][key][()]] * n_doses) if key in handles[0] else None
            for key in ("tile_origin", "fov")
        }
        writer = stack.enter_context(
            dataset_writer(
                tmp,
                object_id=np.tile(first.object_id, n_doses),
                split=np.tile(first.split, n_doses),
                scale=np.tile(read_scale(first.path), n_doses),
                n_realisations=n_real,
                image_shape=first.shape[2:],
                has_clean=first.has_clean,
                attrs=attrs,
                **optional,
            )
        )
        writer.add_extra(**noise_correlation_attrs(_spread_sample(handles, n_rows)))
        for k, start in itertools.product(range(n_doses), range(0, n_rows, BLOCK_IMAGES)):
            rows = slice(start, min(start + BLOCK_IMAGES, n_rows))
            clean = _same_clean(handles[k], handles[0], rows, infos[k].path)
            writer.write(k * n_rows + start, noisy=handles[k]["noisy"][rows], clean=clean)
            if progress is not None:
                progress("merging", k * n_rows + rows.stop, n_doses * n_rows)


def _same_clean(handle, reference, rows: slice, where: Path) -> np.ndarray | None:
    """``clean[rows]`` of an input (None without); raises unless it is the first input's."""
    if "clean" not in reference:
        return None
    clean = handle["clean"][rows]  # the noise-free FBP: the same at every dose
    if not np.allclose(clean, reference["clean"][rows], rtol=0.0, atol=_CLEAN_ATOL):
        raise LowdoseInputError(
            f"{where}: its clean images differ from the first input's; "
            "merge files of the same slices (source, size, views)"
        )
    return clean


def _spread_sample(handles: list, n_rows: int) -> np.ndarray:
    """(M, N, H, W) noisy rows spread evenly over every input: the merged noise's correlation."""
    per_input = -(-NOISE_CORRELATION_IMAGES // len(handles))  # ceil: as many as builders use
    rows = np.unique(np.linspace(0, n_rows - 1, min(per_input, n_rows)).round().astype(int))
    return np.stack([handle["noisy"][int(r)] for handle in handles for r in rows])
