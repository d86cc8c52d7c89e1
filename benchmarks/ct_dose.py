"""The ct-dose answer from saved results: realistic CT noise, Noise2Noise vs the rest, and the cost.

Reads a finished ``lowdose reproduce ct-dose`` run (``RUN/ct-dose-<arm>/``: ``quarter``,
``tenth`` with two scans per slice, ``quarter-split``, ``tenth-split`` with one scan split into
view halves) and prints, per dose:

1. every method on the real test slices: PSNR in the -1000..1000 HU window (data_range 2000 HU,
   both images clipped), PSNR in the soft-tissue window -160..240 HU (data_range 400), SSIM (Wang
   2004) in the -1000..1000 window, against the noise-free FBP; networks as mean +- sd over
   training seeds (the per-seed mean over images first);
2. paired differences per test image (first averaged over seeds) with 95 % cluster-bootstrap CIs
   over test patients (``lowdose.data.paired``; 2000 draws, seed 0). The split arm's scan *is*
   the two-scan arm's first scan (same seed and dose), so its rows pair exactly with them;
3. image quality on the QA phantom (``iq/iq.csv``): uniform-module noise sd and NPS mean
   frequency, mean |HU bias| over the sensitometry rods, f50 of the -35 and +340 HU rods, and the
   mean d' (NPW, NPWE) of the low-contrast discs per contrast.

It also draws ``--figure`` (NPS and TTF curves of both doses) from ``iq_nps.csv`` / ``iq_ttf.csv``.

The comparisons name which BM3D: ``bm3d (blind-psd)`` (given the noise power spectrum of the
training pairs, strength by their pair uMSE: the strongest classical method that needs no clean
image for FBP's correlated noise), ``bm3d (single-psd)`` (spectrum from each scan alone),
``bm3d (blind-sigma)`` (the white-noise rule) and the oracles ``bm3d (oracle)`` (white sigma
tuned per image against clean) and ``bm3d (oracle-psd)`` (true noise spectrum, strength tuned
against clean).

Evaluations run by hand (``lowdose evaluate`` of the filters and of the models into separate
folders) are read with ``--results DOSE=CSV`` (repeat; their rows are concatenated) instead of a
reproduce run folder.

Run::

    .venv/bin/python benchmarks/ct_dose.py runs/ct-dose --figure docs/figures/ct-dose-iq.png
    .venv/bin/python benchmarks/ct_dose.py --results quarter=eval/q-bm3d/results.csv \
        --results quarter=eval/q-models/results.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lowdose.data.paired import paired_difference
from lowdose.data.results import summary_label

DOSES = ("quarter", "tenth")
METRICS = (
    ("psnr_hu_window_db", "PSNR -1000..1000 HU"),
    ("psnr_hu_soft_db", "PSNR -160..240 HU"),
    ("ssim_wang_hu_window", "SSIM Wang"),
)


def load_dose(run: Path, dose: str) -> pd.DataFrame:
    """Both arms of one dose in one table; the split arm's network is ``n2n-mse-split``."""
    two = pd.read_csv(run / f"ct-dose-{dose}" / "results" / "results.csv")
    split_path = run / f"ct-dose-{dose}-split" / "results" / "results.csv"
    if not split_path.is_file():
        return two
    split = pd.read_csv(split_path)
    split = split[split["method"] != "noisy"].copy()  # the same scan as the two-scan arm's input
    split["method"] = split["method"] + "-split"
    return pd.concat([two, split], ignore_index=True)


def method_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over images per method (and the sd over seeds of the per-seed means)."""
    frame = frame.assign(
        label=[
            summary_label(m, str(d) if isinstance(d, str) else "", t)
            for m, d, t in zip(
                frame["method"], frame["model"].fillna(""), frame["tuning"], strict=True
            )
        ]
    )
    rows = []
    for label, group in frame.groupby("label", sort=False):
        per_seed = group.groupby("seed")[[m for m, _ in METRICS]].mean()
        row = {
            "method": label,
            "n_images": group["image_index"].nunique(),
            "n_patients": group["object_id"].nunique(),
            "n_seeds": len(per_seed),
        }
        for metric, _ in METRICS:
            row[metric] = per_seed[metric].mean()
            row[metric + "_sd"] = per_seed[metric].std(ddof=1) if len(per_seed) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The questions, as (method, reference) label pairs present in ``frame``."""
    labels = {
        summary_label(m, d if isinstance(d, str) else "", t)
        for m, d, t in zip(frame["method"], frame["model"], frame["tuning"], strict=True)
    }
    net = next((x for x in labels if x.startswith("n2n-mse (")), None)
    tta = next((x for x in labels if x.startswith("n2n-mse-tta8 (")), None)
    split = next((x for x in labels if x.startswith("n2n-mse-split")), None)
    builtin = next((x for x in labels if x.startswith("builtin (")), None)
    n2c = next((x for x in labels if x.startswith("n2c-mse")), None)
    baselines = (
        "bm3d (blind-psd)",
        "bm3d (blind-psd-image)",
        "bm3d (single-psd)",
        "bm3d (blind-sigma)",
        "nlm (blind-sigma)",
        "bm3d (oracle)",
        "bm3d (oracle-psd)",
    )
    wanted = [
        (net, "noisy"),
        *((net, b) for b in baselines),
        *((tta, b) for b in baselines),
        (builtin, "noisy"),
        (builtin, "bm3d (blind-psd)"),
        (net, builtin),
        (split, "bm3d (blind-psd)"),
        (split, "bm3d (blind-sigma)"),
        (net, split),
        (n2c, net),
        ("bm3d (blind-psd)", "bm3d (blind-sigma)"),
        ("bm3d (oracle-psd)", "bm3d (blind-psd)"),
        ("bm3d (oracle)", "bm3d (blind-sigma)"),
        ("bm3d (blind-psd)", "noisy"),
        ("bm3d (single-psd)", "noisy"),
    ]
    return [(a, b) for a, b in wanted if a in labels and b in labels]


def iq_summary(folder: Path) -> pd.DataFrame:
    """One row per method of the QA phantom's iq.csv (see the module docstring)."""
    iq = pd.read_csv(folder / "iq.csv")
    rows = []
    for method, group in iq.groupby("method", sort=False):
        sens, uni = group[group["module"] == "sensitometry"], group[group["module"] == "uniform"]
        low = group[group["module"] == "low_contrast"]
        row = {
            "method": method,
            "sigma_hu": uni["sigma_hu"].mean(),
            "nps_mean": uni["nps_mean"].mean(),
            "nps_peak": uni["nps_peak"].mean(),
            "abs_bias_hu": sens["hu_bias"].abs().mean(),
        }
        for hu in (-35, 340):
            rod = sens[np.isclose(sens["nominal_hu"], hu)]
            row[f"f50_{hu:+d}"] = rod["f50"].mean()
        for contrast in sorted(low["nominal_hu"].unique()):
            discs = low[np.isclose(low["nominal_hu"], contrast)]
            row[f"dnpw_{contrast:g}"] = discs["dprime_npw"].mean()
            row[f"dnpwe_{contrast:g}"] = discs["dprime_npwe"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def draw(run: Path, path: Path) -> None:
    """NPS (top) and TTF of the -35 HU rod (bottom) per method, quarter and tenth dose."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9.5, 6.5), constrained_layout=True)
    for column, dose in enumerate(DOSES):
        folder = run / f"ct-dose-{dose}" / "iq"
        if not (folder / "iq_nps.csv").is_file():
            continue
        nps, ttf = pd.read_csv(folder / "iq_nps.csv"), pd.read_csv(folder / "iq_ttf.csv")
        for method, group in nps.groupby("method", sort=False):
            style = {"color": "black", "lw": 2} if method == "noisy" else {"lw": 1.3}
            axes[0, column].plot(
                group["frequency_per_mm"], group["nps_hu2mm2"], label=method, **style
            )
        rod = ttf[np.isclose(ttf["nominal_hu"], -35)]
        for method, group in rod.groupby("method", sort=False):
            style = {"color": "black", "lw": 2} if method == "noisy" else {"lw": 1.3}
            axes[1, column].plot(group["frequency_per_mm"], group["ttf"], label=method, **style)
        axes[0, column].set(
            title=f"NPS, uniform water, {dose} dose",
            xlabel="cycles/mm",
            ylabel="NPS [HU² mm²]",
            yscale="log",
        )
        axes[1, column].set(
            title=f"TTF, -35 HU rod, {dose} dose", xlabel="cycles/mm", ylabel="TTF", ylim=(0, 1.1)
        )
        axes[1, column].axhline(0.5, color="grey", lw=0.6, ls=":")
        for ax in axes[:, column]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def print_comparisons(frame: pd.DataFrame) -> None:
    """The method table and every paired question of :func:`comparisons`, both HU windows."""
    print(method_table(frame).round(3).to_string(index=False))
    for method, reference in comparisons(frame):
        for metric in ("psnr_hu_window_db", "psnr_hu_soft_db"):
            diff = paired_difference(frame, method, reference, metric=metric)
            print(
                f"{method} - {reference} [{metric}]: {diff.mean_db:+.2f} "
                f"[{diff.ci_low_db:+.2f}, {diff.ci_high_db:+.2f}] "
                f"(n {diff.n_images} images, {diff.n_objects} patients)"
            )
    seconds = _bm3d_seconds(frame)
    if seconds:
        print(
            "BM3D seconds per image (test inputs, tuning not included): "
            + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
        )


def _bm3d_seconds(frame: pd.DataFrame) -> dict[str, float]:
    """Mean ``seconds_per_image`` of each BM3D tuning, from the rows' params JSON."""
    out = {}
    for tuning, group in frame[frame["method"] == "bm3d"].groupby("tuning"):
        values = [json.loads(p).get("seconds_per_image") for p in group["params"]]
        values = [v for v in values if v is not None]
        if values:
            out[str(tuning)] = float(np.mean(values))
    return out


def from_results(specs: list[str]) -> None:
    """``DOSE=CSV[@NAME]`` specs: each dose's CSVs concatenated (the noisy rows kept once);
    ``@NAME`` renames that file's networks (``n2n-mse-tta8`` -> ``NAME-tta8``), so a built-in
    model is not averaged with the trained seeds of the same mode."""
    by_dose: dict[str, list[pd.DataFrame]] = {}
    for spec in specs:
        dose, _, path = spec.partition("=")
        path, _, name = path.partition("@")
        frame = pd.read_csv(path)
        if name:
            networks = frame["model"].fillna("") != ""
            frame.loc[networks, "method"] = [
                name + m[len("-".join(m.split("-")[:2])) :] for m in frame.loc[networks, "method"]
            ]
        by_dose.setdefault(dose, []).append(frame)
    for dose, frames in by_dose.items():
        frame = pd.concat(frames, ignore_index=True)
        frame = frame.drop_duplicates(subset=["method", "model", "tuning", "seed", "image_index"])
        print(f"\n== {dose} dose ({len(frames)} results files)")
        print_comparisons(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", help="the reproduce ct-dose run folder")
    parser.add_argument("--figure", type=Path, default=None, help="PNG of NPS and TTF curves")
    parser.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="DOSE=CSV",
        help="results.csv of a hand-run evaluate for DOSE (repeat)",
    )
    args = parser.parse_args()
    pd.set_option("display.width", 160)
    if args.results:
        from_results(args.results)
    if args.run is None:
        return
    for dose in DOSES:
        if not (args.run / f"ct-dose-{dose}" / "results" / "results.csv").is_file():
            print(f"{dose}: not run")
            continue
        frame = load_dose(args.run, dose)
        attrs = pd.read_json(args.run / f"ct-dose-{dose}" / "experiment.json", typ="series")
        extra = attrs["dataset_attrs"]
        print(
            f"\n== {dose} dose: I0 {extra['photons_per_ray']:.4g} photons per ray, noise sd "
            f"{extra['noise_sd_hu']:.1f} HU, mean bias {extra['mean_bias_rms_hu']:.2f} HU RMS, "
            f"lag-1 correlation {extra['noise_neighbour_correlation']:.2f}"
        )
        print_comparisons(frame)
        iq_folder = args.run / f"ct-dose-{dose}" / "iq"
        if (iq_folder / "iq.csv").is_file():
            print("QA phantom:")
            print(iq_summary(iq_folder).round(3).to_string(index=False))
    if args.figure is not None:
        draw(args.run, args.figure)


if __name__ == "__main__":
    main()
