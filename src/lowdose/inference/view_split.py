"""Noise2Inverse output for projection inputs: the network's mean over the reconstructed halves.

A network trained on pairs of reconstructions from the two interleaved view halves of a scan
(:mod:`lowdose.owndata.split_sinogram`) denoises each half; the estimate is the mean of the two
outputs (Hendriksen et al., Noise2Inverse, 2020). The scan is read, flat/dark corrected and
centred exactly as its dataset was (:func:`lowdose.owndata.projection_scan.prepare_scan`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowdose.core.atomic import atomic_path, atomic_write_bytes
from lowdose.core.devices import resolve_device
from lowdose.inference.predict import denoise
from lowdose.models.checkpoint import load_model
from lowdose.owndata.projection_scan import PreparedScan, ScanReading
from lowdose.owndata.split_sinogram import split_reconstructions
from lowdose.physics.radon import fbp_2d


def denoise_sinograms(
    paths: Sequence[Path],
    folder: Path,
    checkpoint: str | os.PathLike,
    *,
    reading: ScanReading = ScanReading(),
    device: str = "auto",
) -> list[Path]:
    """Reconstruct and denoise each scan; write ``<stem>_denoised.npy``, ``.tif`` and ``.h5``.

    Each holds (S, H, W) float32 slices on the dataset's reconstruction scale (FBP line integral
    per pixel), ``H = W = int(n_detectors / sqrt 2)`` (the dataset builder's size), one slice
    per detector row. The ``.h5`` file holds ``denoised`` and ``fbp`` (the noisy full-view FBP,
    ramp filter, for comparison) with the centre and angles as attributes; the ``.tif`` is a
    float32 stack (Fiji, napari).

    Parameters
    ----------
    paths : sequence of Path
        Scans: Data Exchange ``.h5``, TIFF-stack folders with flats/darks, sinogram files.
    folder : Path
        Output folder (created).
    checkpoint : str or PathLike
        The Noise2Inverse model.
    reading : ScanReading
        How the scans are read and reconstructed: the dataset's own.
    device : str
        ``auto`` (a GPU when torch sees one: the one training used), ``cpu``, ``cuda:N``.
    """
    model, meta = load_model(checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    written = []
    for path in paths:
        scan = reading.prepare(path)
        size = reconstruction_size(scan)
        halves = split_reconstructions(
            scan.sinograms, scan.angles_deg, splits=2, output_size=size, backend=scan.backend
        )
        outputs = [
            denoise(model, halves[:, k], scaling=meta.scaling, device=device)
            for k in range(halves.shape[1])
        ]
        denoised = np.mean(outputs, axis=0)  # (S, H, W)
        written += write_reconstructions(folder, Path(path), denoised, scan)
    return written


def reconstruction_size(scan: PreparedScan) -> int:
    """Side of the reconstructed slices, pixels: ``int(n_det / sqrt 2)``, the datasets' size."""
    return int(scan.sinograms.shape[2] / np.sqrt(2))


def write_reconstructions(
    folder: Path, source: Path, denoised: np.ndarray, scan: PreparedScan, *, domain: str = ""
) -> list[Path]:
    """Write ``<stem>_denoised.npy``, ``.tif`` and ``.h5`` (with the scan's own ramp FBP).

    ``denoised`` is (S, H, W) on the FBP's scale; ``domain`` (one line, optional) goes into the
    ``.h5`` attributes. Returns the three paths.
    """
    denoised = np.asarray(denoised, dtype=np.float32)
    stem = source.stem if source.is_file() else source.name
    buffer = io.BytesIO()
    np.save(buffer, denoised)
    atomic_write_bytes(folder / f"{stem}_denoised.npy", buffer.getvalue())
    fbp = fbp_2d(
        scan.sinograms,
        scan.angles_deg,
        output_size=denoised.shape[-1],
        filter_name="ramp",
        backend=scan.backend,
    ).astype(np.float32)
    return [
        folder / f"{stem}_denoised.npy",
        write_float_tiff(folder / f"{stem}_denoised.tif", denoised),
        _write_hdf5(folder / f"{stem}_denoised.h5", denoised, fbp, scan, domain),
    ]


def write_float_tiff(target: Path, stack: np.ndarray) -> Path:
    """Write an (S, H, W) float32 stack as one multi-page TIFF, atomically (Fiji, napari)."""
    import tifffile

    with atomic_path(target) as tmp:
        tifffile.imwrite(tmp, stack, photometric="minisblack")
    return target


def _write_hdf5(target: Path, denoised: np.ndarray, fbp: np.ndarray, scan, domain: str) -> Path:
    import h5py

    with atomic_path(target) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("denoised", data=denoised, compression="gzip")
        handle.create_dataset("fbp", data=fbp, compression="gzip")
        handle.attrs["units"] = "FBP line integral per pixel"
        if domain:
            handle.attrs["domain"] = domain
        handle.attrs["rotation_centre_px"] = scan.centre_px
        handle.attrs["angles_deg"] = scan.angles_deg
        handle.attrs["source"] = str(scan.source)
        handle.attrs["preparation"] = "; ".join(scan.notes)
    return target
