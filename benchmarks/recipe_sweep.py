"""The recipe sweep: width, learning rate and EMA per CPU-second, on a fixed step count.

A stand-alone Noise2Noise loop (the lowdose U-Net, residual, patches of 64^2, batch 16, both
directions of every pair, the 8 dihedral transforms, a fresh random window for every sample,
Adam, 2 % warm-up then cosine to 1 % of the peak rate; optional EMA of the weights with a
10-step warm-up), outside Lightning so that only the recipe varies. It reads the training split
without clean images; prints the clean-free validation uPSNR (raw and EMA weights) ``--evals``
times, and at the end the test PSNR of the final (EMA, if any) weights against the clean images:
data_range 1 on the dataset scale and in the -1000..1000 HU window (CT files scaled as
``(HU + 1024) / scale``). One thread by default, so two settings can run side by side; the step
count, not the wall time, is the budget (convert with the idle training-loop speed). Writes
``OUT/TAG.json`` and ``OUT/TAG.pt``. The numbers in docs/results.md ("CPU-budgeted recipe,
measured per CPU-second") came from::

    python benchmarks/recipe_sweep.py --data runs/all/ct24/data/ct-*.h5 --tag w16-lr4e3-ema \
        --lr 4e-3 --ema 0.995 --evals 6            # also --lr 1e-3/2e-3/3e-4, --width 32 ...
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from lowdose.core.metrics import psnr, psnr_hu_window, upsnr_from_umse
from lowdose.data.dataset import load_split
from lowdose.models.unet import UNet
from lowdose.training.windows import dihedral


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset file (two realisations)")
    parser.add_argument("--tag", required=True, help="name of this setting's outputs")
    parser.add_argument("--out", type=Path, default=Path("runs/recipe-sweep"))
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1344)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.0, help="EMA decay; 0: none")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--final", type=float, default=0.01, help="final lr / peak lr")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evals", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def rate(step: int, args) -> float:
    """2 % linear warm-up, then cosine from ``lr`` to ``lr * final`` at the last step."""
    warm = max(1, int(0.02 * args.steps))
    if step < warm:
        return args.lr * (step + 1) / warm
    progress = (step - warm) / max(1, args.steps - warm)
    end = args.lr * args.final
    return end + (args.lr - end) * 0.5 * (1 + math.cos(math.pi * progress))


def batch(noisy: np.ndarray, args, rng: np.random.Generator):
    """A fresh window, pair direction and dihedral transform for every sample."""
    n_images, _, height, width = noisy.shape
    size = args.batch
    k = rng.integers(0, n_images, size)  # drawn as whole vectors, in this order
    i = rng.integers(0, 2, size)
    top = rng.integers(0, height - args.patch + 1, size)
    left = rng.integers(0, width - args.patch + 1, size)
    transform = rng.integers(0, 8, size)
    inputs = np.empty((size, 1, args.patch, args.patch), np.float32)
    targets = np.empty_like(inputs)
    for b in range(size):
        window = (slice(top[b], top[b] + args.patch), slice(left[b], left[b] + args.patch))
        inputs[b, 0] = dihedral(noisy[k[b], i[b]][window], int(transform[b]))
        targets[b, 0] = dihedral(noisy[k[b], 1 - i[b]][window], int(transform[b]))
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def val_upsnr(net, val_noisy: np.ndarray) -> float:
    """Clean-free: uMSE of f(y1) against y2 minus the pair's noise variance, then dB."""
    variance = float(((val_noisy[:, 0].astype(np.float64) - val_noisy[:, 1]) ** 2).mean() / 2)
    net.eval()
    with torch.no_grad():
        umse = [
            (
                (
                    net(torch.from_numpy(val_noisy[k : k + 1, 0:1]))[0, 0]
                    .numpy()
                    .astype(np.float64)
                    - val_noisy[k, 1]
                )
                ** 2
            ).mean()
            - variance
            for k in range(len(val_noisy))
        ]
    net.train()
    return float(upsnr_from_umse(np.mean(umse), data_range=1.0))


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    noisy = load_split(args.data, "train", with_clean=False).noisy.astype(np.float32)
    val_noisy = load_split(args.data, "val", with_clean=False).noisy.astype(np.float32)
    model = UNet(width=args.width, residual=True)
    ema = None
    if args.ema:

        def average(averaged, current, n_averaged):
            decay = min(args.ema, (1.0 + float(n_averaged)) / (10.0 + float(n_averaged)))
            return decay * averaged + (1 - decay) * current

        ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=average)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    log, start = [], time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = rate(step, args)
        inputs, targets = batch(noisy, args, rng)
        loss = F.mse_loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        if (step + 1) % (args.steps // args.evals) == 0 or step + 1 == args.steps:
            record = {
                "step": step + 1,
                "t": round(time.perf_counter() - start, 1),
                "val": round(val_upsnr(model, val_noisy), 3),
            }
            if ema is not None:
                record["val_ema"] = round(val_upsnr(ema.module, val_noisy), 3)
            log.append(record)
            print(args.tag, record, flush=True)
    net = (ema.module if ema is not None else model).eval()
    test = load_split(args.data, "test", with_clean=True)
    dr1, hu = [], []
    with torch.no_grad():
        for k in range(len(test.noisy)):
            estimate = net(torch.from_numpy(test.noisy[k : k + 1, 0:1].astype(np.float32)))
            estimate, clean, scale = estimate[0, 0].numpy(), test.clean[k], float(test.scale[k])
            dr1.append(psnr(clean, estimate, data_range=1.0))
            hu.append(psnr_hu_window(clean * scale - 1024, estimate * scale - 1024))
    result = {
        "tag": args.tag,
        "args": {k: str(v) for k, v in vars(args).items()},
        "log": log,
        "test_dr1": float(np.mean(dr1)),
        "test_hu": float(np.mean(hu)),
        "wall_s": time.perf_counter() - start,
    }
    print(
        args.tag,
        "final",
        log[-1],
        f"test PSNR {result['test_dr1']:.3f} dB (data_range 1), "
        f"{result['test_hu']:.3f} dB (-1000..1000 HU)",
        flush=True,
    )
    (args.out / f"{args.tag}.json").write_text(json.dumps(result, indent=2))
    torch.save(net.state_dict(), args.out / f"{args.tag}.pt")


if __name__ == "__main__":
    main()
