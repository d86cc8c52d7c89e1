"""Denoising in the projection domain: one scan's sinograms as single-acquisition training data.

Raw projections carry photon noise that is independent from pixel to pixel and from frame to
frame; after flat/dark correction and ``-log`` it still is (its variance now depends on the
counts). So one scan is enough for the single-acquisition modes (Neighbor2Neighbor, Noise2Void)
trained on the sinograms themselves, and the denoised sinograms are then reconstructed.

Each sinogram is kept as its two interleaved view halves (even views, odd views), denoised
separately: an output view then depends only on the noise of views of its own half, so the
reconstruction of one half stays independent of the other half's noise, and the other half's
noisy reconstruction scores it clean-free (``lowdose fit --domain projections``,
:mod:`lowdose.evaluation.projection_compare`).

:func:`build_from_projection_halves` writes the training data: ``noisy`` (2 S, 1, A', D), the
half sinograms of every detector row (``A' = n_angles // 2`` views each; the odd last view of an
odd count is left out of the file, not of the outputs), as line integrals over the largest
smoothed value, split by :func:`lowdose.data.split_plan.plan_split` (a scan's rows into slabs, a
single sinogram into tiles). ``test_rows`` (``"scan:row,..."``, or ``"none"`` when tiles were
cut) names the detector rows whose two halves are both in the test split: those the comparison
can score as never trained on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, Progress
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary, split_write_and_summarise
from lowdose.data.split_plan import plan_split
from lowdose.owndata.projection_scan import prepare_scans
from lowdose.owndata.repeats import dataset_divisor

PROJECTION_DOMAIN = "projection halves"
"""The dataset attribute ``projection_domain`` of these files: what an image is."""


@dataclass(frozen=True)
class ProjectionHalves:
    """What the build made: views per half, the scans' rotation centres and their notes."""

    views_per_half: int
    centres_px: tuple[float, ...]
    notes: tuple[str, ...]


def view_halves(sinograms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(even, odd)``: views 0, 2, 4, ... and 1, 3, 5, ... of ``(S, n_angles, n_det)``."""
    array = np.asarray(sinograms)
    if array.ndim != 3 or array.shape[1] < 4:
        raise LowdoseInputError(
            f"sinograms {array.shape}: need (rows, >= 4 angles, detector) for two view halves"
        )
    return array[:, 0::2], array[:, 1::2]


def interleave_halves(even: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """The inverse of :func:`view_halves`: ``(S, n_angles, n_det)`` from its two halves."""
    n_angles = even.shape[1] + odd.shape[1]
    out = np.empty((even.shape[0], n_angles, even.shape[2]), dtype=np.result_type(even, odd))
    out[:, 0::2], out[:, 1::2] = even, odd
    return out


def build_from_projection_halves(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    angles=None,
    center: float | None = None,
    flat=None,
    dark=None,
    dataset_key: str | None = None,
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_by: str = "auto",
    progress: Progress | None = None,
    log: Log | None = None,
    backend: str = "builtin",
) -> DatasetSummary[ProjectionHalves]:
    """Build the projection-domain training data of instrument scans (module docstring).

    Parameters
    ----------
    paths : sequence of path
        Scans (Data Exchange ``.h5``, TIFF-stack folders with flats/darks, sinogram files) of one
        geometry.
    out : path
        Dataset file (atomic).
    angles, center, flat, dark, dataset_key
        See :func:`lowdose.owndata.projection_scan.prepare_scan`.
    fractions, seed, split_by
        See :func:`lowdose.data.split_plan.plan_split`.
    progress, log
        Progress per scan read; each scan's notes (what was found and done).
    backend : {"builtin", "astra"}
        Checked here (training needs no FBP); the denoised projections are reconstructed by it.
    """
    started = time.perf_counter()
    scans = prepare_scans(
        paths,
        angles=angles,
        center=center,
        flat=flat,
        dark=dark,
        dataset_key=dataset_key,
        progress=progress,
        log=log,
        backend=backend,
    )
    for scan in scans[1:]:  # same angles (checked there); the detector must match too
        if scan.sinograms.shape[1:] != scans[0].sinograms.shape[1:]:
            raise LowdoseInputError(
                f"{scan.source}: sinograms {scan.sinograms.shape[1:]} differ from "
                f"{scans[0].source} {scans[0].sinograms.shape[1:]}; one geometry per dataset"
            )
    images, object_id, rows = [], [], []
    for number, scan in enumerate(scans):
        even, odd = view_halves(scan.sinograms)
        n_views = odd.shape[1]  # the even half has one more view when the count is odd
        # rows in order, each row's two halves side by side: a slab split keeps rows together
        pairs = np.stack([even[:, :n_views], odd], axis=1)  # (S, 2, A', D)
        images.append(pairs.reshape(-1, n_views, pairs.shape[-1]))
        object_id += [scan.source.stem] * len(pairs) * 2
        rows += [f"{number}:{row}" for row in range(len(pairs)) for _ in range(2)]
    raw = np.concatenate(images)[:, None].astype(np.float32)  # (2 S, 1, A', D)
    divisor = dataset_divisor(raw)
    stack = (raw / divisor).astype(np.float32)
    plan = plan_split(
        object_id,
        image_shape=stack.shape[2:],
        rng=np.random.default_rng(seed),
        method=split_by,
        fractions=fractions,
    )
    notes = tuple("; ".join(scan.notes) for scan in scans)
    # detector rows whose both halves are wholly in the test split (none when tiles were cut)
    test = [] if plan.tile_origin is not None else plan.source_index[plan.split == "test"]
    held_out = sorted(
        {rows[i] for i in test} - {rows[i] for i in plan.source_index[plan.split != "test"]},
        key=lambda r: tuple(map(int, r.split(":"))),
    )
    attrs = DatasetAttrs(
        modality="xray",
        noise_model="measured",
        scaling_rule="dataset_max",
        scaling_offset=0.0,
        raw_units="line integral",
        seed=seed,
        description="lowdose fit --domain projections: view halves of each sinogram",
    ).with_extra(
        projection_domain=PROJECTION_DOMAIN,
        views_per_half=int(stack.shape[2]),
        test_rows=",".join(held_out) or "none",
        rotation_centre_px=",".join(f"{scan.centre_px:.2f}" for scan in scans),
        inputs=" | ".join(str(scan.source) for scan in scans),
        preparation=" | ".join(notes)[:4000],
    )
    details = ProjectionHalves(int(stack.shape[2]), tuple(float(s.centre_px) for s in scans), notes)
    return split_write_and_summarise(
        out,
        plan=plan,
        clean=None,
        noisy=stack,
        scale=np.full(len(stack), divisor, np.float32),
        attrs=attrs,
        started_s=started,
        details=details,
    )
