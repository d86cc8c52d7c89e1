"""Split-projection Noise2Noise (Noise2Inverse-style) against oracle filters on real CT slices.

Sinograms are made from the shared TCGA-LUAD slices (downsampled to SIZE^2, HU -> attenuation per
pixel), with Poisson noise at I0 photons per detector bin
(lowdose.physics.noise.add_poisson_post_log). Each slice is one scan: `build_from_sinogram` splits
its views into 2 interleaved halves and
reconstructs each by FBP. A width-16 U-Net is trained Noise2Noise across the halves (no clean
image used); at test time both halves are denoised and averaged. Reference: full-view FBP of the
noise-free sinogram. Filters get the full-view noisy FBP (the best image the scan offers, with half
the noise variance of one half) and are tuned per image against the clean reference (oracle).

    .venv/bin/python benchmarks/split_sinogram.py --size 128 --steps 1200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared/data/ct/tcga-luad"
MU_WATER_PER_MM = 0.0195


def make_scans(folder: Path, *, size: int, n_views: int, i0: float, seed: int, limit=None):
    """Write one noisy and one clean sinogram .npy per patient; return (noisy, clean, angles)."""
    from lowdose.io.images import read_ct
    from lowdose.physics.noise import add_poisson_post_log
    from lowdose.physics.radon import radon_2d

    stack = read_ct(SHARED)
    factor = stack.hu.shape[-1] // size
    hu = stack.hu.reshape(len(stack.hu), size, factor, size, factor).mean(axis=(2, 4))
    voxel_mm = float(stack.slices[0].pixel_spacing_mm[0]) * factor
    mu = np.clip(hu + 1024.0, 0, None) / 1024.0 * MU_WATER_PER_MM * voxel_mm  # 1/pixel
    angles = np.arange(n_views) * (180.0 / n_views)
    rng = np.random.default_rng(seed)
    patients = sorted({info.patient_id for info in stack.slices})[:limit]
    noisy_paths, clean_paths = [], []
    for patient in patients:
        rows = [i for i, info in enumerate(stack.slices) if info.patient_id == patient]
        clean = np.maximum(radon_2d(mu[rows], angles), 0)  # (S, A, D), clip projector round-off
        noisy = add_poisson_post_log(clean, i0, rng=rng)
        noisy_paths.append(folder / f"{patient}.npy")
        clean_paths.append(folder / f"{patient}_clean.npy")
        np.save(noisy_paths[-1], noisy)
        np.save(clean_paths[-1], clean)
    return noisy_paths, clean_paths, angles


def split_average(model, noisy_k: np.ndarray) -> np.ndarray:
    """Denoise each view-subset image (B, K, H, W) and average the K outputs -> (B, H, W)."""
    from lowdose.inference.predict import predict

    outputs = [predict(model, noisy_k[:, k], channels_last=False) for k in range(noisy_k.shape[1])]
    return np.mean(outputs, axis=0)


def compare(data: Path, checkpoint: Path, *, filters=("gaussian", "median", "bilateral")) -> dict:
    """Mean PSNR (dB, data_range 1) on the test split: noisy halves, full FBP, filters, model."""
    from lowdose.baselines.tuning import tune_oracle
    from lowdose.data.dataset import load_split
    from lowdose.models.checkpoint import load_model

    test = load_split(data, "test")
    full = test.noisy.mean(axis=1)  # full-view FBP by linearity of FBP
    model, _meta = load_model(checkpoint)
    rows = {
        "noisy half (one subset FBP)": _mean_psnr(test.clean, test.noisy[:, 0]),
        "noisy full-view FBP": _mean_psnr(test.clean, full),
    }
    for name in filters:
        result = tune_oracle(full, test.clean, name)
        rows[f"{name} (oracle, on full-view FBP)"] = float(np.mean(result.best_psnr_db))
    denoised = split_average(model, test.noisy)
    rows["U-Net w16 split-N2N (average of halves)"] = _mean_psnr(test.clean, denoised)
    return rows


def _mean_psnr(clean: np.ndarray, images: np.ndarray) -> float:
    from lowdose.core.metrics import psnr

    return float(np.mean(psnr(clean, images, data_range=1.0)))


def main() -> None:
    from lowdose.owndata.split_sinogram import build_from_sinogram
    from lowdose.training.config import TrainConfig
    from lowdose.training.run import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--views", type=int, default=180)
    parser.add_argument("--i0", type=float, default=1e4)
    parser.add_argument(
        "--steps", type=int, default=1200, help="optimiser steps (batch 16), epochs of 300"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="split_sino_"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    noisy, clean, angles = make_scans(work, size=args.size, n_views=args.views, i0=args.i0, seed=0)
    summary = build_from_sinogram(
        noisy,
        work / "split.h5",
        angles_deg=angles,
        splits=2,
        output_size=args.size,
        clean_sinogram_paths=clean,
        seed=0,
    )
    built = time.perf_counter() - start
    config = TrainConfig(
        data=summary.path,
        out=work / "run",
        mode="n2n",
        width=16,
        residual=True,
        patch=64,
        batch_size=16,
        epochs=max(1, args.steps // 300),
        samples_per_epoch=16 * 300,
        lr=1e-3,
        threads=args.threads,
        quiet=True,
        accelerator="cpu",
    )
    result = train(config)
    trained = time.perf_counter() - start - built
    rows = compare(summary.path, result.best_checkpoint)
    print(
        f"{summary.n_images} slices {args.size}^2, {args.views} views, I0 {args.i0:g}, "
        f"{summary.split_counts}; build {built:.0f} s, train {trained:.0f} s "
        f"({result.global_step} steps)"
    )
    print("| method | mean PSNR (dB) vs full-view FBP of the noise-free sinogram |")
    print("|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
