"""Projection-domain output: each scan's sinograms denoised by view half, then reconstructed.

A network trained on the view halves of the scan's sinograms
(:mod:`lowdose.owndata.projection_domain`, Neighbor2Neighbor or Noise2Void) denoises the even
and the odd views of every sinogram separately, so each output view depends only on noise of its
own half; the halves are interleaved back and the whole sinogram is reconstructed by FBP (ramp
filter, ``int(n_det / sqrt 2)`` pixels square, the size of the reconstruction route's outputs).
The scan is read, flat/dark corrected and centred as its dataset was
(:func:`lowdose.owndata.projection_scan.prepare_scan`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch.nn as nn

from lowdose.core.atomic import atomic_path
from lowdose.core.devices import resolve_device
from lowdose.data.scaling import NetworkScaling
from lowdose.inference.predict import denoise
from lowdose.inference.view_split import reconstruction_size, write_reconstructions
from lowdose.models.checkpoint import load_model
from lowdose.owndata.projection_domain import interleave_halves, view_halves
from lowdose.owndata.projection_scan import PreparedScan, ScanReading
from lowdose.physics.radon import fbp_2d

DOMAIN = "projections denoised by view half, then FBP (ramp)"


def denoise_view_halves(
    model: nn.Module, sinograms: np.ndarray, *, scaling: NetworkScaling, device: str = "cpu"
) -> np.ndarray:
    """Denoise the even and the odd views of each sinogram separately; interleave them back.

    Parameters
    ----------
    model : torch.nn.Module
        Trained on view halves (its ``scaling`` from the checkpoint's meta).
    sinograms : ndarray (S, n_angles, n_det)
        Line integrals.

    Returns
    -------
    ndarray (S, n_angles, n_det) float32
        Denoised line integrals.
    """
    even, odd = view_halves(sinograms)
    outputs = [denoise(model, half, scaling=scaling, device=device) for half in (even, odd)]
    return interleave_halves(*outputs).astype(np.float32)


def denoise_projection_scans(
    paths: Sequence[Path],
    folder: Path,
    checkpoint: str | os.PathLike,
    *,
    reading: ScanReading = ScanReading(),
    device: str = "auto",
) -> list[Path]:
    """Denoise each scan's projections and reconstruct them (see the module docstring).

    Writes per scan ``<stem>_projections_denoised.h5`` (Data Exchange layout:
    ``/exchange/data`` (angles, rows, columns) float32 denoised line integrals, centred on the
    FBP's axis, ``/exchange/theta`` in degrees) and the reconstructions ``<stem>_denoised.npy``
    and ``.tif`` ((S, H, W) float32, FBP line integral per pixel) and ``.h5`` (``denoised`` and
    ``fbp``, the noisy scan's own FBP, with the centre and angles as attributes).

    Parameters
    ----------
    paths : sequence of Path
        Scans: Data Exchange ``.h5``, TIFF-stack folders with flats/darks, sinogram files.
    folder : Path
        Output folder (created).
    checkpoint : str or PathLike
        The model trained on view halves.
    reading : ScanReading
        How the scans are read and reconstructed: the dataset's own.
    device : str
        ``auto``, ``cpu``, ``cuda:N``.
    """
    model, meta = load_model(checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    written = []
    for path in paths:
        scan = reading.prepare(path)
        denoised_sinograms = denoise_view_halves(
            model, scan.sinograms, scaling=meta.scaling, device=device
        )
        denoised = fbp_2d(
            denoised_sinograms,
            scan.angles_deg,
            output_size=reconstruction_size(scan),
            filter_name="ramp",
            backend=scan.backend,
        )
        stem = Path(path).stem if Path(path).is_file() else Path(path).name
        target = folder / f"{stem}_projections_denoised.h5"
        written.append(_write_projections(target, denoised_sinograms, scan))
        written += write_reconstructions(folder, Path(path), denoised, scan, domain=DOMAIN)
    return written


def _write_projections(target: Path, sinograms: np.ndarray, scan: PreparedScan) -> Path:
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as handle:
        data = np.ascontiguousarray(np.transpose(sinograms, (1, 0, 2)))  # (angles, rows, det)
        handle.create_dataset("exchange/data", data=data, compression="gzip")
        handle.create_dataset("exchange/theta", data=scan.angles_deg)
        handle["exchange/data"].attrs["units"] = "line integral (denoised, -log of flat-field)"
        handle["exchange/theta"].attrs["units"] = "degrees"
        handle.attrs["rotation_centre_px"] = scan.centre_px
        handle.attrs["centred"] = "the rotation axis is on detector bin n_det // 2"
        handle.attrs["source"] = str(scan.source)
        handle.attrs["preparation"] = "; ".join(scan.notes)
    return target
