"""Single-acquisition training (nb2nb, n2v) against Noise2Noise at equal CPU time.

For each finished ``lowdose reproduce`` experiment folder given (quick scale: ``xray`` Poisson
projections, ``ct24`` AWGN CT, ``ct24-sinogram`` sinogram-Poisson CT), the script

1. writes ``single/one-realisation.h5``: the experiment's dataset with only realisation 0 of
   every image (what a user with ONE scan has; the ``clean`` array stays in the file for the final
   evaluation only: nb2nb and n2v never read it, see tests/training/test_single_acquisition.py);
2. trains ``n2n`` (on the two-realisation dataset), ``nb2nb`` and ``n2v`` (on the one-realisation
   file) from the experiment's ``n2n-mse`` seed-0 recipe (width, patch, batch, learning rate),
   each for the same wall time ``--budget`` on this machine with clean-free selection;
3. evaluates all three ``best.ckpt`` on the test split of the original dataset (PSNR against the
   clean images, data_range 1 on the dataset's scale; realisation 0 as input) and prints the mean
   PSNR and the paired difference to ``n2n`` and to the noisy input per image, with a 95 %
   cluster-bootstrap CI over test objects.

Run (idle machine; each training takes ``--budget`` seconds)::

    .venv/bin/python benchmarks/single_acquisition.py runs/all/xray runs/all/ct24 \
        runs/all/ct24-sinogram --budget 00:02:00

Finished trainings are reused (``single/<mode>/best.ckpt``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py

from lowdose.data.paired import paired_difference
from lowdose.data.results import summary_label
from lowdose.evaluation.evaluate import evaluate
from lowdose.training.config import load_train_config
from lowdose.training.run import train

MODES = ("n2n", "nb2nb", "n2v")


def one_realisation_copy(source: Path, target: Path) -> Path:
    """Copy ``source`` keeping realisation 0 only (attributes and other keys unchanged)."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with h5py.File(source, "r") as src, h5py.File(partial, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        dst.attrs["n_realisations"] = 1
        for key in src:
            data = src[key][:, :1] if key == "noisy" else src[key][...]
            dst.create_dataset(key, data=data)
    partial.rename(target)
    return target


def run_experiment(folder: Path, budget: str) -> None:
    base = load_train_config(folder / "train" / "n2n-mse" / "seed0" / "config.yaml")
    single = one_realisation_copy(Path(base.data.path), folder / "single" / "one-realisation.h5")
    checkpoints = {}
    for mode in MODES:
        out = folder / "single" / mode
        overrides = {
            "out": out,
            "mode": mode,
            "data": base.data.path if mode == "n2n" else single,
            "max_time": budget,
            "epochs": 100_000,
            "val_reference": None,
        }
        config = load_train_config(
            folder / "train" / "n2n-mse" / "seed0" / "config.yaml", overrides
        )
        if not (out / "best.ckpt").is_file():
            result = train(config, resume=(out / "last.ckpt").is_file())
            print(
                f"{folder.name} {mode}: {result.global_step} steps in {budget}, "
                f"best {result.monitor} {result.best_val_psnr_db:.2f} dB"
            )
        checkpoints[mode] = out / "best.ckpt"
    results = evaluate(
        Path(base.data.path),
        models=list(checkpoints.values()),
        filters=(),
        out_dir=folder / "single" / "results",
    )
    print(
        f"\n{folder.name}: test split, PSNR data_range 1 on the dataset scale, realisation 0 "
        f"as input, {budget} of training per mode (2-core CPU)"
    )
    labels = {}
    for method in sorted(set(results["method"])):
        rows = results[results["method"] == method]
        first = rows.iloc[0]
        labels[method] = summary_label(method, first["model"], first["tuning"])
        print(f"  {method:<10} {rows['psnr_db'].mean():7.2f} dB  ({len(rows)} images)")
    n2n = next(label for method, label in labels.items() if method.startswith("n2n"))
    for method, label in labels.items():
        if method.startswith(("nb2nb", "n2v")):
            for reference in (n2n, labels["noisy"]):
                diff = paired_difference(results, label, reference)
                print(
                    f"  {label} - {reference}: {diff.mean_db:+.2f} dB [{diff.ci_low_db:+.2f}, "
                    f"{diff.ci_high_db:+.2f}] ({diff.n_objects} objects, {diff.n_images} images)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, nargs="+", help="runs/<name>/<experiment>")
    parser.add_argument("--budget", default="00:02:00", help="training wall time per mode")
    args = parser.parse_args()
    for folder in args.experiments:
        run_experiment(folder, args.budget)


if __name__ == "__main__":
    main()
