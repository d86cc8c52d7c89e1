"""The CT targets against the strongest classical baselines: each figure, its interval, met or not.

Reads saved ``lowdose evaluate`` tables (``results.csv``) of one simulated dose and prints, per
target, the paired per-slice difference in the -1000..1000 HU window (data_range 2000 HU), its
95 % cluster-bootstrap CI over patients (:func:`lowdose.data.paired.paired_difference`, 2000
draws, seed 0) and the verdict:

- **two scans**: clean-free N2N (mean over its seeds; plain and ``--tta 8``) >= **oracle BM3D**
  + 1.0 dB, the oracle taken per slice as the better against clean of BM3D given the noise
  spectrum at its best strength (``oracle-psd``) and BM3D with its best white sigma (``oracle``);
- **split scan** (one scan, views split in halves, Noise2Inverse): N2N >= BM3D given the
  spectrum measured from the data (``blind-psd``) + 1.0 dB.

Commands (quarter dose; the evaluate runs of docs/results.md, "CT at a physical dose against the
strongest clean-free baseline")::

    .venv/bin/python benchmarks/ct_targets.py \\
        --filters runs/eval/quarter-bm3d/results.csv \\
        --filters runs/eval/quarter-bpsd/results.csv \\
        --two-scans runs/eval/quarter-n2n/results.csv \\
        --split-scan runs/eval/quarter-split/results.csv

One-scan targets: ``benchmarks/one_scan.py``; white-noise ct24: ``benchmarks/cpu_budget.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lowdose.data.paired import paired_difference

METRIC = "psnr_hu_window_db"
TARGET_DB = 1.0


def oracle_bm3d(filters: pd.DataFrame) -> pd.DataFrame:
    """Per slice, the better (against clean) of the white-sigma and spectrum BM3D oracles."""
    rows = filters[(filters["method"] == "bm3d") & filters["tuning"].isin(["oracle", "oracle-psd"])]
    if rows.empty:
        raise SystemExit("--filters needs bm3d rows tuned 'oracle' and/or 'oracle-psd'")
    if rows["tuning"].nunique() < 2:
        print(f"note: only the {rows['tuning'].iloc[0]} BM3D oracle is in --filters")
    best = rows.loc[rows.groupby("image_index")[METRIC].idxmax()].copy()
    best["tuning"] = "oracle-best"
    return best


def networks(path: Path, name: str) -> pd.DataFrame:
    """A model evaluation's network rows, renamed ``name`` / ``name-tta8``."""
    frame = pd.read_csv(path)
    frame = frame[frame["method"] != "noisy"].copy()
    frame["method"] = [
        f"{name}-tta8" if method.endswith("-tta8") else name for method in frame["method"]
    ]
    frame["model"] = ""
    frame["tuning"] = "none"
    return frame


def verdict(mean_db: float) -> str:
    """``met`` or ``missed by X.XX`` against :data:`TARGET_DB`."""
    return "met" if mean_db >= TARGET_DB else f"missed by {TARGET_DB - mean_db:.2f}"


def report(table: pd.DataFrame, pairs: list[tuple[str, str, str]]) -> None:
    """Print each ``(title, method, reference)`` difference with its CI and verdict."""
    means = table.groupby(["method", "tuning"])[METRIC].mean()
    print(f"means, -1000..1000 HU window [dB] ({table['image_index'].nunique()} slices):")
    for (method, tuning), value in means.items():
        print(f"  {method} ({tuning}): {value:.2f}")
    for title, method, reference in pairs:
        diff = paired_difference(table, method, reference, metric=METRIC)
        print(
            f"{title}: {method} - {reference} = {diff.mean_db:+.2f} "
            f"[{diff.ci_low_db:+.2f}, {diff.ci_high_db:+.2f}] dB ({diff.n_images} slices, "
            f"{diff.n_objects} patients); target >= +{TARGET_DB:.1f}: {verdict(diff.mean_db)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--filters",
        type=Path,
        action="append",
        required=True,
        help="evaluate results.csv with BM3D rows (repeat; later tables win per tuning)",
    )
    parser.add_argument("--two-scans", type=Path, default=None, help="N2N on two scans")
    parser.add_argument("--split-scan", type=Path, default=None, help="N2N on view halves")
    args = parser.parse_args()
    filters = pd.concat([pd.read_csv(p) for p in args.filters], ignore_index=True)
    # a later table's rows of one tuning replace an earlier one's (e.g. a re-run blind-psd)
    filters = filters.drop_duplicates(["method", "tuning", "image_index"], keep="last")
    noisy = filters[filters["method"] == "noisy"].drop_duplicates("image_index")
    frames = [noisy, filters[filters["method"] != "noisy"], oracle_bm3d(filters)]
    pairs = []
    for path, name, reference, title in (
        (args.two_scans, "n2n-two-scans", "bm3d (oracle-best)", "two scans vs oracle BM3D"),
        (args.split_scan, "n2n-split-scan", "bm3d (blind-psd)", "split scan vs blind-psd BM3D"),
    ):
        if path is not None:
            frames.append(networks(path, name))
            pairs += [(title, name, reference), (title, f"{name}-tta8", reference)]
    report(pd.concat(frames, ignore_index=True), pairs)


if __name__ == "__main__":
    main()
