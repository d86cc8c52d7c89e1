"""``lowdose dataset from-repeats, from-sinogram, from-single, score-pairs``: users' own data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from lowdose.cli._app import (
    check_out_writable,
    check_positive_options,
    console,
    dataset_app,
    parse_fractions,
    stage_progress,
    user_errors,
)
from lowdose.core.errors import LowdoseInputError
from lowdose.owndata.projection_scan import build_from_projections
from lowdose.owndata.repeats import build_from_repeats
from lowdose.owndata.single import build_from_single
from lowdose.owndata.split_sinogram import build_from_sinogram

SPLIT_BY_HELP = (
    "How to split: auto (patient if there are enough, else slabs of slices, else tiles), "
    "patient, volume, slab or region."
)


@dataset_app.command("from-repeats")
def from_repeats(
    inputs: list[Path] = typer.Argument(
        ..., help="Two or more acquisitions: DICOM folders/files, TIFF or .npy stacks."
    ),
    out: Path = typer.Option(..., "--out", help="Dataset file (.h5) to write."),
    match: str = typer.Option("position", help="Pair slices by DICOM position or by order."),
    objects: str = typer.Option("auto", help="Split unit: auto (patient/file) or image."),
    split_by: str = typer.Option("auto", "--split-by", help=SPLIT_BY_HELP),
    fractions: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions of objects."),
    seed: int = typer.Option(0, help="Seed of the split."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Leave unreadable files out (named) instead of stopping."
    ),
) -> None:
    """Build a dataset (noisy, no clean) from repeated acquisitions; print the noise variance."""
    with user_errors():
        check_out_writable(out)
        with console.status("reading and pairing acquisitions"):
            summary = build_from_repeats(
                inputs,
                out,
                match=match,
                fractions=parse_fractions(fractions),
                seed=seed,
                split_by=split_by,
                objects=objects,
                skip_bad=skip_bad,
            )
        unit = "HU^2" if summary.attrs.raw_units == "hu" else "(units)^2"
        variance, variance_raw = summary.details.noise_variance, summary.details.noise_variance_raw
        console.print(summary.describe(), highlight=False)
        console.print(
            f"pair-estimated noise variance Var(y1-y2)/2: {variance_raw:.5g} "
            f"{unit} (sd {variance_raw**0.5:.4g}); {variance:.4g} on the dataset scale "
            f"(divisor {summary.divisor:.6g}, offset {summary.attrs.scaling_offset:g})",
            highlight=False,
        )


@dataset_app.command("from-sinogram")
def from_sinogram(
    sinograms: list[Path] = typer.Argument(..., help=".npy / TIFF / HDF5 sinograms."),
    angles: str = typer.Option(
        ..., "--angles", help="Angles file (.npy/.txt) or START:STOP[:N] in degrees."
    ),
    out: Path = typer.Option(..., "--out", help="Dataset file (.h5) to write."),
    splits: int = typer.Option(2, help="Disjoint interleaved view subsets (realisations)."),
    filter_name: str = typer.Option(
        "ramp",
        "--kernel",
        "--filter",
        help="FBP kernel: ramp, hann or shepp-logan (--filter is the same option).",
    ),
    size: int = typer.Option(None, help="Reconstruction side (default n_det / sqrt 2)."),
    dataset_key: str = typer.Option(None, help="HDF5 dataset holding the sinogram."),
    flat: Path = typer.Option(None, help="Open-beam counts: inputs are pre-log counts."),
    dark: Path = typer.Option(None, help="Beam-off counts (with --flat)."),
    clean: list[Path] = typer.Option(
        None, help="Noise-free sinograms, one per input (testing only; stored as clean)."
    ),
    objects: str = typer.Option("file", help="Split unit: file (volume) or image (slice)."),
    split_by: str = typer.Option("auto", "--split-by", help=SPLIT_BY_HELP),
    fractions: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions of objects."),
    seed: int = typer.Option(0, help="Seed of the split."),
) -> None:
    """Split each scan's views into K subsets, FBP each: K noisy images with independent noise."""
    with user_errors():
        check_out_writable(out)
        check_positive_options({"--splits": splits, "--size": size})
        if dark is not None and flat is None:
            raise LowdoseInputError("--dark needs --flat (pre-log counts need the open beam)")
        with stage_progress("files") as progress:
            summary = build_from_sinogram(
                sinograms,
                out,
                angles_deg=angles,
                splits=splits,
                filter_name=filter_name,
                output_size=size,
                dataset_key=dataset_key,
                flat=flat,
                dark=dark,
                clean_sinogram_paths=clean or None,
                fractions=parse_fractions(fractions),
                seed=seed,
                split_by=split_by,
                objects=objects,
                progress=progress,
            )
        console.print(summary.describe(), highlight=False)
        views = "/".join(map(str, summary.details.views_per_split))
        console.print(
            f"{summary.n_realisations} view subsets ({views} views)"
            f"{'; clean = full-view FBP of the clean sinogram' if summary.has_clean else ''}; "
            f"noise variance of one subset image Var(y1-y2)/2: "
            f"{summary.details.noise_variance:.4g} on the dataset scale "
            f"(divisor {summary.divisor:.6g})",
            highlight=False,
        )


@dataset_app.command("from-projections")
def from_projections(
    scans: list[Path] = typer.Argument(
        ...,
        help="Data Exchange .h5 (/exchange/data, data_white, data_dark, theta), a folder of TIFF "
        "projections with flat*/dark* frames (angles.txt), or .mat/.npy/.h5 sinograms.",
    ),
    out: Path = typer.Option(..., "--out", help="Dataset file (.h5) to write."),
    angles: str = typer.Option(
        None, "--angles", help="Only where the file has none: START:STOP[:N] degrees or a file."
    ),
    center: float = typer.Option(
        None, "--center", help="Rotation axis in detector pixels (0-based); default: estimated."
    ),
    flat: str = typer.Option(None, help="Flat (open-beam) frames: a file, or FILE.h5:KEY."),
    dark: str = typer.Option(None, help="Dark (beam-off) frames: a file, or FILE.h5:KEY."),
    dataset_key: str = typer.Option(None, help="HDF5/.mat dataset holding the projections."),
    splits: int = typer.Option(2, help="Disjoint interleaved view subsets (realisations)."),
    filter_name: str = typer.Option(
        "ramp", "--kernel", "--filter", help="FBP kernel: ramp, hann or shepp-logan."
    ),
    size: int = typer.Option(None, help="Reconstruction side (default n_det / sqrt 2)."),
    split_by: str = typer.Option("auto", "--split-by", help=SPLIT_BY_HELP),
    fractions: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions."),
    seed: int = typer.Option(0, help="Seed of the split."),
    backend: str = typer.Option(
        "builtin",
        help="Who reconstructs: builtin (parallel-beam FBP) or astra (the ASTRA toolbox, on a "
        "GPU when one is visible; pip install 'lowdose[astra]').",
    ),
) -> None:
    """Projections as instruments write them: flat/dark corrected, centred, views split in K."""
    with user_errors():
        check_out_writable(out)
        check_positive_options({"--splits": splits, "--size": size})
        with stage_progress("files") as progress:
            summary = build_from_projections(
                scans,
                out,
                angles=angles,
                center=center,
                flat=flat,
                dark=dark,
                dataset_key=dataset_key,
                splits=splits,
                filter_name=filter_name,
                output_size=size,
                fractions=parse_fractions(fractions),
                seed=seed,
                split_by=split_by,
                progress=progress,
                log=lambda line: console.print(f"  {escape(line)}", highlight=False),
                backend=backend,
            )
        console.print(summary.describe(), highlight=False)


@dataset_app.command("from-single")
def from_single(
    inputs: list[Path] = typer.Argument(
        ..., help="One noisy acquisition each: DICOM folders/files, TIFF/.npy stacks, PNG/TIFF."
    ),
    out: Path = typer.Option(..., "--out", help="Dataset file (.h5) to write."),
    split_by: str = typer.Option("auto", "--split-by", help=SPLIT_BY_HELP),
    fractions: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions."),
    seed: int = typer.Option(0, help="Seed of the split."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Leave unreadable files out (named) instead of stopping."
    ),
) -> None:
    """Build a dataset (noisy, one realisation, no clean) for nb2nb / n2v training."""
    with user_errors():
        check_out_writable(out)
        with console.status("reading the acquisition"):
            summary = build_from_single(
                inputs,
                out,
                fractions=parse_fractions(fractions),
                seed=seed,
                split_by=split_by,
                skip_bad=skip_bad,
            )
        unit = "HU" if summary.attrs.raw_units == "hu" else "units"
        console.print(summary.describe(), highlight=False)
        console.print(
            f"single-image noise sigma {summary.details.noise_sigma_raw:.4g} {unit} "
            f"({summary.details.noise_sigma:.4g} on the dataset scale, divisor "
            f"{summary.divisor:.6g}; Immerkaer's estimator, low for correlated noise)",
            highlight=False,
        )


@dataset_app.command("score-pairs")
def score_pairs(
    data: Path = typer.Option(..., "--data", help="Dataset with >= 2 realisations."),
    model: Path = typer.Option(..., "--model", help="RUN_DIR or checkpoint."),
    split: str = typer.Option("test", help="Split to score."),
) -> None:
    """Score a denoiser without clean images: residual noise, reduction, corrected PSNR."""
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.evaluation.pair_scores import score_pairs as run_score_pairs

        with stage_progress() as progress:
            result = run_score_pairs(data, model, split=split, progress=progress)
        scores = result.scores
        corrected = scores["mean_psnr_vs_other_realisation_corrected_db"]
        console.print(
            f"{result.split}: {result.n_images} images, input noise variance "
            f"{result.input_noise_variance:.4g} (pair estimate); "
            f"residual noise variance Var(f(y1)-f(y2))/2 "
            f"{scores['mean_residual_noise_variance']:.4g}; noise reduction x"
            f"{scores['mean_noise_reduction_factor']:.1f}; PSNR vs the other realisation "
            f"corrected for its noise variance {corrected:.2f} dB "
            f"(uncorrected {scores['mean_psnr_vs_other_realisation_raw_db']:.2f} dB); no clean "
            "image was used",
            highlight=False,
        )
