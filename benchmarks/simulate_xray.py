"""Time the paper-size X-ray dataset build: 100 phantoms x 63 views, 256^2, 2 realisations.

Run: ``.venv/bin/python benchmarks/simulate_xray.py [--phantoms 100 --workers 2 --out DIR]``.
Prints the wall time per stage and in total, the solved dose and the achieved baseline PSNR,
with the machine's core count and load average (other processes sharing the cores slow it).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from lowdose.simulate.xray import PAPER_XRAY_LEVEL, build_xray_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", type=int, default=100)
    parser.add_argument("--angles", type=int, default=63)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--geometry", default="parallel")
    parser.add_argument("--out", type=Path, default=None, help="keep the file here")
    args = parser.parse_args()
    stage_start: dict[str, float] = {}
    stage_time: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        stage_start.setdefault(stage, time.perf_counter())
        if done == total:
            stage_time[stage] = time.perf_counter() - stage_start[stage]

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "xray.h5"
        summary = build_xray_dataset(
            out,
            phantoms=args.phantoms,
            angles=args.angles,
            size=args.size,
            realisations=2,
            level=PAPER_XRAY_LEVEL,
            geometry=args.geometry,
            seed=0,
            workers=args.workers,
            progress=progress,
        )
        size_gb = out.stat().st_size / 1e9
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} "
        "(other processes share these cores)"
    )
    print(
        f"dataset: {args.phantoms} phantoms x {args.angles} views, {args.size}^2, "
        f"{args.geometry}, 2 realisations, {args.workers} workers, {size_gb:.2f} GB"
    )
    for stage, seconds in stage_time.items():
        print(f"  {stage:9s} {seconds:7.1f} s  ({args.phantoms / seconds:.2f} phantoms/s)")
    print(f"total      {summary.elapsed_s:7.1f} s")
    counts = summary.split_counts
    print(
        f"dose {summary.noise_level:.1f} photons/pixel; baseline PSNR "
        f"{summary.achieved_psnr_db:.3f} dB (target {summary.target_psnr_db:.2f})"
    )
    print(
        f"images: {counts['train']} train, {counts['val']} val, {counts['test']} test; "
        f"{summary.details.n_train_pairs_n2n} N2N pairs"
    )
    cpu_s = sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    print(
        f"CPU time {cpu_s:.0f} s in all processes: {cpu_s / args.workers:.0f} s of wall time "
        f"on {args.workers} uncontended cores"
    )


if __name__ == "__main__":
    main()
