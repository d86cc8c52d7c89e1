"""Noise2Noise from one CT scan: split the projection views, reconstruct each half (Noise2Inverse).

The views of a sinogram are split into K disjoint interleaved subsets (view ``a`` goes to subset ``a
mod K``), and each subset is reconstructed by filtered back-projection
(:func:`lowdose.physics.radon.fbp_2d`). Photon noise is independent between views, so the K
images carry independent noise over the same object: the N2N pairs that a user with a single scan
lacks.

What the K images are: each uses 1/K of the views, so its noise variance is about K times that of
the full-view FBP, and its view-undersampling streaks differ between subsets (they count as noise
for the network). FBP is linear, so the mean of the K images is the full-view FBP (exactly when K
divides the number of views). At test time denoise every subset image and average the K outputs.

``clean`` (optional, for testing only) is the **full-view FBP of the noise-free sinogram** with the
same filter and size: the best any method can reach from these views, so PSNR against it measures
denoising, not the reconstruction's own blur.

Scaling: ``scaling_rule = dataset_max``, ``scaling_offset = 0``, raw units = the FBP's (line
integral per pixel); the divisor is the largest smoothed maximum of the full-view FBPs
(:func:`lowdose.data.scaling.estimate_clean_max`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary, split_write_and_summarise
from lowdose.data.scaling import estimate_clean_max
from lowdose.data.split_plan import plan_split
from lowdose.io.sinogram import parse_angles, read_array, read_sinogram_stack
from lowdose.physics.flat_field import log_normalise
from lowdose.physics.noise_estimation import pair_noise_variance
from lowdose.physics.radon import fbp_2d

CLEAN_REFERENCE = "full-view FBP of the noise-free sinogram (same filter and size)"


@dataclass(frozen=True)
class ViewSubsetNoise:
    """The views of each of the K subsets, and the noise variance of one subset image: the mean
    over images of ``Var(split_i - split_j) / 2`` on the dataset scale (its view-undersampling
    streaks included)."""

    views_per_split: tuple[int, ...]
    noise_variance: float


def view_subsets(n_angles: int, splits: int) -> list[np.ndarray]:
    """K disjoint interleaved view subsets: subset k holds views k, k + K, k + 2K, ..."""
    if isinstance(splits, bool) or not isinstance(splits, int | np.integer) or splits < 2:
        raise LowdoseInputError(f"splits={splits!r}: pass an integer >= 2")
    if n_angles < 2 * splits:
        raise LowdoseInputError(f"{n_angles} views cannot be split {splits} ways; use fewer")
    return [np.arange(k, n_angles, splits) for k in range(splits)]


def split_reconstructions(
    sinograms,
    angles_deg,
    *,
    splits: int = 2,
    output_size,
    filter_name: str = "ramp",
    backend: str = "builtin",
) -> np.ndarray:
    """FBP of each view subset of each sinogram.

    Parameters
    ----------
    sinograms : array_like (S, n_angles, n_det)
        Post-log line integrals.
    angles_deg : array_like (n_angles,)
    splits : int
        K >= 2.
    output_size : int or (H, W)
    filter_name : {"ramp", "hann"}
    backend : {"builtin", "astra"}
        Who back-projects (:data:`lowdose.physics.radon.FBP_BACKENDS`).

    Returns
    -------
    ndarray (S, K, H, W) float32
        In the FBP's units (line integral per pixel).
    """

    stack = np.asarray(sinograms, dtype=np.float32)
    angles = np.asarray(angles_deg, dtype=np.float64)
    subsets = view_subsets(stack.shape[1], splits)
    images = [
        fbp_2d(
            stack[:, views],
            angles[views],
            output_size=output_size,
            filter_name=filter_name,
            backend=backend,
        )
        for views in subsets
    ]  # each (S, H, W)
    return np.stack(images, axis=1)


def build_from_sinogram(
    sinogram_paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    angles_deg,
    splits: int = 2,
    filter_name: Literal["ramp", "hann"] = "ramp",
    output_size: int | None = None,
    dataset_key: str | None = None,
    flat=None,
    dark=None,
    clean_sinogram_paths: Sequence[str | os.PathLike] | None = None,
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_by: str = "auto",
    objects: Literal["file", "image"] = "file",
    progress: Progress | None = None,
) -> DatasetSummary[ViewSubsetNoise]:
    """Build an N2N dataset of K split-view reconstructions per slice from single scans.

    Parameters
    ----------
    sinogram_paths : sequence of path
        .npy / TIFF / HDF5 files, each (n_angles, n_det) or (slices, n_angles, n_det), all with
        the same views and detector. Post-log line integrals, or pre-log counts with ``flat``.
    out : path
        Dataset file (atomic).
    angles_deg : array_like, path or str
        See :func:`lowdose.io.sinogram.parse_angles` (e.g. ``"0:180"``).
    splits : int
        K disjoint view subsets (realisations), >= 2.
    filter_name : {"ramp", "hann"}
    output_size : int, optional
        Reconstructed side; default ``floor(n_det / sqrt(2))`` (the size :func:`radon_2d`
        projects onto ``n_det`` bins).
    dataset_key : str, optional
        HDF5 dataset holding the sinogram (and the flat/dark fields when they are HDF5).
    flat, dark : array_like or path, optional
        Open-beam and beam-off counts: the sinograms are then pre-log counts, normalised by
        :func:`lowdose.physics.flat_field.log_normalise`.
    clean_sinogram_paths : sequence of path, optional
        Noise-free post-log sinograms, one per input, for testing only: their full-view FBP is
        stored as ``clean`` (see the module docstring).
    fractions, seed
        Fractions of objects, slices or tiles for (train, val, test) or (train, test)
        (:mod:`lowdose.data.split_plan`), and the split's seed.
    split_by : {"auto", "patient", "volume", "slab", "region"}
        How to split (:func:`lowdose.data.split_plan.plan_split`); patient and volume are both
        the input file unless ``objects="image"``. (``"file"``/``"image"`` are read as
        ``objects``, their meaning before ``split_by`` took methods.)
    objects : {"file", "image"}
        The patients: each input file (a volume), or each slice.
    progress : Progress, optional
        ``progress("reconstructing", files_done, n_files)`` (:mod:`lowdose.core.progress`).

    Returns
    -------
    DatasetSummary[ViewSubsetNoise]
        ``n_realisations`` = K.
    """
    started = time.perf_counter()
    if split_by in ("file", "image"):  # the meaning of split_by before it named split methods
        objects, split_by = split_by, "auto"
    paths = [Path(p) for p in sinogram_paths]
    if not paths:
        raise LowdoseInputError("no sinogram files given; pass one or more .npy/.tif/.h5")
    if clean_sinogram_paths is not None and len(clean_sinogram_paths) != len(paths):
        raise LowdoseInputError(
            f"{len(clean_sinogram_paths)} clean sinograms for {len(paths)} inputs; pass one each"
        )
    fields = {
        name: read_array(v, dataset_key=dataset_key) if isinstance(v, str | os.PathLike) else v
        for name, v in (("flat", flat), ("dark", dark))
    }
    stacks = []
    for path in paths:
        sino = read_sinogram_stack(path, dataset_key=dataset_key)
        if fields["flat"] is not None:
            sino = log_normalise(sino, fields["flat"], fields["dark"])
        stacks.append((path, sino))
    clean = None
    if clean_sinogram_paths is not None:
        clean = [read_sinogram_stack(path) for path in clean_sinogram_paths]
    return build_from_line_integrals(
        stacks,
        out,
        angles_deg=angles_deg,
        splits=splits,
        filter_name=filter_name,
        output_size=output_size,
        clean_sinograms=clean,
        fractions=fractions,
        seed=seed,
        split_by=split_by,
        objects=objects,
        progress=progress,
        started=started,
    )


def build_from_line_integrals(
    stacks: Sequence[tuple[Path, np.ndarray]],
    out: str | os.PathLike,
    *,
    angles_deg,
    splits: int = 2,
    filter_name: Literal["ramp", "hann"] = "ramp",
    output_size: int | None = None,
    clean_sinograms: Sequence[np.ndarray] | None = None,
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_by: str = "auto",
    objects: Literal["file", "image"] = "file",
    progress: Progress | None = None,
    description: str = "lowdose dataset from-sinogram",
    extra: dict | None = None,
    started: float | None = None,
    backend: str = "builtin",
) -> DatasetSummary[ViewSubsetNoise]:
    """:func:`build_from_sinogram` on sinograms already read: ``(source, (S, n_angles, n_det))``
    post-log line integrals per input (``lowdose dataset from-projections`` passes corrected and
    centred instrument scans). ``description`` and ``extra`` (string/number attributes) go into
    the dataset's attributes; ``backend`` back-projects (``builtin`` or ``astra``, recorded as
    ``fbp_backend``); the other parameters are those of :func:`build_from_sinogram`."""
    started = time.perf_counter() if started is None else started
    extra = {**(extra or {}), "fbp_backend": backend}
    noisy, clean, object_id, volume_id, geometry = [], [], [], [], None
    paths = [Path(source) for source, _ in stacks]
    for number, (path, sino) in enumerate(stacks):
        geometry = geometry or _geometry(sino, angles_deg, output_size)
        if sino.shape[1:] != geometry[0]:
            raise LowdoseInputError(
                f"{path}: sinogram {sino.shape[1:]} differs from {paths[0]} {geometry[0]}; "
                "every input needs the same views and detector"
            )
        angles, size = geometry[1], geometry[2]
        noisy.append(
            split_reconstructions(
                sino,
                angles,
                splits=splits,
                output_size=size,
                filter_name=filter_name,
                backend=backend,
            )
        )
        if clean_sinograms is not None:
            clean.append(_full_view(clean_sinograms[number], geometry, filter_name, path, backend))
        object_id += [
            path.stem if objects == "file" else f"{path.stem}[{k}]" for k in range(len(sino))
        ]
        volume_id += [path.stem] * len(sino)
        if progress is not None:
            progress("reconstructing", number + 1, len(stacks))
    stack = np.concatenate(noisy)  # (I, K, H, W)
    plan = plan_split(
        object_id,
        image_shape=stack.shape[2:],
        rng=np.random.default_rng(seed),
        method=split_by,
        volume_id=volume_id,
        fractions=fractions,
    )
    inputs = (paths, geometry, splits, filter_name, description, extra or {})
    return _write(stack, clean, plan, out, inputs, seed, started)


def _geometry(sino: np.ndarray, angles_spec, output_size) -> tuple:
    angles = parse_angles(angles_spec, sino.shape[1])
    size = int(output_size) if output_size else int(sino.shape[2] / np.sqrt(2))
    if size < 8:
        raise LowdoseInputError(f"output size {size} px is too small; pass --size >= 8")
    return sino.shape[1:], angles, size


def _full_view(
    sino, geometry, filter_name: str, noisy_path: Path, backend: str = "builtin"
) -> np.ndarray:
    if sino.shape[1:] != geometry[0]:
        raise LowdoseInputError(
            f"the clean sinogram is {sino.shape[1:]} but {noisy_path} is {geometry[0]}"
        )
    return fbp_2d(
        sino, geometry[1], output_size=geometry[2], filter_name=filter_name, backend=backend
    )


def _write(stack, clean, plan, out, inputs, seed: int, started: float):
    paths, geometry, splits, filter_name, description, extra = inputs
    divisor = float(np.max(estimate_clean_max(stack.mean(axis=1))))
    if not divisor > 0:
        raise LowdoseInputError(f"{paths[0]}: reconstructions have no positive values to scale")
    clean_stack = np.concatenate(clean) / divisor if clean else None
    if clean_stack is not None and len(clean_stack) != len(stack):
        raise LowdoseInputError("clean sinograms hold a different number of slices than inputs")
    variance = float(np.mean([pair_noise_variance(image)[0] for image in stack])) / divisor**2
    views = tuple(len(v) for v in view_subsets(geometry[0][0], splits))
    attrs = DatasetAttrs(
        modality="ct",
        noise_model="measured",
        scaling_rule="dataset_max",
        noise_level=variance,
        scaling_offset=0.0,
        raw_units="fbp line integral per pixel",
        seed=seed,
        description=f"{description}: {splits} interleaved view subsets, FBP",
    ).with_extra(
        pair_noise_variance=variance,
        split_views=splits,
        views_per_split=",".join(map(str, views)),
        fbp_filter=filter_name,
        clean_reference=CLEAN_REFERENCE if clean_stack is not None else "none",
        inputs=" | ".join(str(p) for p in paths),
        **extra,
    )
    return split_write_and_summarise(
        out,
        plan=plan,
        clean=None if clean_stack is None else clean_stack.astype(np.float32),
        noisy=(stack / divisor).astype(np.float32),
        scale=np.full(len(stack), divisor, np.float32),
        attrs=attrs,
        started_s=started,
        details=ViewSubsetNoise(views, variance),
    )
