"""Real instrument scans through ``lowdose fit``: clean-free scores against the issue's targets.

Runs (or reuses) ``lowdose fit SCAN --out OUT/NAME --budget B`` on each scan, then reads what
fit saved (``compare/scores.csv``, ``compare/images.npz``, the dataset's attributes) and prints,
per scan, on the test split of its view-split dataset (dataset scale: FBP line integral per
pixel over the dataset divisor; no clean image exists):

* flat-region sd of the noisy half-view FBP, the network and blind BM3D, and the reduction;
* pair PSNR (data_range 1): each method's output of one view half against the other half's
  noisy FBP, raw; it ranks methods as uPSNR would and is defined for these halves, whose
  difference holds complementary streaks as well as noise (uPSNR printed where defined);
* edge width: 10-90 % rise (px) of the mean profile across the input's strongest edges;
* the targets: network ahead of blind BM3D on the pair score, flat-region noise down >= 50 %,
  edge width within 10 % of the noisy FBP's.

``--figure PATH`` draws one test slice per scan: noisy, network, blind BM3D, noisy - network.

    .venv/bin/python benchmarks/projection_scans.py --out runs/proj2 --budget 00:03:00 \\
        --domain reconstruction,projections --figure docs/figures/projection-scans.png

Projection-domain fits (``--domain projections``) go to ``OUT/NAME-proj``; their network row is
``network-projections`` (the even views denoised, then reconstructed).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "projections"
SCANS = {
    "savu-image-test": SHARED / "savu-image-test",
    "sino_basalt": SHARED / "ccpi-basalt-sinogram" / "sino_basalt.mat",
    "RealDataDend": SHARED / "tomobar-dendrite-sinogram" / "RealDataDend.mat",
}
METHODS = ("noisy", "network", "bm3d-blind", "nlm-blind", "bm3d-psd")


def run_fit(name: str, scan: Path, out: Path, budget: str, domain: str) -> None:
    """``lowdose fit`` unless ``out/name/fit.json`` exists (a finished fit)."""
    folder = out / name
    if (folder / "fit.json").is_file():
        return
    lowdose = str(Path(sys.executable).with_name("lowdose"))  # the venv's command
    command = [lowdose, "fit", str(scan), "--out", str(folder)]
    subprocess.run([*command, "--budget", budget, "--domain", domain], check=True)


def folder_name(name: str, domain: str) -> str:
    """Reconstruction-domain fits in ``OUT/NAME``, projection-domain ones in ``OUT/NAME-proj``."""
    return name if domain == "reconstruction" else f"{name}-proj"


def network_method(s: dict) -> str:
    """The network's row: ``network`` or ``network-projections``."""
    return "network" if "network" in s else "network-projections"


def scores(folder: Path) -> dict[str, dict[str, float]]:
    """``method -> {column: value}`` from ``compare/scores.csv``."""
    with open(folder / "compare" / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {r["method"]: {k: float(v) for k, v in r.items() if k != "method"} for r in rows}


def dataset_notes(folder: Path) -> str:
    """The rotation centre the dataset build estimated or was given, in detector pixels."""
    with h5py.File(folder / "dataset" / "dataset.h5", "r") as handle:
        centre = handle.attrs.get("rotation_centre_px")
    return f"{float(str(centre).split(',')[0]):.2f} px" if centre is not None else "n/a"


def table(out: Path, names: list[str]) -> list[str]:
    """Markdown rows: the scores and the three targets' verdicts per scan."""
    lines = [
        "| scan | centre | flat sd noisy / network / BM3D | network reduction | pair PSNR "
        "network / BM3D / NLM [dB] | edge width noisy / network / BM3D [px] | targets |",
        "|---|---|---|---:|---|---|---|",
    ]
    for name in names:
        folder = out / name
        s = scores(folder)
        noisy, net, bm3d = s["noisy"], s[network_method(s)], s["bm3d-blind"]
        reduction = 1 - net["flat_sigma"] / noisy["flat_sigma"]
        edge_ratio = net["edge_width_px"] / noisy["edge_width_px"]
        ahead = net["pair_psnr_db"] - bm3d["pair_psnr_db"]
        verdicts = [
            f"pair {'met' if ahead > 0 else 'missed'} ({ahead:+.2f} dB vs BM3D)",
            f"noise {'met' if reduction >= 0.5 else 'missed'} ({reduction:.0%})",
            f"edge {'met' if abs(edge_ratio - 1) <= 0.1 else 'missed'} ({edge_ratio - 1:+.0%})",
        ]
        lines.append(
            f"| {name} | {dataset_notes(folder)} | {noisy['flat_sigma']:.4g} / "
            f"{net['flat_sigma']:.4g} / {bm3d['flat_sigma']:.4g} | {reduction:.0%} | "
            f"{net['pair_psnr_db']:.2f} / {bm3d['pair_psnr_db']:.2f} / "
            f"{s['nlm-blind']['pair_psnr_db']:.2f} | {noisy['edge_width_px']:.2f} / "
            f"{net['edge_width_px']:.2f} / {bm3d['edge_width_px']:.2f} | {'; '.join(verdicts)} |"
        )
    return lines


def figure(out: Path, names: list[str], path: Path) -> None:
    """One test slice per scan: noisy, network, blind BM3D, noisy - network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ("noisy half-view FBP", "network", "BM3D (blind)", "noisy - network")
    fig, axes = plt.subplots(len(names), 4, figsize=(16, 4.2 * len(names)), squeeze=False)
    for row, name in zip(axes, names, strict=True):
        with np.load(out / name / "compare" / "images.npz") as saved:
            k = len(saved["noisy"]) // 2  # the middle test image
            network = "network" if "network" in saved.files else "network-projections"
            noisy, net, bm3d = saved["noisy"][k], saved[network][k], saved["bm3d-blind"][k]
        low, high = np.percentile(noisy, [1, 99])
        residual = noisy - net
        spread = float(np.percentile(np.abs(residual), 99)) or 1.0
        for ax, image, title in zip(row, (noisy, net, bm3d, residual), titles, strict=True):
            if title.startswith("noisy -"):
                ax.imshow(image, cmap="gray", vmin=-spread, vmax=spread)
            else:
                ax.imshow(image, cmap="gray", vmin=low, vmax=high)
            ax.set_title(f"{name}: {title}", fontsize=10)
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80)
    plt.close(fig)
    # every panel is grey: one 8-bit channel keeps the 24 noisy panels at ~1.3 MB, not 2.5
    Image.open(buffer).convert("L").save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="one folder per scan inside")
    parser.add_argument("--budget", default="00:03:00", help="fit's --budget (HH:MM:SS)")
    parser.add_argument("--scans", default=",".join(SCANS), help="comma-separated names")
    parser.add_argument("--no-run", action="store_true", help="only read finished fits")
    parser.add_argument(
        "--domain",
        default="reconstruction",
        help="reconstruction, projections, or both (comma-separated)",
    )
    parser.add_argument("--figure", type=Path, help="write the one-slice figure here")
    args = parser.parse_args(argv)
    scans = [n for n in args.scans.split(",") if n]
    names = []
    for domain in args.domain.split(","):
        for name in scans:
            if not args.no_run:
                run_fit(folder_name(name, domain), SCANS[name], args.out, args.budget, domain)
            names.append(folder_name(name, domain))
    print("\n".join(table(args.out, names)))
    for name in names:
        record = json.loads((args.out / name / "fit.json").read_text())
        print(f"{name}: budget {record['options']['budget']}, seed {record['options']['seed']}")
    if args.figure:
        figure(args.out, names, args.figure)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
