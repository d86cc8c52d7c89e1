"""The one "write and summarise" path of every dataset builder.

The builders (``simulate xray``, ``simulate ct``, ``dataset from-repeats``, ``dataset
from-sinogram``, ``dataset from-single``) write their file through :mod:`lowdose.data.writer`
(atomically, whole or block by block) and return a :class:`DatasetSummary` read back from what was
written, so every summary has the same fields with the same meaning, and the command line prints
them the same way (:meth:`DatasetSummary.describe`). Every builder records in ``attrs.extra`` how
it split (:meth:`lowdose.data.splits.SplitPlan.to_attrs`: ``split_by``, ``split_gap``, ...) and
the lag-1 correlation of its noise (:func:`lowdose.core.noise_correlation.
measure_noise_correlation` over at most :data:`NOISE_CORRELATION_IMAGES` images: cheap).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from lowdose.core.noise_correlation import NoiseCorrelation, measure_noise_correlation
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import read_info, read_scale
from lowdose.data.splits import SPLITS, SplitPlan
from lowdose.data.writer import DatasetWriter, dataset_writer, write_dataset

NOISE_CORRELATION_IMAGES = 16
Details = TypeVar("Details")


@dataclass(frozen=True)
class DatasetSummary(Generic[Details]):
    """What a dataset builder wrote, read back from the file, and what only the builder knows.

    Attributes
    ----------
    path : Path
        The dataset file.
    attrs : DatasetAttrs
        Its attributes as written (``achieved_psnr_db`` and ``n_realisations`` filled in).
    shape : (I, N, H, W)
        Images, realisations per image, image height and width of ``noisy``.
    split_counts : dict
        Images per split, ``{"train": n, "val": n, "test": n}`` (0 for an absent split).
    split_objects : dict
        Objects (phantoms, patients, volumes, files) per split, same keys.
    has_clean : bool
    divisor : float
        The largest stored ``scale`` (the dataset divisor for ``dataset_max``):
        ``scaled = (raw + attrs.scaling_offset) / divisor``.
    elapsed_s : float
        Wall time of the build in seconds.
    details : Details or None
        The builder's own typed record (e.g. :class:`lowdose.simulate.ct.CTDetails`), None when
        a builder has nothing beyond the attributes.
    skipped : tuple of (Path, str)
        Input files the reader skipped, with the reason.
    """

    path: Path
    attrs: DatasetAttrs
    shape: tuple[int, int, int, int]
    split_counts: dict[str, int]
    split_objects: dict[str, int]
    has_clean: bool
    divisor: float
    elapsed_s: float
    details: Details | None = None
    skipped: tuple = ()

    @property
    def n_images(self) -> int:
        return self.shape[0]

    @property
    def n_realisations(self) -> int:
        return self.shape[1]

    @property
    def shape_hw(self) -> tuple[int, int]:
        return self.shape[2], self.shape[3]

    @property
    def n_objects(self) -> int:
        return sum(self.split_objects.values())

    @property
    def noise_model(self) -> str:
        return self.attrs.noise_model

    @property
    def noise_level(self) -> float:
        return self.attrs.noise_level

    @property
    def target_psnr_db(self) -> float:
        return self.attrs.target_psnr_db

    @property
    def achieved_psnr_db(self) -> float:
        return self.attrs.achieved_psnr_db

    @property
    def split_note(self) -> str:
        """How the split was made, in one line (empty when the file does not say)."""
        return str(self.attrs.extra.get("split_note", ""))

    def describe(self) -> str:
        """For people: what was written, the split, the noise and the baseline; then one line
        on how the split was made and one on the noise's correlation (when the file says)."""
        height, width = self.shape_hw
        splits = ", ".join(
            f"{self.split_counts[s]} {s} ({self.split_objects[s]} objects)"
            for s in SPLITS
            if self.split_counts[s]
        )
        text = (
            f"wrote {self.path}: {self.n_images} images x {self.n_realisations} realisations, "
            f"{height}x{width}, {self.n_objects} objects; split {splits}; "
            f"noise {self.noise_model}"
        )
        if math.isfinite(self.noise_level):
            text += f" at level {self.noise_level:.4g}"
        if math.isfinite(self.achieved_psnr_db):
            text += f"; baseline {self.achieved_psnr_db:.2f} dB"
            if math.isfinite(self.target_psnr_db):
                text += f" (target {self.target_psnr_db:.2f})"
        lines = [text + f"; {self.elapsed_s:.0f} s"]
        if self.split_note:
            lines.append(self.split_note)
        correlation = NoiseCorrelation.from_attrs(self.attrs.extra)
        if correlation is not None and math.isfinite(correlation.max_abs):
            kind = "spatially correlated" if correlation.is_correlated else "pixel-independent"
            lines.append(
                f"noise lag-1 correlation {correlation.max_abs:.2f} ({kind}, {correlation.source})"
            )
        return "\n".join(lines)


def noise_correlation_attrs(noisy) -> dict[str, float | str | int]:
    """``noise_corr_*`` attributes of noisy images (I, N, H, W), from at most 16 of them."""
    return measure_noise_correlation(noisy, max_images=NOISE_CORRELATION_IMAGES).to_attrs()


def summarise_dataset(
    path: str | os.PathLike,
    *,
    started_s: float,
    details: Details | None = None,
    skipped: Sequence = (),
) -> DatasetSummary[Details]:
    """Read a just-written dataset file back into a :class:`DatasetSummary`.

    Parameters
    ----------
    path : path
        The dataset file.
    started_s : float
        ``time.perf_counter()`` when the build started.
    details : Details, optional
        The builder's own typed record.
    skipped : sequence of (Path, str)
        Input files the reader skipped.
    """
    info = read_info(path)
    split_counts = {s: int(np.sum(info.split == s)) for s in SPLITS}
    split_objects = {s: len(set(info.object_id[info.split == s].tolist())) for s in SPLITS}
    return DatasetSummary(
        path=Path(path),
        attrs=info.attrs,
        shape=info.shape,
        split_counts=split_counts,
        split_objects=split_objects,
        has_clean=info.has_clean,
        divisor=float(np.max(read_scale(path))),
        elapsed_s=time.perf_counter() - started_s,
        details=details,
        skipped=tuple(skipped),
    )


def write_and_summarise(
    path: str | os.PathLike,
    *,
    clean,
    noisy,
    object_id: Sequence,
    split: Sequence,
    scale,
    attrs: DatasetAttrs,
    started_s: float,
    details: Details | None = None,
    skipped: Sequence = (),
    tile_origin=None,
    fov=None,
) -> DatasetSummary[Details]:
    """:func:`lowdose.data.writer.write_dataset` then :func:`summarise_dataset` (same arguments)."""
    write_dataset(
        path,
        clean=clean,
        noisy=noisy,
        object_id=object_id,
        split=split,
        scale=scale,
        attrs=attrs,
        tile_origin=tile_origin,
        fov=fov,
    )
    return summarise_dataset(path, started_s=started_s, details=details, skipped=skipped)


def split_write_and_summarise(
    path: str | os.PathLike,
    *,
    plan: SplitPlan,
    clean,
    noisy,
    scale,
    attrs: DatasetAttrs,
    started_s: float,
    details: Details | None = None,
    skipped: Sequence = (),
    fov=None,
) -> DatasetSummary[Details]:
    """Split whole arrays by ``plan``, record the plan and the noise correlation, write, summarise.

    Parameters
    ----------
    plan : SplitPlan
        From :func:`lowdose.data.split_plan.plan_split` over the I input images.
    clean : ndarray (I, H, W) or None
    noisy : ndarray (I, N, H, W)
        The input images; the noise correlation is measured on them before any tiling.
    scale : array_like (I,)
    fov : ndarray (I, H, W) bool, optional
        Field-of-view masks, split like the images.
    attrs, started_s, details, skipped
        As in :func:`write_and_summarise`; ``attrs.extra`` gains the plan's (its one-line
        ``split_note`` too) and the noise correlation's attributes.
    """
    extra = {**plan.to_attrs(), **noise_correlation_attrs(noisy)}
    return write_and_summarise(
        path,
        clean=None if clean is None else plan.take(clean),
        noisy=plan.take(noisy),
        object_id=plan.object_id,
        split=plan.split,
        scale=plan.per_image(scale),
        attrs=attrs.with_extra(**extra),
        started_s=started_s,
        details=details,
        skipped=skipped,
        tile_origin=plan.tile_origin,
        fov=None if fov is None else plan.take(fov),
    )


class PlannedBlocks:
    """Writes input image blocks through a :class:`SplitPlan`; made by :func:`planned_writer`."""

    def __init__(self, writer: DatasetWriter, plan: SplitPlan):
        self._writer, self._plan, self._measured = writer, plan, False

    def write(self, first_source_row: int, *, noisy, clean=None) -> None:
        """Write input rows ``first_source_row ..`` (noisy (B, N, H, W), clean (B, H, W)) as the
        plan's output rows; the first block written also gives the noise correlation."""
        if not self._measured:
            self._writer.add_extra(**noise_correlation_attrs(noisy))
            self._measured = True
        plan = self._plan
        self._writer.write(
            plan.first_row(first_source_row),
            noisy=plan.take(noisy, first_source_row=first_source_row),
            clean=None if clean is None else plan.take(clean, first_source_row=first_source_row),
        )


@contextlib.contextmanager
def planned_writer(
    path: str | os.PathLike,
    plan: SplitPlan,
    *,
    scale,
    n_realisations: int,
    image_shape: tuple[int, int],
    has_clean: bool,
    attrs: DatasetAttrs,
) -> Iterator[PlannedBlocks]:
    """:func:`lowdose.data.writer.dataset_writer` for the I input images of ``plan`` (block by
    block, in input order); ``scale`` (I,) per input image; records the plan in ``attrs``."""
    with dataset_writer(
        path,
        object_id=plan.object_id,
        split=plan.split,
        scale=plan.per_image(scale),
        n_realisations=n_realisations,
        image_shape=plan.output_shape(image_shape),
        has_clean=has_clean,
        attrs=attrs.with_extra(**plan.to_attrs()),
        tile_origin=plan.tile_origin,
    ) as writer:
        yield PlannedBlocks(writer, plan)
