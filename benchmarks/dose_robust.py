"""One dose-robust model against per-dose specialists, on the accuracy sweep against clean.

On the built-in models' dataset of ``--modality`` (``xray``: the torso phantoms; ``ct``: TCGA
slices with AWGN; :mod:`builtin_models`, same recipe and step count) this trains

- one **specialist** per ``--specialist-doses`` fraction ``p``: Noise2Noise on a copy of the
  dataset whose noisy realisations are re-noised once to ``p`` of the dose, each independently
  and without reading a clean image (:func:`lowdose.simulate.renoise.renoise_dataset`; ``p = 1``
  is the dataset itself);
- the **robust** model: Noise2Noise with ``--dose-range LOW:HIGH`` on the dataset itself;

then runs the accuracy sweep against clean (:func:`lowdose.evaluation.sweep.run_sweep`, as ``lowdose
reproduce`` does: clean test images re-noised at input PSNRs across ``--psnr-range``, the clean
images used to score only) over all of them. Written to ``--out``: ``sweep.csv`` (per image),
``dose-robust.csv`` (model, input PSNR, output PSNR, gain per level: means over the images), the
figure ``dose-robust-<modality>.png`` (the paper's Figs. 2/4 with the robust curve beside the
specialists) and ``own-level/`` (each specialist and the robust model on the specialist's own
test split). Printed: the issue's targets as measured numbers (never asserted): the robust
model's gain >= 0 at every sweep level from 15 to 50 dB input PSNR (the X-ray target), and the
robust model within 0.5 dB of each specialist at that specialist's own level (paired over the
test images, 95 % cluster-bootstrap CI over objects).

Finished stages are reused (datasets, runs with ``finished.json``, evaluations). Run from the
repository root (X-ray at the defaults: 3 x 1500 steps, ~16 CPU-minutes on 2 cores)::

    .venv/bin/python benchmarks/dose_robust.py --modality xray --out runs/dose-robust-xray
    .venv/bin/python benchmarks/dose_robust.py --modality ct --out runs/dose-robust-ct \\
        --specialist-doses 1,0.25
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

# benchmarks/ is sys.path[0] when this file runs as a script: one recipe for both scripts
from builtin_models import build_dataset, say, train_run

from lowdose.core.atomic import atomic_path, atomic_write_bytes
from lowdose.data.dataset import read_attrs
from lowdose.data.paired import paired_difference
from lowdose.evaluation.evaluate import evaluate
from lowdose.evaluation.sweep import SweepModel, default_targets_db, run_sweep, write_sweep
from lowdose.report.analysis import is_model_method, sweep_means, zero_crossings
from lowdose.report.figures import SweepCurve, sweep_figure
from lowdose.simulate.renoise import renoise_dataset
from lowdose.training.config_groups import parse_dose_range

DATASET_OF = {"xray": "xray-poisson", "ct": "ct-awgn"}
SWEEP_RANGE_DB = {"xray": (14.0, 50.0), "ct": (4.0, 50.0)}  # the experiments' sweep ranges
GAIN_TARGET_RANGE_DB = (15.0, 50.0)
WITHIN_DB = 0.5


def dose_range(text: str) -> tuple[float, float]:
    """``--dose-range LOW:HIGH`` (``lowdose train``'s rule), as an argparse type."""
    try:
        return parse_dose_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def specialist_data(data: Path, dose: float, seed: int, folder: Path) -> Path:
    """The dataset re-noised once to ``dose`` of its dose, in ``folder`` (itself at 1)."""
    if dose == 1.0:
        return data
    path = folder / f"{data.stem}-dose{dose:g}.h5"
    if not path.is_file():
        say(path.stem, f"re-noising {data.name} to {dose:g} of the dose (clean-free)")
        renoise_dataset(data, path, dose, seed=seed)
    return path


def train_all(args, data: Path) -> tuple[list[SweepModel], dict[str, Path]]:
    """Train (or reuse) the specialists and the robust model; their sweep specs and data."""
    runs, models, own_data = args.out / "runs", [], {}
    tag = f"steps{args.max_steps}-seed{args.seed}"  # a changed recipe never reuses a run
    common = {"max_steps": args.max_steps, "seed": args.seed, "threads": args.threads}
    for dose in args.specialist_doses:
        path = specialist_data(data, dose, args.seed, args.out / "data")
        label = f"specialist {dose:g}x"
        run = runs / f"specialist-{dose:g}-{tag}"
        train_run(path, run, dose_range=None, **common)
        models.append(SweepModel(label, run / "best.ckpt", read_attrs(path).achieved_psnr_db))
        own_data[label] = path
    low, high = args.dose_range
    name = f"robust-{low:g}-{high:g}-{tag}"
    train_run(data, runs / name, dose_range=(low, high), **common)
    acquired_db = read_attrs(data).achieved_psnr_db
    # PSNR falls by 10 log10(1/p) at p of the dose (noise variance ~ 1/dose): the trained span
    span = f"{acquired_db + 10 * math.log10(low):.1f}-{acquired_db + 10 * math.log10(high):.1f}"
    label = f"robust {low:g}-{high:g}x (trained at ~{span} dB)"
    models.append(SweepModel(label, runs / name / "best.ckpt", math.nan))
    return models, own_data


def level_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean input PSNR, output PSNR and gain of every model at every sweep level."""
    keys = ["method", "noise_level"]
    table = sweep.groupby(keys, sort=False)[["input_psnr_db", "output_psnr_db", "gain_db"]].mean()
    table["n_images"] = sweep.groupby(keys, sort=False).size()
    table = table.reset_index().rename(columns={"method": "model"})
    return table.sort_values(["model", "input_psnr_db"], kind="stable")


def draw(sweep: pd.DataFrame, models: list[SweepModel], path: Path) -> None:
    """The sweep figure (output PSNR and gain against input PSNR), PNG at ``path``."""
    curves = []
    for mean in sweep_means(sweep):
        x, y = mean.input_psnr_db, mean.output_psnr_db
        zero_db = tuple(c.input_psnr_db for c in zero_crossings(x, y - x))
        curves.append(SweepCurve(mean.label, x, y, is_model_method(mean.method), zero_db))
    trained = tuple(m.trained_at_db for m in models if np.isfinite(m.trained_at_db))
    atomic_write_bytes(path, sweep_figure(curves, trained_at_db=trained))
    print(f"figure: {path}")


def scored(data: Path, checkpoint: Path, folder: Path, name: str) -> pd.DataFrame:
    """``evaluate`` of one model on ``data``'s test split (reused), its rows named ``name``."""
    if not (folder / "results.csv").is_file():
        evaluate(data, models=[checkpoint], filters=[], out_dir=folder)
    frame = pd.read_csv(folder / "results.csv")
    # summary label = method when model is "" and tuning "none": what paired_difference selects
    return frame[frame["method"] != "noisy"].assign(method=name, model="", tuning="none")


def own_level(out: Path, models: list[SweepModel], own_data: dict[str, Path]) -> list[str]:
    """Robust minus each specialist on the specialist's own test split (psnr_db, paired)."""
    robust, lines = models[-1], []
    for spec in models[:-1]:
        folder = out / "own-level" / spec.label.replace(" ", "-")
        table = pd.concat(
            [
                scored(own_data[spec.label], spec.checkpoint, folder / "specialist", "specialist"),
                scored(own_data[spec.label], robust.checkpoint, folder / "robust", "robust"),
            ]
        )
        means = table.groupby("method")["psnr_db"].mean()
        diff = paired_difference(table, "robust", "specialist", metric="psnr_db")
        missed = -diff.mean_db - WITHIN_DB
        verdict = "met" if missed <= 0 else f"missed by {missed:.2f} dB"
        lines.append(
            f"{spec.label} at its own level ({spec.trained_at_db:.2f} dB input): specialist "
            f"{means['specialist']:.2f} dB, robust {means['robust']:.2f} dB, robust - specialist "
            f"{diff.mean_db:+.2f} dB [{diff.ci_low_db:+.2f}, {diff.ci_high_db:+.2f}] "
            f"({diff.n_images} images, {diff.n_objects} objects); target >= -{WITHIN_DB} dB: "
            f"{verdict}"
        )
    return lines


def gain_check(levels: pd.DataFrame, robust: str, modality: str) -> str:
    """The robust model's smallest mean gain over the sweep levels from 15 to 50 dB input."""
    low, high = GAIN_TARGET_RANGE_DB
    # a level aimed at 50 dB may achieve 50.05 dB: the range's ends take 0.5 dB of slack
    inside = levels["input_psnr_db"].between(low - 0.5, high + 0.5)
    rows = levels[(levels["model"] == robust) & inside]
    if rows.empty:
        return f"no sweep level of the robust model between {low:g} and {high:g} dB input"
    worst = rows.loc[rows["gain_db"].idxmin()]
    gain = float(worst["gain_db"])
    verdict = "met" if gain >= 0 else f"missed by {-gain:.2f} dB"
    scope = "" if modality == "xray" else " (the issue states this target for X-ray)"
    return (
        f"robust gain >= 0 from {low:g} to {high:g} dB input{scope}: smallest gain "
        f"{gain:+.2f} dB at {worst['input_psnr_db']:.2f} dB input over {len(rows)} levels: "
        f"{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=sorted(DATASET_OF), default="xray")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=None, help="reuse this dataset file")
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--dose-range", type=dose_range, default=(0.1, 1.0))
    parser.add_argument("--specialist-doses", default="1,0.25", help="fractions, e.g. 1,0.25")
    parser.add_argument("--psnr-range", default=None, help="LOW:HIGH dB (default per modality)")
    parser.add_argument("--levels", type=int, default=15)
    parser.add_argument("--images", type=int, default=8, help="sweep test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ct-source", default="../shared/data/ct/tcga-luad")
    parser.add_argument("--smoke", action="store_true", help="tiny datasets: a run check only")
    args = parser.parse_args()
    args.specialist_doses = [float(v) for v in args.specialist_doses.split(",") if v]
    if not args.specialist_doses or not all(0 < v <= 1 for v in args.specialist_doses):
        parser.error("--specialist-doses: fractions in (0, 1], comma separated, e.g. 1,0.25")
    torch.set_num_threads(args.threads)
    data = args.data or build_dataset(
        DATASET_OF[args.modality],
        args.out / "data",
        seed=args.seed,
        ct_source=args.ct_source,
        smoke=args.smoke,
        workers=args.threads,
    )
    models, own_data = train_all(args, data)
    low_db, high_db = (
        SWEEP_RANGE_DB[args.modality]
        if args.psnr_range is None
        else (float(v) for v in args.psnr_range.split(":"))
    )
    say("sweep", f"{args.levels} levels {low_db:g}..{high_db:g} dB, {args.images} test images")
    sweep = run_sweep(
        data,
        models,
        targets_db=default_targets_db(low_db, high_db, args.levels),
        filters=(),
        n_images=args.images,
        seed=args.seed,
        log=lambda text: say("sweep", text),
    )
    write_sweep(sweep, args.out)
    levels = level_table(sweep)
    with atomic_path(args.out / "dose-robust.csv") as tmp:
        levels.to_csv(tmp, index=False)
    print(
        levels.round({"input_psnr_db": 2, "output_psnr_db": 2, "gain_db": 2}).to_string(
            index=False, float_format=lambda value: f"{value:.4g}"
        )
    )
    draw(sweep, models, args.out / f"dose-robust-{args.modality}.png")
    print(gain_check(levels, models[-1].label, args.modality))
    for line in own_level(args.out, models, own_data):
        print(line)


if __name__ == "__main__":
    main()
