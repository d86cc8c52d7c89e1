"""Test PSNR against CPU-minutes for the budgeted recipe, beside BM3D and NLM.

For each mode and budget, ``lowdose train --budget`` plans the run on this machine (throughput
probe -> width and a fixed step count, warm-up + cosine to the last step; clean-free selection)
and trains it; each ``best.ckpt`` is then evaluated on the dataset's test split plain and with the
8-fold self-ensemble (``--tta 8``). The filters come from one ``lowdose evaluate`` run of the same
file (``--filters-results``): oracle BM3D and NLM (per image against the clean image: an upper
bound no user has) and blind-sigma BM3D/NLM (strength from each scan's own noise estimate, as a
user without clean data runs them). Printed per run: width, steps, wall time, PSNR with
data_range 1 on the dataset scale and in the -1000..1000 HU window (data_range 2000, both images
clipped), and the paired difference to BM3D (oracle and blind-sigma) in the HU window with a 95 %
cluster-bootstrap CI over test patients (2000 draws, seed 0).

Run on an idle machine (the budget is wall time)::

    .venv/bin/lowdose evaluate --data runs/all/ct24/data/ct-*.h5 --filters bm3d,nlm \
        --tuning oracle+blind-sigma --workers 2 --out runs/cpu-budget/filters
    .venv/bin/python benchmarks/cpu_budget.py --data runs/all/ct24/data/ct-*.h5 \
        --filters-results runs/cpu-budget/filters/results.csv --budgets 5,10,30 --modes n2n \
        --out runs/cpu-budget --figure docs/figures/cpu-budget.png

Finished runs are reused (``OUT/<mode>-<minutes>min/best.ckpt`` with ``wall.json``).

The throughput probe runs once per mode and width, at the first run that needs it, on 2 torch
threads, and is kept in ``OUT/probe.json``: every later plan reuses it, so a budget means the
same step count whatever else the machine does afterwards (run the first one idle). With
``--threads 1`` two copies of this script (different ``--modes``/``--budgets``, same ``--out``)
train side by side: on the 2-core dev machine two 1-thread processes take 2.7 + 2.7 steps/s
against 4.5 for one 2-thread process (width 16, probe, idle), and the step counts -- hence the
models -- are those of the idle 2-thread plan; only the wall time differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch

from lowdose.core.atomic import atomic_write_text
from lowdose.data.paired import paired_difference
from lowdose.data.results import summary_label
from lowdose.evaluation.evaluate import evaluate
from lowdose.training.config import make_train_config
from lowdose.training.run import resume_config, train
from lowdose.training.throughput import Throughput, measure_throughput
from lowdose.training.wall_time import format_wall_time


class CachedProbe:
    """A throughput ``Probe`` measured once per (mode, width) and kept in a JSON file."""

    def __init__(self, path: Path, threads: int = 2):
        self.path, self.threads = path, threads

    def __call__(self, width: int, *, mode: str, **kwargs) -> Throughput:
        cache = json.loads(self.path.read_text()) if self.path.is_file() else {}
        key = f"{mode}-w{width}"
        if key not in cache:
            threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)  # the plan is for a 2-thread run
            try:
                speed = measure_throughput(width, mode=mode, **kwargs)
            finally:
                torch.set_num_threads(threads)
            cache = json.loads(self.path.read_text()) if self.path.is_file() else {}  # others'
            cache[key] = dataclasses.asdict(speed) | {"threads": self.threads}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(cache, indent=2))
        values = cache[key]
        return Throughput(values["steps_per_s"], values["forward_pixels_per_s"], values["seconds"])


def parse_mode(spec: str) -> tuple[str, str, float | None]:
    """``MODE[@LR]`` -> (mode, label, lr): ``n2c@2e-3`` trains n2c at peak rate 2e-3 instead of
    the recipe's, labelled ``n2c-lr0.002`` (its folders, table rows and curve)."""
    mode, _, lr = spec.partition("@")
    return (mode, mode, None) if not lr else (mode, f"{mode}-lr{float(lr):g}", float(lr))


def run_folder(out: Path, label: str, minutes: float) -> Path:
    """``OUT/<label>-<minutes>min``: one budgeted run's folder."""
    return out / f"{label}-{minutes:g}min"


def train_budgeted(
    data: Path, out: Path, spec: str, minutes: float, seed: int, threads: int = 2
) -> dict:
    """Train (or reuse) one budgeted run of ``spec`` (:func:`parse_mode`); return its wall time,
    width and steps."""
    mode, label, lr = parse_mode(spec)
    run = run_folder(out, label, minutes)
    record = run / "wall.json"
    if record.is_file() and (run / "best.ckpt").is_file():
        return {"label": mode} | json.loads(record.read_text())
    # The budget fixes the steps (from the cached idle probe); the max_time guard is lifted to
    # 20 x the budget so that another job sharing the cores cannot cut the run short.
    guard = format_wall_time(int(round(minutes * 60 * 20)))
    values = {
        "data": data,
        "out": run,
        "mode": mode,
        "seed": seed,
        "threads": threads,
        "quiet": True,
        "budget": format_wall_time(int(round(minutes * 60))),
        "max_time": guard,
        # the plan of an idle machine, kept: a re-plan from a loaded loop's rate would make the
        # point a measure of the load, not of the budget
        "replan": False,
        **({"lr": lr} if lr is not None else {}),
    }
    started = time.perf_counter()
    if (run / "last.ckpt").is_file():  # interrupted: the saved plan's steps, resumed
        config = resume_config(run, {"max_time": guard, "threads": threads})
        result = train(config, resume=True)
    else:
        config = make_train_config(values, source="benchmarks/cpu_budget.py")
        result = train(config, probe=CachedProbe(out / "probe.json"))
    planned = result.budget_plan.max_steps if result.budget_plan else config.schedule.max_steps
    if result.global_step != planned:
        raise SystemExit(f"{run}: stopped at step {result.global_step} of {planned}")
    wall_s = time.perf_counter() - started
    plan = result.budget_plan
    info = {
        "mode": mode,
        "label": label,
        "minutes": minutes,
        "wall_s": wall_s,
        "global_step": result.global_step,
        "width": plan.width if plan else None,
        "max_steps": plan.max_steps if plan else None,
        "steps_per_s": plan.steps_per_s if plan else None,
    }
    atomic_write_text(record, json.dumps(info, indent=2, default=str))
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument(
        "--filters-results",
        type=Path,
        action="append",
        required=True,
        help="results.csv of `lowdose evaluate --filters ...` (repeat for several)",
    )
    parser.add_argument(
        "--references",
        default="bm3d (oracle),bm3d (blind-sigma)",
        help="filter labels the runs are paired against (e.g. 'bm3d (blind-psd)')",
    )
    parser.add_argument(
        "--one-scan",
        default=None,
        help="CSV:DOSE, benchmarks/one_scan.py's one_scan.csv: the one-scan fit's mean over the "
        "same test patients, drawn as a line",
    )
    parser.add_argument("--budgets", default="5,10,30", help="minutes, comma separated")
    parser.add_argument(
        "--modes", default="n2n", help="n2n,n2c,nb2nb,n2v; MODE@LR sets the peak rate (n2c@2e-3)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each run")
    parser.add_argument("--train-only", action="store_true", help="train; evaluate later")
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="report finished runs of --modes x --budgets only",
    )
    args = parser.parse_args()
    budgets = [float(v) for v in args.budgets.split(",") if v]
    runs = []
    for spec in [m for m in args.modes.split(",") if m]:
        for minutes in budgets:
            folder = run_folder(args.out, parse_mode(spec)[1], minutes)
            if args.finished_only and not (folder / "wall.json").is_file():
                continue
            info = train_budgeted(args.data, args.out, spec, minutes, args.seed, args.threads)
            print(
                f"{info['label']} {minutes:g} min: width {info['width']}, "
                f"{info['global_step']} steps, {info['wall_s']:.0f} s wall"
            )
            runs.append(info)
    if args.train_only:
        return
    filters = pd.concat(
        [_without_repeated_noisy(pd.read_csv(p), i) for i, p in enumerate(args.filters_results)],
        ignore_index=True,
    )
    # a later table's rows of one tuning replace an earlier one's (e.g. a re-run blind-psd)
    frames = [filters.drop_duplicates(["method", "tuning", "image_index"], keep="last")]
    for info in runs:
        folder = run_folder(args.out, info["label"], info["minutes"])
        results = folder / "eval" / "results.csv"
        if not results.is_file():
            evaluate(
                args.data, models=[folder / "best.ckpt"], filters=[], tta=8, out_dir=folder / "eval"
            )
        frame = pd.read_csv(results)
        frame = frame[frame["method"] != "noisy"].copy()
        frame["method"] = frame["method"].str.replace(
            info["mode"] + "-mse", f"{info['label']}-{info['minutes']:g}min", regex=False
        )
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    report(table, runs, args)


def _without_repeated_noisy(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    # every evaluate table has the noisy rows; keep the first table's only
    return frame if index == 0 else frame[frame["method"] != "noisy"]


def one_scan_mean(spec: str, objects) -> tuple[float, int]:
    """The one-scan fit's (blend's) mean PSNR in the HU window over ``objects``' slices."""
    path, dose = spec.rsplit(":", 1)
    frame = pd.read_csv(path)
    rows = frame[
        (frame["dose"] == dose) & (frame["method"] == "blend") & frame["object_id"].isin(objects)
    ]
    if rows.empty:
        raise SystemExit(f"{path}: no blend rows for dose {dose} on these patients")
    return float(rows["psnr_hu_db"].mean()), len(rows)


def report(table: pd.DataFrame, runs: list[dict], args) -> None:
    """Print the means and paired differences; draw the curve figure."""
    labels = [
        summary_label(m, d if isinstance(d, str) else "", t)
        for m, d, t in zip(table["method"], table["model"], table["tuning"], strict=True)
    ]
    table = table.assign(label=labels)
    means = table.groupby("label", sort=False)[["psnr_db", "psnr_hu_window_db"]].mean()
    print(means.round(2).to_string())
    # CT is judged in the HU window; X-ray projections (no HU) on the dataset's data_range 1
    metric = "psnr_db" if means["psnr_hu_window_db"].isna().all() else "psnr_hu_window_db"
    scale = "data_range 1" if metric == "psnr_db" else "HU window"
    for label in means.index:
        if "min" not in label:
            continue
        for reference in args.references.split(","):
            if reference in means.index:
                diff = paired_difference(table, label, reference, metric=metric)
                print(
                    f"{label} - {reference} ({scale}): {diff.mean_db:+.2f} "
                    f"[{diff.ci_low_db:+.2f}, {diff.ci_high_db:+.2f}] "
                    f"({diff.n_images} images, {diff.n_objects} objects)"
                )
    lines = {}
    if args.one_scan:
        objects = table.loc[table["method"] == "noisy", "object_id"].unique()
        lines["one-scan fit (blend, no training)"], n = one_scan_mean(args.one_scan, objects)
        print(
            f"one-scan fit (blend): {lines['one-scan fit (blend, no training)']:.2f} ({n} slices)"
        )
    if args.figure is not None:
        draw(
            means[metric],
            runs,
            args.figure,
            scale=scale,
            title=f"{args.data.stem} test split",
            references=args.references.split(","),
            lines=lines,
        )


def draw(
    means: pd.Series,
    runs: list[dict],
    path: Path,
    *,
    scale: str,
    title: str,
    references=("bm3d (oracle)", "bm3d (blind-sigma)"),
    lines=None,
) -> None:
    """Test PSNR (``scale``) against budget minutes; filters as horizontal lines."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    for mode in dict.fromkeys(r["label"] for r in runs):
        for suffix, style in (("", "-o"), ("-tta8", "--s")):
            points = [
                (r["minutes"], means[label])
                for r in runs
                if r["label"] == mode
                for label in means.index
                if label.startswith(f"{mode}-{r['minutes']:g}min{suffix} ")
            ]
            if points:
                xs, ys = zip(*sorted(points), strict=True)
                # n2c validates against clean images: its curve is clean-selected
                rule = "clean-selected" if mode.startswith("n2c") else "clean-free"
                ax.plot(xs, ys, style, label=f"{mode}{suffix} ({rule})")
    colours = ("black", "grey", "tab:brown", "tab:purple", "tab:olive")
    for label, colour in zip(list(references) + ["nlm (oracle)"], colours, strict=False):
        if label in means.index:
            ax.axhline(means[label], color=colour, ls=":", label=label)
    for (label, value), colour in zip((lines or {}).items(), ("tab:red", "tab:pink"), strict=False):
        ax.axhline(value, color=colour, ls="-.", label=label)
    ylabel = "-1000..1000 HU" if scale == "HU window" else "data_range 1"
    ax.set(
        xlabel="training budget [CPU-minutes, 2 cores]",
        ylabel=f"test PSNR, {ylabel} [dB]",
        xscale="log",
        xticks=sorted({r["minutes"] for r in runs}),
        title=f"Budgeted recipe vs BM3D ({title})",
    )
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
