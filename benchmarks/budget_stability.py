"""Does ``train --budget`` keep its budget, and does its recipe never end below its input?

Runs the budgeted recipe (``lowdose.training.run.train`` with ``budget``; the loop re-plans its
steps from its own measured rate, :mod:`lowdose.training.replan`) over seeds x budgets x noise
types, and reports per run: the probe's planned steps, the re-planned and achieved steps, the
probe's and the loop's rates, the wall time of ``train`` and its fraction of the budget, and the
clean-free validation score at the end and of ``best.ckpt`` against the noisy input's (the
identity, scored the same way: ``val_identity_db``). Then the spread per noise and budget:
fraction of the budget (mean, min, max), runs past the budget (+2 %), runs below 85 %, and runs
whose end or best score is below the input's, and runs whose ``best.ckpt`` fell back to the
residual network's untrained state, the identity, because no validation beat the input (its
best score is then the input's; ``fell_back_to_identity``). A run that ``train`` refuses before
training (e.g. a probe slowed by load leaves no time in the budget: one line) is recorded with
its ``refused`` message and left out of the spread.

The data: ``--data NAME=FILE`` (repeatable), or by default two files built once in
``OUT/data`` with ``lowdose simulate ct`` from ``--source`` (default the phantom): ``awgn``
(the paper's AWGN, ``--target-psnr 24.44``) and ``sinogram`` (Poisson + Hann FBP at a quarter of
full dose). Results go to ``OUT/results.csv`` (rewritten atomically after every run); a rerun
skips the runs already there, and a run interrupted before its row was written is trained again
from scratch (a wall-time measurement cannot resume).

The budget is wall time: run it on an idle machine (``os.getloadavg`` at each run's start is in
the table); ``--threads 1`` on a 2-core machine shared with another process. Example::

    .venv/bin/python benchmarks/budget_stability.py --out runs/budget-stability \
        --seeds 0,1,2,3,4 --budgets 00:01:00,00:02:00,00:05:00
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lowdose.core.atomic import atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.training.config import make_train_config
from lowdose.training.run import train
from lowdose.training.wall_time import wall_time_s

SIMULATE = {
    "awgn": ["--noise", "awgn", "--target-psnr", "24.44"],
    "sinogram": ["--noise", "sinogram", "--dose-fraction", "0.25", "--kernel", "hann"],
}
KEYS = ["noise", "budget", "seed"]


def build_data(out: Path, source: str, size: int) -> dict[str, Path]:
    """The default datasets (built once with ``lowdose simulate ct``), by noise name."""
    files = {}
    for name, options in SIMULATE.items():
        path = out / "data" / f"ct-{name}.h5"
        if not path.is_file():
            lowdose = str(Path(sys.executable).with_name("lowdose"))  # the venv's command
            command = [
                lowdose,
                "simulate",
                "ct",
                "--source",
                source,
                "--realisations",
                "2",
                "--size",
                str(size),
                *options,
                "--out",
                str(path),
            ]
            subprocess.run(command, check=True)
        files[name] = path
    return files


def run_once(data: Path, run_dir: Path, budget: str, seed: int, threads: int, mode: str) -> dict:
    """Train one budget run in ``run_dir`` (trained again if a stale one is there)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)  # interrupted before its row: the wall time must be measured whole
    load_1min = os.getloadavg()[0]
    started = time.perf_counter()
    values = {
        "data": data,
        "out": run_dir,
        "budget": budget,
        "seed": seed,
        "threads": threads,
        "mode": mode,
        "quiet": True,
    }
    result = train(make_train_config(values))
    wall_s = time.perf_counter() - started
    outcome, scores = result.budget_outcome, result.scores
    rows = pd.read_csv(run_dir / "metrics.csv")
    end_db = float(rows[result.monitor].iloc[-1])
    return {
        "width": result.budget_plan.width,
        "planned_steps": outcome.planned_steps,
        "replans": len(outcome.replanned_steps),
        "final_steps": outcome.final_steps,
        "achieved_steps": outcome.achieved_steps,
        "probe_steps_s": round(outcome.probe_steps_per_s, 3),
        "loop_steps_s": None
        if outcome.loop_steps_per_s is None
        else round(outcome.loop_steps_per_s, 3),
        "train_s": round(outcome.train_s, 1),
        "wall_s": round(wall_s, 1),
        "budget_fraction": round(wall_s / wall_time_s(budget), 4),
        "end_db": round(end_db, 3),
        "best_db": round(scores.model_db, 3),
        "identity_db": round(scores.identity_db, 3),
        "end_minus_input_db": round(end_db - scores.identity_db, 3),
        "best_minus_input_db": round(scores.model_db - scores.identity_db, 3),
        "warned": scores.warning("run") is not None,
        # best.ckpt reset to the (untrained) identity because training never beat the input
        "fell_back_to_identity": scores.fell_back_to_identity,
        "stopped_at_deadline": outcome.stopped_at_deadline,
        "load_1min": round(load_1min, 2),
    }


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per noise and budget: the fraction of the budget used, and runs that missed a target."""
    groups = table.groupby(["noise", "budget"])
    return pd.DataFrame(
        {
            "runs": groups.size(),
            "fraction_mean": groups["budget_fraction"].mean().round(3),
            "fraction_min": groups["budget_fraction"].min(),
            "fraction_max": groups["budget_fraction"].max(),
            "past_budget_2pct": groups["budget_fraction"].apply(lambda f: int((f > 1.02).sum())),
            "below_85pct": groups["budget_fraction"].apply(lambda f: int((f < 0.85).sum())),
            "stopped_at_deadline": groups["stopped_at_deadline"].apply(lambda s: int(s.sum()))
            if "stopped_at_deadline" in table
            else 0,
            "end_minus_input_min_db": groups["end_minus_input_db"].min(),
            "end_below_input": groups["end_minus_input_db"].apply(lambda d: int((d < 0).sum())),
            "best_minus_input_sd_db": groups["best_minus_input_db"].std().round(3),
            "fell_back": groups["fell_back_to_identity"].apply(lambda s: int(s.sum()))
            if "fell_back_to_identity" in table
            else 0,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/budget-stability"))
    parser.add_argument("--data", action="append", default=[], help="NAME=FILE (repeatable)")
    parser.add_argument("--source", default="phantom", help="simulate ct --source (default data)")
    parser.add_argument("--size", type=int, default=256, help="simulate ct --size")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--budgets", default="00:01:00,00:02:00,00:05:00")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", default="n2n")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = dict(item.split("=", 1) for item in args.data) or build_data(
        args.out, args.source, args.size
    )
    results = args.out / "results.csv"
    table = pd.read_csv(results) if results.is_file() else pd.DataFrame(columns=KEYS)
    done = {tuple(row) for row in table[KEYS].astype(str).itertuples(index=False)}
    for seed in (int(s) for s in args.seeds.split(",")):
        for budget in args.budgets.split(","):
            for noise, data in files.items():
                if (noise, budget, str(seed)) in done:
                    continue
                run_dir = args.out / f"{noise}-{budget.replace(':', '')}-s{seed}"
                try:
                    measured = run_once(Path(data), run_dir, budget, seed, args.threads, args.mode)
                except LowdoseInputError as error:  # e.g. a loaded probe leaves no time to train
                    measured = {"refused": str(error), "load_1min": round(os.getloadavg()[0], 2)}
                row = {"noise": noise, "budget": budget, "seed": seed, **measured}
                print(json.dumps(row), flush=True)
                table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
                atomic_write_text(results, table.to_csv(index=False))
    if table.empty:
        return
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table.to_string(index=False))
        print(spread(table).to_string())
    if "refused" in table:
        print(f"refused before training (one line each): {int(table['refused'].notna().sum())}")
    fraction = table["budget_fraction"].dropna()
    print(
        f"budget fraction over all runs: {np.mean(fraction):.3f} "
        f"(min {fraction.min():.3f}, max {fraction.max():.3f})"
    )


if __name__ == "__main__":
    main()
