"""Time to denoise one large image on CPU with tiled inference (target: 2048^2 in <= 10 s).

Prints, per U-Net width (paper: 48; quick variant: 16): the tile plan chosen from free memory,
wall time of :func:`lowdose.inference.predict.predict` (scaling excluded, it is ~0.1 s), CPU seconds
(user + system: the honest figure when other processes share the cores), throughput in Mpixel/s,
and achieved GFLOP/s (wall) against the counted forward FLOPs. Random weights: the cost does
not depend on them.

    .venv/bin/python benchmarks/inference.py [--size 2048] [--widths 48,16] [--threads N]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from lowdose.inference.predict import predict
from lowdose.inference.tiling import available_bytes, pad_to_grid, plan_tiles, probe_model
from lowdose.models.unet import UNet


def flops_per_pixel(model: torch.nn.Module, side: int = 64) -> float:
    """Forward FLOPs per input pixel (multiply-add = 2), counted on a ``side``^2 input."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 1, side, side))
    return counter.get_total_flops() / side**2


def bench_width(width: int, size: int, *, tile: int | None) -> dict:
    torch.manual_seed(0)
    model = UNet(width=width).eval()
    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    padded_hw = pad_to_grid(image[None]).shape[1:]
    plan = plan_tiles(
        probe_model(model), padded_hw, tile=tile, budget_bytes=available_bytes(torch.device("cpu"))
    )
    predict(model, image[:256, :256])  # warm-up: oneDNN builds its kernels on first use
    start, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    predict(model, image, tile=tile)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    tiles = len(plan.rows) * len(plan.cols)
    computed_px = tiles * plan.tile_hw[0] * plan.tile_hw[1]
    return {
        "width": width,
        "seconds": seconds,
        # CPU seconds (user + system) show the cost when other processes share the cores
        "cpu_seconds": after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime,
        "mpix_per_s": size * size / seconds / 1e6,
        "tile": f"{plan.tile_hw[0]}x{plan.tile_hw[1]}",
        "tiles": tiles,
        "margin": plan.margin_px,
        "gflop_per_s": flops_per_pixel(model) * computed_px / seconds / 1e9,
        "gflop": flops_per_pixel(model) * computed_px / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--widths", default="48,16", help="comma-separated U-Net widths")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default: memory)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    budget_gib = available_bytes(torch.device("cpu")) / 2**30
    print(
        f"denoise one {args.size}x{args.size} float32 image on CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, memory budget {budget_gib:.1f} GiB"
    )
    print(
        f"{'model':>9} {'tile':>11} {'tiles':>5} {'margin':>6} {'GFLOP':>7} {'time s':>7} "
        f"{'cpu s':>6} {'Mpx/s':>6} {'GFLOP/s':>7}"
    )
    for width in (int(w) for w in args.widths.split(",")):
        r = bench_width(width, args.size, tile=args.tile)
        print(
            f"unet-w{r['width']:<3} {r['tile']:>11} {r['tiles']:>5} {r['margin']:>6} "
            f"{r['gflop']:>7.0f} {r['seconds']:>7.2f} {r['cpu_seconds']:>6.1f} "
            f"{r['mpix_per_s']:>6.3f} {r['gflop_per_s']:>7.1f}"
        )


if __name__ == "__main__":
    main()
