"""Noise2Inverse output for sinogram inputs: the network's mean over the reconstructed view halves.

A network trained on pairs of reconstructions from the two interleaved view halves of a sinogram
(:mod:`lowdose.owndata.split_sinogram`) denoises each half; the estimate is the mean of the two
outputs (Hendriksen et al., Noise2Inverse, 2020).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_write_bytes
from lowdose.core.devices import resolve_device
from lowdose.inference.predict import denoise
from lowdose.io.sinogram import parse_angles, read_sinogram_stack
from lowdose.models.checkpoint import load_model
from lowdose.owndata.split_sinogram import split_reconstructions


def denoise_sinograms(
    paths: Sequence[Path],
    folder: Path,
    checkpoint: str | os.PathLike,
    *,
    angles: str | None,
    dataset_key: str | None = None,
    device: str = "auto",
) -> list[Path]:
    """Write ``folder/<stem>_denoised.npy`` per sinogram: (S, H, W) float32 on the dataset's
    reconstruction scale, ``H = W = int(n_detectors / sqrt 2)`` (the dataset builder's size).

    Parameters
    ----------
    paths : sequence of Path
        Sinogram files (``.npy``, ``.tif``, ``.h5``, ``.mat``): (S, n_views, n_detectors).
    folder : Path
        Output folder (created).
    checkpoint : str or PathLike
        The Noise2Inverse model.
    angles : str, optional
        ``START:STOP[:N]`` in degrees, or a file (:func:`lowdose.io.sinogram.parse_angles`).
    dataset_key : str, optional
        The HDF5/.mat dataset holding the sinogram.
    device : str
        ``auto`` (a GPU when torch sees one: the one training used), ``cpu``, ``cuda:N``.
    """
    model, meta = load_model(checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    written = []
    for path in paths:
        sinograms = read_sinogram_stack(path, dataset_key=dataset_key)  # (S, views, detectors)
        views = parse_angles(angles, sinograms.shape[1])
        size = int(sinograms.shape[2] / np.sqrt(2))
        halves = split_reconstructions(sinograms, views, splits=2, output_size=size)  # (S,2,H,W)
        outputs = [
            denoise(model, halves[:, k], scaling=meta.scaling, device=device)
            for k in range(halves.shape[1])
        ]
        buffer = io.BytesIO()
        np.save(buffer, np.mean(outputs, axis=0).astype(np.float32))
        target = folder / f"{path.stem}_denoised.npy"
        atomic_write_bytes(target, buffer.getvalue())
        written.append(target)
    return written
