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

Run::

    .venv/bin/python benchmarks/ct_dose.py runs/ct-dose --figure docs/figures/ct-dose-iq.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from lowdose.data.paired import paired_difference
from lowdose.data.results import summary_label

DOSES = ("quarter", "tenth")
METRICS = (("psnr_hu_window_db", "PSNR -1000..1000 HU"), ("psnr_hu_soft_db", "PSNR -160..240 HU"),
           ("ssim_wang_hu_window", "SSIM Wang"))  # fmt: skip


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
    frame = frame.assign(label=[summary_label(m, str(d) if isinstance(d, str) else "", t)
                                for m, d, t in zip(frame["method"], frame["model"].fillna(""),
                                                   frame["tuning"], strict=True)])  # fmt: skip
    rows = []
    for label, group in frame.groupby("label", sort=False):
        per_seed = group.groupby("seed")[[m for m, _ in METRICS]].mean()
        row = {"method": label, "n_images": group["image_index"].nunique(),
               "n_patients": group["object_id"].nunique(), "n_seeds": len(per_seed)}  # fmt: skip
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
    split = next((x for x in labels if x.startswith("n2n-mse-split")), None)
    n2c = next((x for x in labels if x.startswith("n2c-mse")), None)
    wanted = [(net, "noisy"), (net, "bm3d (oracle)"), (net, "bm3d (blind-sigma)"),
              (net, "nlm (blind-sigma)"), (split, "bm3d (blind-sigma)"), (net, split),
              (n2c, net), ("bm3d (oracle)", "bm3d (blind-sigma)")]  # fmt: skip
    return [(a, b) for a, b in wanted if a in labels and b in labels]


def iq_summary(folder: Path) -> pd.DataFrame:
    """One row per method of the QA phantom's iq.csv (see the module docstring)."""
    iq = pd.read_csv(folder / "iq.csv")
    rows = []
    for method, group in iq.groupby("method", sort=False):
        sens, uni = group[group["module"] == "sensitometry"], group[group["module"] == "uniform"]
        low = group[group["module"] == "low_contrast"]
        row = {"method": method, "sigma_hu": uni["sigma_hu"].mean(),
               "nps_mean": uni["nps_mean"].mean(), "nps_peak": uni["nps_peak"].mean(),
               "abs_bias_hu": sens["hu_bias"].abs().mean()}  # fmt: skip
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
            axes[0, column].plot(group["frequency_per_mm"], group["nps_hu2mm2"], label=method,
                                 **style)  # fmt: skip
        rod = ttf[np.isclose(ttf["nominal_hu"], -35)]
        for method, group in rod.groupby("method", sort=False):
            style = {"color": "black", "lw": 2} if method == "noisy" else {"lw": 1.3}
            axes[1, column].plot(group["frequency_per_mm"], group["ttf"], label=method, **style)
        axes[0, column].set(title=f"NPS, uniform water, {dose} dose", xlabel="cycles/mm",
                            ylabel="NPS [HU² mm²]", yscale="log")  # fmt: skip
        axes[1, column].set(title=f"TTF, -35 HU rod, {dose} dose", xlabel="cycles/mm",
                            ylabel="TTF", ylim=(0, 1.1))  # fmt: skip
        axes[1, column].axhline(0.5, color="grey", lw=0.6, ls=":")
        for ax in axes[:, column]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the reproduce ct-dose run folder")
    parser.add_argument("--figure", type=Path, default=None, help="PNG of NPS and TTF curves")
    args = parser.parse_args()
    pd.set_option("display.width", 160)
    for dose in DOSES:
        if not (args.run / f"ct-dose-{dose}" / "results" / "results.csv").is_file():
            print(f"{dose}: not run")
            continue
        frame = load_dose(args.run, dose)
        attrs = pd.read_json(args.run / f"ct-dose-{dose}" / "experiment.json", typ="series")
        extra = attrs["dataset_attrs"]
        print(f"\n== {dose} dose: I0 {extra['photons_per_ray']:.4g} photons per ray, noise sd "
              f"{extra['noise_sd_hu']:.1f} HU, mean bias {extra['mean_bias_rms_hu']:.2f} HU RMS, "
              f"lag-1 correlation {extra['noise_neighbour_correlation']:.2f}")  # fmt: skip
        print(method_table(frame).round(3).to_string(index=False))
        for method, reference in comparisons(frame):
            for metric in ("psnr_hu_window_db", "psnr_hu_soft_db"):
                diff = paired_difference(frame, method, reference, metric=metric)
                print(f"{method} - {reference} [{metric}]: {diff.mean_db:+.2f} "
                      f"[{diff.ci_low_db:+.2f}, {diff.ci_high_db:+.2f}] "
                      f"(n {diff.n_images} images, {diff.n_objects} patients)")  # fmt: skip
        iq_folder = args.run / f"ct-dose-{dose}" / "iq"
        if (iq_folder / "iq.csv").is_file():
            print("QA phantom:")
            print(iq_summary(iq_folder).round(3).to_string(index=False))
    if args.figure is not None:
        draw(args.run, args.figure)


if __name__ == "__main__":
    main()
