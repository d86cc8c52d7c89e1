"""What clean-selected vs clean-free model selection changes for Noise2Noise.

For a finished ``lowdose reproduce`` experiment, takes the clean-free ``n2n`` runs of one model
(``train/<model>/seed<s>/``: validated, selected and scheduled on ``val_upsnr_db`` from pairs of
noisy realisations) and retrains each with ``val_reference: clean`` (the same config, seed and
step budget; only the validation reference, hence ``best.ckpt``'s choice and the plateau
schedule, differ) under ``selection/<model>-clean-selected/seed<s>/``. Both sets of ``best.ckpt``
are then evaluated on the test split (PSNR against the clean test images, data_range 1 on the
dataset's scale; for CT in HU also the -1000..1000 HU window) and the script prints, per seed,
the selected epoch and test PSNR, and the paired difference clean-selected - clean-free per image
(seed-averaged) with its 95 % cluster-bootstrap CI over test objects.

Run (after ``lowdose reproduce``)::

    .venv/bin/python benchmarks/selection.py runs/all/ct24 --model n2n-mse

Finished retrainings are reused (their ``stage.json``-free run folders hold ``last.ckpt``).
Idle 2-core machine: one retraining costs what one quick-scale training does (~2-4 min).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from lowdose.data.paired import paired_difference
from lowdose.data.results import summary_label
from lowdose.evaluation.evaluate import evaluate
from lowdose.models.checkpoint import load_model
from lowdose.training.config import load_train_config
from lowdose.training.run import train


def _selected_epoch(run_dir: Path, monitor: str) -> tuple[int, float]:
    metrics = pd.read_csv(run_dir / "metrics.csv")
    best = int(np.nanargmax(metrics[monitor].to_numpy(dtype=float)))
    return int(metrics["epoch"].iloc[best]), float(metrics[monitor].iloc[best])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="runs/<name>/<experiment> folder")
    parser.add_argument("--model", default="n2n-mse", help="model name in train/")
    args = parser.parse_args()

    clean_free = sorted((args.experiment / "train" / args.model).glob("seed*/best.ckpt"))
    if not clean_free:
        raise SystemExit(f"{args.experiment}/train/{args.model}/seed*/best.ckpt: run reproduce")
    selected = []
    for checkpoint in clean_free:
        source = checkpoint.parent
        out = args.experiment / "selection" / f"{args.model}-clean-selected" / source.name
        config = load_train_config(source / "config.yaml", {"out": out, "val_reference": "clean"})
        if not (out / "best.ckpt").is_file():
            train(config, resume=(out / "last.ckpt").is_file())
        selected.append(out / "best.ckpt")

    data = load_train_config(clean_free[0].parent / "config.yaml").data.path
    folder = args.experiment / "selection" / "results"
    results = evaluate(data, models=clean_free + selected, filters=(), out_dir=folder)
    print(f"dataset {data}; PSNR data_range 1 on the dataset's scale; test split")
    print(
        f"{'seed':>4} {'selection':<15} {'epoch':>5} {'val score [dB]':>14} "
        f"{'test PSNR [dB]':>14} {'HU window [dB]':>14}"
    )
    for checkpoint in clean_free + selected:
        _, meta = load_model(checkpoint)
        monitor = "val_upsnr_db" if meta.selection == "clean-free" else "val_psnr_db"
        epoch, score = _selected_epoch(checkpoint.parent, monitor)
        rows = results[(results["seed"] == meta.seed) & (results["selection"] == meta.selection)]
        print(
            f"{meta.seed:>4} {meta.selection:<15} {epoch:>5} {score:>14.2f} "
            f"{rows['psnr_db'].mean():>14.2f} {rows['psnr_hu_window_db'].mean():>14.2f}"
        )
    # Both selections share method, model and tuning: give each its own label to pair them.
    labelled = results[results["method"] != "noisy"].copy()
    labelled["method"] = labelled["method"] + " " + labelled["selection"]
    first = labelled.iloc[0]
    labels = [
        summary_label(f"{first['method'].split()[0]} {s}", first["model"], "none")
        for s in ("clean-selected", "clean-free")
    ]
    for metric in ("psnr_db", "psnr_hu_window_db"):
        if not np.isfinite(labelled[metric]).any():
            continue
        diff = paired_difference(labelled, *labels, metric=metric)
        print(
            f"clean-selected - clean-free, {metric}: {diff.mean_db:+.3f} dB, 95 % CI "
            f"[{diff.ci_low_db:+.3f}, {diff.ci_high_db:+.3f}] (cluster bootstrap over "
            f"{diff.n_objects} objects, {diff.n_images} images, {diff.n_seeds} seeds)"
        )


if __name__ == "__main__":
    main()
