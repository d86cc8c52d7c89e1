"""Rebuild lowdose's built-in models from scratch: data, dose-robust training, test metrics, pack.

One command makes every model of ``src/lowdose/models/builtin/``:

- ``xray-poisson``: ``lowdose simulate xray`` torso phantoms (the ``xray`` experiment's quick
  dataset: 10 phantoms x 24 views of 128^2, Poisson at the photon count of a 29.91 dB baseline,
  2 realisations, split by phantom);
- ``ct-awgn``: TCGA-LUAD slices from ``--ct-source`` (the ``ct24`` dataset: 256^2, AWGN at
  24.44 dB, 2 realisations, split by patient);
- ``ct-sinogram``: the same slices with Poisson noise in the sinogram and Hann FBP (360 views),
  every slice at 1, 0.5, 0.25 and 0.1 of the full-dose convention of
  :mod:`lowdose.physics.ct_dose` (2 independent scans per dose), merged into one file by
  :func:`lowdose.simulate.ct_multidose.build_multidose_ct_dataset` (split by patient).

The first two are trained by Noise2Noise with ``--dose-range 0.1:1`` (every sample re-noised
clean-free to a dose drawn from 0.1..1 of the acquired one); sinogram noise cannot be re-noised
after FBP, so ``ct-sinogram`` is trained by plain Noise2Noise on its multi-dose file. All use the
CPU-budgeted recipe at a fixed step count (width 16, residual, patch 64, batch 16, warm-up +
cosine, Adam at :func:`lowdose.training.budget.lr_for_width`, EMA 0.998), so CPU load cannot
change the result; training stores the clean-free validity range in ``best.ckpt``. The model is
then scored on its dataset's held-out test split at the acquired dose and at 0.5, 0.25 and 0.1 of
it (test inputs re-noised from the stored realisations by
:func:`lowdose.simulate.renoise.renoise_dataset`), or for ``ct-sinogram`` on the test split of
each single-dose file it was merged from (the clean images only score), and packed with a model
card (``CARD.yaml`` beside the run).

At the defaults (2,000 steps per model) the three models take ~25 CPU-minutes on 2 cores
(3 x 2,000 steps at ~5 steps/s, the four sinogram simulations ~5 min, data and tests ~3 min;
the shipped models were made by this command, each run on one torch thread beside other jobs).
Finished stages are reused: a dataset file that exists (for ``ct-sinogram`` with its single-dose
files), a run with ``finished.json`` (a run cut short resumes from ``last.ckpt``), an evaluation
with ``results.csv``; packing always runs again. ``finished.json`` is written only when a run
reached ``--max-steps``: a run that the time guard (``max_time`` 2 h) stopped earlier ends the
script with a non-zero exit and no model packed. Run from the repository root::

    .venv/bin/python benchmarks/builtin_models.py --out runs/builtin

``--smoke`` makes tiny datasets (a check that the script runs, never for the package).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from lowdose.core.atomic import atomic_write_text
from lowdose.data.dataset import DatasetInfo, read_info, read_scale
from lowdose.evaluation.evaluate import evaluate
from lowdose.models.builtin import PACKAGE_DIR, ModelCard, read_card
from lowdose.models.builtin_pack import pack_model
from lowdose.models.checkpoint import load_model
from lowdose.physics.ct_dose import FULL_DOSE_BIN_MM, FULL_DOSE_PHOTONS_PER_RAY, FULL_DOSE_VIEWS
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.ct import build_ct_dataset
from lowdose.simulate.ct_multidose import build_multidose_ct_dataset, single_dose_path
from lowdose.simulate.renoise import renoise_dataset
from lowdose.simulate.xray import build_xray_dataset
from lowdose.training.budget import RECIPE, WARMUP_FRACTION, lr_for_width
from lowdose.training.config import make_train_config
from lowdose.training.run import train

MODELS = ("xray-poisson", "ct-awgn", "ct-sinogram")
WIDTH = 16
DOSE_RANGE = (0.1, 1.0)
TEST_DOSES = (1.0, 0.5, 0.25, 0.1)
SINOGRAM_DOSES = (1.0, 0.5, 0.25, 0.1)  # of the full-dose convention (lowdose.physics.ct_dose)
DATASETS = {
    "xray-poisson": {
        "phantoms": 10,
        "angles": 24,
        "size": 128,
        "level": NoiseLevel(target_psnr_db=29.91),
    },
    "ct-awgn": {
        "noise": "awgn",
        "level": NoiseLevel(target_psnr_db=24.44),
        "size": 256,
        "split_by": "patient",
    },
    "ct-sinogram": {"size": 256, "split_by": "patient"},
}
SMOKE_DATASETS = {
    "xray-poisson": {"phantoms": 5, "angles": 4, "size": 64},
    "ct-awgn": {"size": 64},
    # n_phantoms / slices_per_phantom only apply to --ct-source phantom (a test's quick source)
    "ct-sinogram": {"size": 64, "views": 45, "n_phantoms": 4, "slices_per_phantom": 2},
}
TCGA_LICENCE = "CC BY 3.0 (TCGA-LUAD, The Cancer Imaging Archive)"
TCGA_CITATION = (
    'Albertina B. et al., "Radiology Data from The Cancer Genome Atlas Lung Adenocarcinoma '
    '[TCGA-LUAD] collection", The Cancer Imaging Archive (2016); Clark K. et al., "The Cancer '
    'Imaging Archive (TCIA)", J Digit Imaging 26(6):1045-1057 (2013).'
)


def say(name: str, text: str) -> None:
    """One progress line per stage."""
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {text}", flush=True)


def build_dataset(
    name: str, folder: Path, *, seed: int, ct_source: str, smoke: bool, workers: int = 2
) -> Path:
    """The model's training dataset ``folder/NAME[-smoke]-seedS.h5`` (built unless it exists;
    ``ct-sinogram`` also keeps its single-dose files, its test data, beside it)."""
    path = folder / f"{name}{'-smoke' if smoke else ''}-seed{seed}.h5"
    sinogram_tests = dose_test_files(name, path).values() if name == "ct-sinogram" else []
    if path.is_file() and all(p.is_file() for p in sinogram_tests):
        say(name, f"dataset {path} exists, reused")
        return path
    options = {**DATASETS[name], **(SMOKE_DATASETS[name] if smoke else {})}
    say(name, f"building {path} ({options})")
    if name == "xray-poisson":
        build_xray_dataset(path, realisations=2, seed=seed, workers=workers, **options)
    elif name == "ct-sinogram":
        build_multidose_ct_dataset(
            path,
            source=ct_source,
            dose_fractions=SINOGRAM_DOSES,
            realisations=2,
            seed=seed,
            dose_folder=folder,
            **options,
        )
    else:
        build_ct_dataset(path, source=ct_source, realisations=2, seed=seed, **options)
    return path


def dose_test_files(name: str, data: Path) -> dict[float, Path]:
    """Test data per dose: ``ct-sinogram``'s single-dose files (dose = fraction of full dose),
    else the dataset itself at 1 and its re-noised copies (dose = fraction of the acquired)."""
    if name == "ct-sinogram":
        return {dose: single_dose_path(data, dose, data.parent) for dose in SINOGRAM_DOSES}
    return {
        d: data if d == 1.0 else data.with_name(f"{data.stem}-dose{d:g}.h5") for d in TEST_DOSES
    }


def train_run(
    data: Path,
    run: Path,
    *,
    max_steps: int,
    seed: int,
    threads: int,
    dose_range: tuple[float, float] | None,
    lr: float | None = None,
) -> dict:
    """Train (or resume, or reuse) one run of the budgeted recipe; ``finished.json``'s record."""
    record = run / "finished.json"
    if record.is_file():
        say(run.name, "trained already, reused")
        return json.loads(record.read_text())
    lr = lr_for_width(WIDTH, read_info(data).attrs.modality) if lr is None else lr
    values = {
        **RECIPE,
        "data": data,
        "out": run,
        "mode": "n2n",
        "width": WIDTH,
        "lr": lr,
        "warmup_steps": round(WARMUP_FRACTION * max_steps),
        "max_steps": max_steps,
        "max_time": "02:00:00",
        "seed": seed,
        "threads": threads,
        "quiet": True,
        "dose_range": dose_range,
    }
    resume = (run / "last.ckpt").is_file()
    say(run.name, f"{'resuming' if resume else 'training'} {max_steps} steps, dose {dose_range}")
    started = time.perf_counter()
    result = train(make_train_config(values, source="benchmarks"), resume=resume)
    if result.global_step != max_steps:  # the time guard stopped it: not the recipe's model
        raise SystemExit(
            f"{run.name}: training stopped at step {result.global_step} of {max_steps}, cut by "
            f"the time guard (max_time {values['max_time']}); nothing is packed from it: rerun "
            "the same command to resume from last.ckpt"
        )
    info = {
        "global_step": result.global_step,
        "wall_s": round(time.perf_counter() - started, 1),
        "best_val_upsnr_db": result.best_val_psnr_db,
    }
    atomic_write_text(record, json.dumps(info, indent=2))
    return info


def test_metrics(name: str, data: Path, run: Path, *, seed: int) -> pd.DataFrame:
    """Mean test PSNRs of the noisy input and the model at each dose of :func:`dose_test_files`."""
    rows = []
    for dose, path in dose_test_files(name, data).items():
        if not path.is_file():  # never for ct-sinogram: build_dataset made its files
            say(name, f"re-noising the data to {dose:g} of the dose")
            renoise_dataset(data, path, dose, seed=seed)
        folder = run / f"test-dose{dose:g}"
        if not (folder / "results.csv").is_file():
            say(name, f"testing on {path.name}")
            evaluate(path, models=[run / "best.ckpt"], filters=[], out_dir=folder)
        results = pd.read_csv(folder / "results.csv")
        for method, group in results.groupby("method", sort=False):
            rows.append(
                {
                    "dose": dose,
                    "method": "input" if method == "noisy" else "output",
                    "psnr_db": group["psnr_db"].mean(),
                    "psnr_hu_window_db": group["psnr_hu_window_db"].mean(),
                    "n_images": len(group),
                    "n_objects": group["object_id"].nunique(),
                }
            )
    return pd.DataFrame(rows)


def card_metrics(table: pd.DataFrame, is_ct: bool, dose_unit: str) -> dict[str, float | str]:
    """The card's ``test_metrics``: images and objects, then PSNRs per dose (input, output);
    ``dose_unit`` names what the doses are fractions of (``dose``, ``full dose``)."""
    first = table.iloc[0]
    metrics: dict[str, float | str] = {
        "test images": str(first["n_images"]),
        "test objects": str(first["n_objects"]),
    }
    columns = {
        "psnr_db": "data_range 1",
        **({"psnr_hu_window_db": "-1000..1000 HU"} if is_ct else {}),
    }
    for dose, group in table.groupby("dose", sort=False):
        for column, scale in columns.items():
            for row in group.itertuples():
                key = f"PSNR dB ({scale}), {row.method}, {dose:g} x {dose_unit}"
                metrics[key] = round(float(getattr(row, column)), 2)
    return metrics


def split_counts(info: DatasetInfo) -> str:
    """``"a train / b val / c test"`` objects (phantoms, patients) of a dataset."""
    objects = {
        s: len(set(info.object_id[info.split == s].tolist())) for s in ("train", "val", "test")
    }
    return " / ".join(f"{n} {s}" for s, n in objects.items())


def model_card(name: str, data: Path, metrics: dict, command: str) -> ModelCard:
    """The card of a built-in model, from its dataset's attributes and its test metrics."""
    if name == "ct-sinogram":
        return sinogram_card(data, metrics, command)
    info = read_info(data)
    attrs, (images, _, size, _) = info.attrs, info.shape
    low, high = DOSE_RANGE
    trained = f"trained at {low:g}..{high:g} x that dose ("
    test = (
        "The dataset's held-out test split; lower doses re-noised from its stored noisy "
        "realisations (no clean image used to make them), scored against the clean images."
    )
    if name == "xray-poisson":
        return ModelCard(
            title="X-ray projections, Poisson noise, dose-robust (Noise2Noise)",
            description="Denoises X-ray transmission projections (pre-log, each divided by its "
            "unattenuated maximum) over a tenfold range of dose, trained without clean images.",
            modality="xray",
            noise_model="poisson (photon counting)",
            training_data=f"lowdose torso phantoms made by `lowdose simulate xray`: {images} "
            f"projections of {size}x{size}, 2 Poisson realisations each; phantoms "
            f"{split_counts(info)}, split by phantom.",
            data_licence="lowdose-made phantoms, BSD-3-Clause",
            doses=f"acquired {attrs.noise_level:.1f} photons/pixel ({attrs.achieved_psnr_db:.2f} "
            f"dB input PSNR); {trained}binomial thinning of each realisation's counts).",
            test_data=test,
            test_metrics=metrics,
            command=command,
        )
    divisor = float(read_scale(data).max())  # HU + 1024 -> the dataset scale
    return ModelCard(
        title="CT slices in HU, white Gaussian noise, dose-robust (Noise2Noise)",
        description="Denoises CT slices in HU with white (AWGN-like) noise over a tenfold range "
        "of dose, trained without clean images. Not for noise correlated by the reconstruction.",
        modality="ct",
        noise_model="gaussian (AWGN on the image)",
        training_data=f"TCGA-LUAD CT slices from the shared folder, resized to {size}x{size}: "
        f"{images} slices; patients {split_counts(info)}, split by patient.",
        data_licence=TCGA_LICENCE,
        data_citation=TCGA_CITATION,
        doses=f"acquired sigma {attrs.noise_level * divisor:.1f} HU "
        f"({attrs.achieved_psnr_db:.2f} dB input PSNR, data_range 1); {trained}added Gaussian "
        f"noise, up to sigma {attrs.noise_level * divisor / math.sqrt(low):.0f} HU).",
        test_data=test,
        test_metrics=metrics,
        command=command,
    )


def sinogram_card(data: Path, metrics: dict, command: str) -> ModelCard:
    """The card of ``ct-sinogram``: doses in photons per ray (from its single-dose files)."""
    info = read_info(data)
    doses = [read_info(p).attrs.extra for p in dose_test_files("ct-sinogram", data).values()]
    extra, (rows, _, size, _) = info.attrs.extra, info.shape
    per_dose = "; ".join(
        f"{d['dose_fraction']:g} x: I0 {d['photons_per_ray']:.3g}, noise sd "
        f"{d['noise_sd_hu']:.1f} HU"
        for d in doses
    )
    return ModelCard(
        title="CT slices in HU, sinogram (Poisson) noise through FBP, dose-robust (Noise2Noise)",
        description="Denoises filtered back-projections (Hann kernel) of CT scans whose noise is "
        "photon counting in the sinogram, from 1 to 0.1 of a routine dose, trained without clean "
        "images. Its noise is correlated by the reconstruction: for white noise use ct-awgn.",
        modality="ct",
        noise_model="sinogram: Poisson counts per detector bin and view, post-log, "
        f"FBP ({extra['filter_name']} kernel, {extra['views']} parallel views over 180 deg)",
        training_data=f"TCGA-LUAD CT slices from the shared folder, resized to {size}x{size} "
        f"({extra['pixel_mm_mean']:.2f} mm pixels): {rows // len(doses)} slices, each once per "
        f"dose ({rows} images, 2 independent scans each); patients {split_counts(info)}, split by "
        "patient. Clean reference: the noise-free FBP (scoring only).",
        data_licence=TCGA_LICENCE,
        data_citation=TCGA_CITATION,
        doses=f"trained on every slice at {len(doses)} doses, as fractions of the full-dose "
        f"convention of lowdose.physics.ct_dose ({FULL_DOSE_PHOTONS_PER_RAY:g} photons per "
        f"{FULL_DOSE_BIN_MM:g} mm detector bin and view at {FULL_DOSE_VIEWS} views; I0 = F x "
        f"{FULL_DOSE_PHOTONS_PER_RAY:g} x bin_mm x {FULL_DOSE_VIEWS} / views) and in photons "
        f"per ray (I0) at this geometry: {per_dose} (noise sd inside the body); plain "
        "Noise2Noise between the two scans of one dose (no re-noising).",
        test_data="The held-out test patients' slices of each single-dose file the training file "
        "was merged from (their own independent scans), scored against the noise-free FBP.",
        test_metrics=metrics,
        command=command,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder: data/ and runs/")
    parser.add_argument("--into", type=Path, default=PACKAGE_DIR, help="where to pack the models")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: the budget recipe's lr_for_width; "
        "ct-sinogram diverged at its 4e-3 past 4,000 steps)",
    )
    parser.add_argument("--ct-source", default="../shared/data/ct/tcga-luad")
    parser.add_argument("--smoke", action="store_true", help="tiny datasets: a run check only")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    if unknown := sorted(set(names) - set(MODELS)):
        parser.error(f"--models {','.join(unknown)}: choose from {','.join(MODELS)}")
    if args.smoke and args.into.resolve() == PACKAGE_DIR.resolve():
        parser.error("--smoke models never go into the package: pass --into a scratch folder")
    torch.set_num_threads(args.threads)
    command = shlex.join([".venv/bin/python", "benchmarks/builtin_models.py", *sys.argv[1:]])
    data = {
        n: build_dataset(
            n,
            args.out / "data",
            seed=args.seed,
            ct_source=args.ct_source,
            smoke=args.smoke,
            workers=args.threads,
        )
        for n in names
    }
    summary = []
    for name in names:
        lr_tag = "" if args.lr is None else f"-lr{args.lr:g}"
        run = args.out / "runs" / f"{data[name].stem}-steps{args.max_steps}{lr_tag}"
        sinogram = name == "ct-sinogram"  # plain N2N on several doses: no re-noising of FBPs
        info = train_run(
            data[name],
            run,
            max_steps=args.max_steps,
            seed=args.seed,
            threads=args.threads,
            lr=args.lr,
            dose_range=None if sinogram else DOSE_RANGE,
        )
        table = test_metrics(name, data[name], run, seed=args.seed)
        card_path = run / "CARD.yaml"
        metrics = card_metrics(table, name.startswith("ct-"), "full dose" if sinogram else "dose")
        card = model_card(name, data[name], metrics, command)
        fields = card.model_dump(mode="json", exclude_none=True)
        atomic_write_text(card_path, yaml.safe_dump(fields, sort_keys=False, allow_unicode=True))
        paths = pack_model(run / "best.ckpt", name, read_card(card_path), into=args.into)
        say(name, f"packed {', '.join(p.name for p in paths)} into {args.into}")
        summary.append(summary_row(name, run, info, table, paths[0], "x full" if sinogram else "x"))
    print(pd.DataFrame(summary).to_string(index=False))


def summary_row(
    name: str, run: Path, info: dict, table: pd.DataFrame, weights: Path, unit: str
) -> dict:
    """One line of the final table: steps, time, validity range, test PSNR in -> out per dose
    (``unit``: ``x`` of the acquired dose, ``x full`` of the full-dose convention)."""
    validity = load_model(run / "best.ckpt")[1].validity
    row = {
        "model": name,
        "steps": info["global_step"],
        "train s": info["wall_s"],
        "validity sigma": "none"
        if validity is None
        else f"{validity.sigma_low:.3g}..{validity.sigma_high:.3g}",
    }
    for dose, group in table.groupby("dose", sort=False):
        psnr = dict(zip(group["method"], group["psnr_db"], strict=True))
        row[f"{dose:g}{unit} in->out dB"] = f"{psnr['input']:.2f}->{psnr['output']:.2f}"
    row["MB"] = round(weights.stat().st_size / 1e6, 2)
    return row


if __name__ == "__main__":
    main()
