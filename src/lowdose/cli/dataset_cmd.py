"""``lowdose dataset from-repeats | from-sinogram | score-pairs``: users' own noisy data."""

from __future__ import annotations

from pathlib import Path

import typer

from lowdose.cli._app import console, dataset_app, user_errors


def _fractions(text: str) -> tuple[float, ...]:
    from lowdose.core.errors import LowdoseInputError

    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise LowdoseInputError(f"--fractions {text!r}: use e.g. 0.8,0.1,0.1") from None


@dataset_app.command("from-repeats")
def from_repeats(
    inputs: list[Path] = typer.Argument(
        ..., help="Two or more acquisitions: DICOM folders/files, TIFF or .npy stacks."
    ),
    out: Path = typer.Option(..., "--out", help="Dataset file (.h5) to write."),
    match: str = typer.Option("position", help="Pair slices by DICOM position or by order."),
    objects: str = typer.Option("auto", help="Split unit: auto (patient/file) or image."),
    fractions: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions of objects."),
    seed: int = typer.Option(0, help="Seed of the split."),
) -> None:
    """Build a dataset (noisy, no clean) from repeated acquisitions; print the noise variance."""
    with user_errors():
        from lowdose.owndata.repeats import build_from_repeats

        with console.status("reading and pairing acquisitions"):
            summary = build_from_repeats(
                inputs, out, match=match, fractions=_fractions(fractions), seed=seed,
                objects=objects,
            )  # fmt: skip
        unit = "HU^2" if summary.raw_units == "hu" else "(units)^2"
        console.print(
            f"[green]wrote[/] {summary.path}: {summary.n_images} images x "
            f"{summary.n_realisations} realisations, {summary.shape_hw[0]}x{summary.shape_hw[1]}, "
            f"{summary.n_objects} objects, split {summary.splits}",
            highlight=False,
        )
        console.print(
            f"pair-estimated noise variance Var(y1-y2)/2: {summary.noise_variance_raw:.5g} "
            f"{unit} (sd {summary.noise_variance_raw**0.5:.4g}); {summary.noise_variance:.4g} on "
            f"the dataset scale (divisor {summary.divisor:.6g}, offset {summary.offset:g})",
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
    filter_name: str = typer.Option("ramp", "--filter", help="FBP filter: ramp or hann."),
    size: int = typer.Option(None, help="Reconstruction side (default n_det / sqrt 2)."),
    dataset_key: str = typer.Option(None, help="HDF5 dataset holding the sinogram."),
    flat: Path = typer.Option(None, help="Open-beam counts: inputs are pre-log counts."),
    dark: Path = typer.Option(None, help="Beam-off counts (with --flat)."),
    clean: list[Path] = typer.Option(
        None, help="Noise-free sinograms, one per input (testing only; stored as clean)."
    ),
    objects: str = typer.Option("file", help="Split unit: file (volume) or image (slice)."),
    fractions: str = typer.Option("0.8,0.1,0.1", help="Train,val,test fractions of objects."),
    seed: int = typer.Option(0, help="Seed of the split."),
) -> None:
    """Split each scan's views into K subsets, FBP each: K noisy images with independent noise."""
    with user_errors():
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

        from lowdose.core.errors import LowdoseInputError
        from lowdose.owndata.split_sinogram import build_from_sinogram

        if dark is not None and flat is None:
            raise LowdoseInputError("--dark needs --flat (pre-log counts need the open beam)")
        columns = (*Progress.get_default_columns()[:1], BarColumn(), TaskProgressColumn(),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("reconstructing", total=len(sinograms))
            summary = build_from_sinogram(
                sinograms, out, angles_deg=angles, splits=splits, filter_name=filter_name,
                output_size=size, dataset_key=dataset_key, flat=flat, dark=dark,
                clean_sinogram_paths=clean or None, fractions=_fractions(fractions), seed=seed,
                objects=objects, on_file_done=lambda n: progress.update(task, completed=n),
            )  # fmt: skip
        console.print(
            f"[green]wrote[/] {summary.path}: {summary.n_images} images x {summary.splits} view "
            f"subsets ({'/'.join(map(str, summary.views_per_split))} views), "
            f"{summary.shape_hw[0]}x{summary.shape_hw[1]}, split {summary.split_counts}"
            f"{', clean = full-view FBP of the clean sinogram' if summary.has_clean else ''}",
            highlight=False,
        )
        console.print(
            f"noise variance of one subset image Var(y1-y2)/2: {summary.noise_variance:.4g} on "
            f"the dataset scale (divisor {summary.divisor:.6g})",
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
        import numpy as np

        from lowdose.data.dataset import load_split
        from lowdose.inference.predict import predict
        from lowdose.physics.noise_estimation import clean_free_metrics, pair_noise_variance
        from lowdose.training.run import load_model

        arrays = load_split(data, split)
        network, _meta = load_model(model)
        with console.status(f"denoising {len(arrays.noisy)} images twice"):
            first = predict(network, arrays.noisy[:, 0])
            second = predict(network, arrays.noisy[:, 1])
        s2 = np.array([pair_noise_variance(image[:2])[0] for image in arrays.noisy])
        scores = clean_free_metrics(
            arrays.noisy[:, 0], arrays.noisy[:, 1], first, second, noise_variance=s2
        )
        corrected = scores["mean_psnr_vs_other_realisation_corrected_db"]
        console.print(
            f"{split}: {len(s2)} images, input noise variance {np.mean(s2):.4g} (pair estimate); "
            f"residual noise variance Var(f(y1)-f(y2))/2 "
            f"{scores['mean_residual_noise_variance']:.4g}; noise reduction x"
            f"{scores['mean_noise_reduction_factor']:.1f}; PSNR vs the other realisation "
            f"corrected for its noise variance {corrected:.2f} dB "
            f"(uncorrected {scores['mean_psnr_vs_other_realisation_raw_db']:.2f} dB); no clean "
            "image was used",
            highlight=False,
        )
