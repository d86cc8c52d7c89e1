"""``lowdose fit``: point it at your data, get it denoised with a report (no clean images)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lowdose.cli._app import (
    app,
    check_out_writable,
    check_positive_options,
    console,
    parse_fractions,
    stage_progress,
    user_errors,
)
from lowdose.core.errors import LowdoseInputError
from lowdose.physics.radon import check_backend

_MODES = ("auto", "n2n", "nb2nb", "n2v", "blend")
_DOMAINS = ("reconstruction", "projections")


def _log(text: str) -> None:
    # escaped: "pip install lowdose[bm3d]" is text, not a rich style tag
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(text)}", highlight=False)


@app.command()
def fit(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="DICOM folders/files, TIFF/PNG/.npy images or stacks, a sinogram, or "
            "projections: Data Exchange .h5, a TIFF-stack folder with flats/darks, a .mat."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for dataset, model, outputs, report.")],
    budget: Annotated[str, typer.Option(help="Training wall time, HH:MM:SS.")] = "00:10:00",
    modality: Annotated[
        str | None, typer.Option(help="ct or xray (default: from the files; DICOM CT is ct).")
    ] = None,
    angles: Annotated[
        str | None, typer.Option(help="Sinogram views: START:STOP[:N] in degrees, or a file.")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="auto, n2n, nb2nb, n2v or blend (one CT scan: built-in model + spectrum BM3D; "
            "auto picks it for one CT scan in HU)."
        ),
    ] = "auto",
    split_by: Annotated[
        str, typer.Option("--split-by", help="auto, patient, volume, slab or region.")
    ] = "auto",
    width: Annotated[int, typer.Option(min=4, help="U-Net width (channels).")] = 16,
    seed: Annotated[int, typer.Option(min=0, help="Seed of split and training.")] = 0,
    fractions: Annotated[
        str, typer.Option(help="Train,val,test fractions of objects, slices or regions.")
    ] = "0.8,0.1,0.1",
    center: Annotated[
        float | None,
        typer.Option(help="Projections: rotation axis in detector pixels; default: estimated."),
    ] = None,
    flat: Annotated[
        str | None, typer.Option(help="Projections: flat frames, a file or FILE.h5:KEY.")
    ] = None,
    dark: Annotated[
        str | None, typer.Option(help="Projections: dark frames, a file or FILE.h5:KEY.")
    ] = None,
    domain: Annotated[
        str,
        typer.Option(
            help="Projections: reconstruction (view halves reconstructed, Noise2Inverse) or "
            "projections (the sinograms denoised by nb2nb, then reconstructed)."
        ),
    ] = "reconstruction",
    backend: Annotated[
        str,
        typer.Option(
            help="Projections: who reconstructs: builtin (parallel-beam FBP, always there) or "
            "astra (the ASTRA toolbox, on a GPU when one is visible; pip install "
            "'lowdose[astra]')."
        ),
    ] = "builtin",
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Leave unreadable files out (named) instead.")
    ] = False,
    dataset_key: Annotated[
        str | None,
        typer.Option("--dataset-key", help="HDF5/.mat sinogram: the dataset holding it."),
    ] = None,
    units: Annotated[
        str,
        typer.Option(
            help="auto (CT checked to look like HU) or hu (stated); fit trains on HU as read."
        ),
    ] = "auto",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            "--accelerator",
            help="Denoising device: auto (the GPU training used), cpu, cuda:N.",
        ),
    ] = "auto",
) -> None:
    """Build a dataset from your scans, train clean-free within --budget, denoise, report."""
    with user_errors():
        check_out_writable(out)
        check_positive_options({"--width": width})
        from lowdose.evaluation.fit_compare import describe_scores  # torch-bound
        from lowdose.pipeline.fit import FitOptions, run_fit

        if mode not in _MODES:
            raise LowdoseInputError(f"--mode {mode!r} is unknown; use one of {', '.join(_MODES)}")
        if domain not in _DOMAINS:
            raise LowdoseInputError(
                f"--domain {domain!r} is unknown; use one of {', '.join(_DOMAINS)}"
            )
        check_backend(backend)
        if modality not in (None, "ct", "xray"):
            raise LowdoseInputError(f"--modality {modality!r} is unknown; use ct or xray")
        options = FitOptions(
            budget=budget,
            modality=modality,
            angles=angles,
            mode=mode,
            split_by=split_by,
            width=width,
            seed=seed,
            skip_bad=skip_bad,
            dataset_key=dataset_key,
            device=device,
            units=units,
            fractions=parse_fractions(fractions),
            center=center,
            flat=flat,
            dark=dark,
            domain=domain,
            backend=backend,
        )
        result = run_fit(inputs, out, options, log=_log, bars=stage_progress)
        for line in describe_scores(out):
            console.print(f"  {escape(line)}", highlight=False)
        console.print(
            f"Done: {len(result.denoised)} denoised file(s) in {out / 'denoised'}; "
            f"the report is {result.report}.",
            highlight=False,
        )
