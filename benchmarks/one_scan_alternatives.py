"""The one-scan options ``fit`` does NOT use, measured: R2R fine-tuning and single-scan SURE.

``r2r``: fine-tune ``builtin:ct-sinogram`` on one noisy scan (realisation 0 of the test split)
by recorrupted pairs (Pang et al., CVPR 2021): input ``y + alpha n'``, target ``y - n' / alpha``
with ``n'`` drawn from a noise spectrum; Adam, one-cycle schedule, batch 16 of 64^2 patches,
8 rotations. ``--psd single`` uses each slice's own spectrum
(:func:`lowdose.physics.single_image_noise.ct_noise_psd`, clean-free); ``--psd oracle`` the
periodogram of ``noisy - clean`` (a DIAGNOSTIC: it reads the clean image, so it shows what R2R
could do with a perfect stationary spectrum, never a method).

``sure``: Monte-Carlo SURE for correlated Gaussian noise with the single-scan spectrum
(``|f(y) - y|^2 - tr(S) + 2 tr(S J)``, the divergence by one probe ``b ~ N(0, S)`` at step
``eps = 0.1``) against the true MSE (clean) of noisy / builtin / builtin-tta8 / single-psd BM3D.

Scores: PSNR in the -1000..1000 HU window against the noise-free FBP, mean over slices. Run::

    .venv/bin/python benchmarks/one_scan_alternatives.py r2r runs/data/quarter.h5 --psd single
    .venv/bin/python benchmarks/one_scan_alternatives.py sure runs/data/quarter.h5
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from lowdose.baselines.filters import denoise_bm3d
from lowdose.core.metrics import psnr_hu_window
from lowdose.data.dataset import load_split
from lowdose.inference.predict import predict
from lowdose.models.checkpoint import load_model
from lowdose.physics.single_image_noise import ct_noise_psd

PATCH, BATCH = 64, 16


def scan(path):
    """Realisation 0 of the test split (dataset scale), clean, and the HU conversion."""
    split = load_split(path, "test")
    noisy = np.asarray(split.noisy[:, 0], np.float32)
    scale = np.asarray(split.scale, np.float64)[:, None, None]
    offset = split.attrs.scaling_offset
    return noisy, np.asarray(split.clean, np.float64), scale, offset


def spectra(noisy, clean, scale, offset, kind: str) -> np.ndarray:
    """(I, H, W) noise spectra on the dataset scale: each slice's own, or the oracle's."""
    if kind == "oracle":  # DIAGNOSTIC ONLY: the true noise's periodogram, smoothed
        from scipy import ndimage

        power = np.abs(np.fft.fft2(noisy - clean)) ** 2
        return np.stack([ndimage.uniform_filter(p, 9, mode="wrap") for p in power])
    hu = noisy * scale - offset
    return np.stack([ct_noise_psd(im, h) for im, h in zip(noisy, hu, strict=True)])


def hu_psnr(clean, estimate, scale, offset) -> float:
    return float(np.mean(psnr_hu_window(clean * scale - offset, estimate * scale - offset)))


def r2r(args) -> None:
    noisy, clean, scale, offset = scan(args.data)
    psd = spectra(noisy, clean, scale, offset, args.psd)
    n, height, width = noisy.shape
    amplitude = torch.from_numpy(np.sqrt(psd / (height * width))).float()
    model, _ = load_model("builtin:ct-sinogram")
    print(
        f"noisy {hu_psnr(clean, noisy, scale, offset):.2f}  builtin "
        f"{hu_psnr(clean, predict(model, noisy), scale, offset):.2f}"
    )
    net = copy.deepcopy(model).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=args.lr, total_steps=args.steps, pct_start=0.05
    )
    images, generator = torch.from_numpy(noisy), torch.Generator().manual_seed(args.seed)
    for _ in range(args.steps):
        index = torch.randint(0, n, (BATCH,), generator=generator)
        white = torch.randn(BATCH, height, width, generator=generator)
        noise = torch.fft.ifft2(torch.fft.fft2(white) * amplitude[index]).real
        rows = torch.randint(0, height - PATCH + 1, (BATCH,), generator=generator)
        cols = torch.randint(0, width - PATCH + 1, (BATCH,), generator=generator)
        y = torch.stack(
            [
                images[i, r : r + PATCH, c : c + PATCH]
                for i, r, c in zip(index, rows, cols, strict=True)
            ]
        )
        extra = torch.stack(
            [
                noise[k, r : r + PATCH, c : c + PATCH]
                for k, (r, c) in enumerate(zip(rows, cols, strict=True))
            ]
        )
        turns = int(torch.randint(0, 4, (1,), generator=generator))
        y, extra = torch.rot90(y, turns, (1, 2)), torch.rot90(extra, turns, (1, 2))
        source, target = (y + args.alpha * extra)[:, None], (y - extra / args.alpha)[:, None]
        loss = torch.mean((net(source) - target) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    net.eval()
    print(
        f"r2r ({args.psd} spectrum, alpha {args.alpha}, {args.steps} steps, lr {args.lr:g}): "
        f"{hu_psnr(clean, predict(net, noisy), scale, offset):.2f}"
    )


def sure(args) -> None:
    noisy, clean, scale, offset = scan(args.data)
    psd = spectra(noisy, clean, scale, offset, "single")
    n, height, width = noisy.shape
    amplitude = np.sqrt(psd / (height * width))
    rng = np.random.default_rng(args.seed)
    probe = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(noisy.shape)) * amplitude))
    model, _ = load_model("builtin:ct-sinogram")
    methods = {
        "noisy": lambda a: a,
        "builtin": lambda a: predict(model, a.astype(np.float32)),
        "builtin-tta8": lambda a: predict(model, a.astype(np.float32), tta=8),
        "bm3d-psd": lambda a: np.stack(
            [denoise_bm3d(im, psd=p) for im, p in zip(a, psd, strict=True)]
        ),
    }
    eps = 0.1
    for name, method in methods.items():
        out = np.asarray(method(noisy), np.float64)
        moved = np.asarray(method((noisy + eps * probe).astype(np.float32)), np.float64)
        divergence = (probe * (moved - out)).mean(axis=(1, 2)) / eps
        risk = ((out - noisy) ** 2).mean(axis=(1, 2)) - psd.mean(axis=(1, 2)) / (height * width)
        risk += 2 * divergence
        true = ((out - clean) ** 2).mean(axis=(1, 2))
        estimate_db = np.mean(-10 * np.log10(np.maximum(risk, 1e-12)))
        print(
            f"{name:13s} true {np.mean(-10 * np.log10(true)):6.2f} dB  SURE "
            f"{estimate_db:6.2f} dB (data_range 1)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=("r2r", "sure"))
    parser.add_argument("data")
    parser.add_argument("--psd", choices=("single", "oracle"), default="single")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    (r2r if args.study == "r2r" else sure)(args)


if __name__ == "__main__":
    main()
