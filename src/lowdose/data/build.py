"""The one "write and summarise" path of every dataset builder.

The four builders (``simulate xray``, ``simulate ct``, ``dataset from-repeats``, ``dataset
from-sinogram``) write their file through :mod:`lowdose.data.writer` (atomically, whole or block by
block) and return a :class:`DatasetSummary` read back from what was written, so every summary
has the same fields with the same meaning, and the command line prints them the same way
(:meth:`DatasetSummary.describe`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import read_info, read_scale
from lowdose.data.splits import SPLITS
from lowdose.data.writer import write_dataset


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset builder wrote, read back from the file.

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
    details : Mapping
        Builder-specific measured values (each builder's docstring lists its keys).
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
    details: Mapping[str, Any] = field(default_factory=dict)
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

    def describe(self) -> str:
        """One paragraph for people: what was written, the split, the noise and the baseline."""
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
        return text + f"; {self.elapsed_s:.0f} s"


def summarise_dataset(
    path: str | os.PathLike,
    *,
    started_s: float,
    details: Mapping[str, Any] | None = None,
    skipped: Sequence = (),
) -> DatasetSummary:
    """Read a just-written dataset file back into a :class:`DatasetSummary`.

    Parameters
    ----------
    path : path
        The dataset file.
    started_s : float
        ``time.perf_counter()`` when the build started.
    details : mapping, optional
        Builder-specific measured values.
    skipped : sequence of (Path, str)
        Input files the reader skipped.
    """
    info = read_info(path)
    split_counts = {s: int(np.sum(info.split == s)) for s in SPLITS}
    split_objects = {s: len(set(info.object_id[info.split == s].tolist())) for s in SPLITS}
    return DatasetSummary(
        path=Path(path), attrs=info.attrs, shape=info.shape, split_counts=split_counts,
        split_objects=split_objects, has_clean=info.has_clean,
        divisor=float(np.max(read_scale(path))), elapsed_s=time.perf_counter() - started_s,
        details=dict(details or {}), skipped=tuple(skipped),
    )  # fmt: skip


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
    details: Mapping[str, Any] | None = None,
    skipped: Sequence = (),
) -> DatasetSummary:
    """:func:`lowdose.data.writer.write_dataset` then :func:`summarise_dataset` (same arguments)."""
    write_dataset(path, clean=clean, noisy=noisy, object_id=object_id, split=split, scale=scale,
                  attrs=attrs)  # fmt: skip
    return summarise_dataset(path, started_s=started_s, details=details, skipped=skipped)
