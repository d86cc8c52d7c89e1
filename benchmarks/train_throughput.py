"""U-Net training throughput on this machine, against the fp32 matmul peak of the same process.

Prints forward FLOPs per image (counted by torch.utils.flop_counter), training samples/s at
64², 128² and 256² patches for width 48 (paper) and 16 (unet-w16), the achieved GFLOP/s
(training ~= 3x forward: forward + two backward convolutions), the measured fp32 matmul GFLOP/s,
and their ratio; for 64² also channels_last and 1 vs 2 threads.

Run: ``.venv/bin/python benchmarks/train_throughput.py [--quick]`` (idle machine: ~3-5 minutes).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from lowdose.models.unet import UNet


def forward_flops(model: torch.nn.Module, size: int) -> int:
    """FLOPs of one forward pass on a (1, 1, size, size) image."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    return counter.get_total_flops()


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """fp32 matmul GFLOP/s (2 n^3 per product), best of ``repeats``."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def train_samples_per_s(
    width: int, size: int, batch: int, *, channels_last: bool, seconds: float
) -> float:
    """Adam training steps on random patches for about ``seconds``; returns samples/s."""
    torch.manual_seed(0)
    model = UNet(width=width)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size).contiguous(memory_format=memory_format)
    target = torch.rand(batch, 1, size, size)

    def step() -> None:
        loss = torch.nn.functional.mse_loss(model(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, kernel selection
    steps, start = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (noisier)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 8.0
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_gflops()
    print(f"fp32 matmul 2048^2: {peak:.1f} GFLOP/s")

    print("\nforward FLOPs per image")
    for width in (48, 16):
        model = UNet(width=width)
        for size in (64, 128, 256):
            flops = forward_flops(model, size)
            print(
                f"  {model.name} {size:>3}^2: {flops / 1e9:7.3f} GFLOP "
                f"({flops / size**2 / 1e3:.0f} kFLOP/pixel)"
            )

    print("\ntraining (Adam, fp32, batch 8 at 64^2 / 4 at 128^2 / 2 at 256^2)")
    print("  model      patch  layout          samples/s  GFLOP/s  ratio to matmul")
    for width in (48, 16):
        model = UNet(width=width)
        for size, batch in ((64, 8), (128, 4), (256, 2)):
            layouts = (False, True) if size == 64 else (True,)
            for channels_last in layouts:
                rate = train_samples_per_s(
                    width, size, batch, channels_last=channels_last, seconds=seconds
                )
                gflops = 3 * forward_flops(model, size) * rate / 1e9
                layout = "channels_last" if channels_last else "contiguous"
                print(
                    f"  {model.name:<10} {size:>4}^2  {layout:<14} {rate:9.1f}  "
                    f"{gflops:7.1f}  {gflops / peak:.2f}"
                )

    print("\nthreads (unet-w48, 64^2, channels_last)")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rate = train_samples_per_s(48, 64, 8, channels_last=True, seconds=seconds)
        print(f"  {threads} thread(s): {rate:.1f} samples/s")
    torch.set_num_threads(args.threads)


if __name__ == "__main__":
    main()
