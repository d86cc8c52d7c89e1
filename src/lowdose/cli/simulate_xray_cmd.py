"""``lowdose simulate xray``: torso phantoms -> projections -> Poisson realisations -> HDF5."""

from __future__ import annotations

from pathlib import Path

import typer

from lowdose.cli._app import (
    check_out_writable,
    check_positive_options,
    console,
    simulate_app,
    stage_progress,
    user_errors,
)
from lowdose.core.errors import LowdoseInputError
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.xray import PAPER_XRAY_LEVEL, build_xray_dataset
from lowdose.simulate.xray_preview import write_preview


@simulate_app.command("xray")
def simulate_xray(
    out: Path = typer.Option(Path("data/xray.h5"), "--out", help="Dataset file to write (.h5)."),
    phantoms: int = typer.Option(100, help="Random torso phantoms (paper: 100)."),
    angles: int = typer.Option(
        63,
        help="Views per phantom (paper: 63): over [0, 180) deg for parallel beam, so no view is "
        "the mirror image of another; over [0, 360) for cone beam.",
    ),
    size: int = typer.Option(256, help="Projection side in pixels (phantom is size^3)."),
    realisations: int = typer.Option(2, help="Independent noisy copies per projection."),
    target_psnr: float = typer.Option(
        None, "--target-psnr", help="Mean baseline PSNR to solve the dose for (default 29.91)."
    ),
    photons: float = typer.Option(
        None, "--photons", help="Photons per pixel instead of --target-psnr."
    ),
    geometry: str = typer.Option("parallel", help="parallel or cone (C-arm flat panel)."),
    seed: int = typer.Option(
        0, help="Root seed; same seed and level, same file, any --workers (noise keyed by level)."
    ),
    workers: int = typer.Option(1, help="Processes over phantoms (e.g. your core count)."),
    val_fraction: float = typer.Option(0.1, help="Share of training phantoms for validation."),
    split_by: str = typer.Option(
        "auto", "--split-by", help="auto, patient (phantom), slab (of views) or region (tiles)."
    ),
    preview: Path = typer.Option(
        None, "--preview", help="Also write a PNG montage of phantom 0 and its projections."
    ),
) -> None:
    """Simulate the paper's X-ray projection dataset (Table III) from random torso phantoms."""
    with user_errors():
        sizes = {
            "--phantoms": phantoms,
            "--angles": angles,
            "--size": size,
            "--realisations": realisations,
            "--workers": workers,
        }
        check_positive_options({"--photons": photons, "--target-psnr": target_psnr, **sizes})
        check_out_writable(out)
        if target_psnr is not None and photons is not None:
            raise LowdoseInputError("give exactly one of --target-psnr and --photons")
        level = PAPER_XRAY_LEVEL
        if photons is not None:
            level = NoiseLevel(photons_per_pixel=photons)
        elif target_psnr is not None:
            level = NoiseLevel(target_psnr_db=target_psnr)
        with stage_progress("phantoms") as progress:
            summary = build_xray_dataset(
                out,
                phantoms=phantoms,
                angles=angles,
                size=size,
                realisations=realisations,
                level=level,
                geometry=geometry,
                seed=seed,
                workers=workers,
                progress=progress,
                fractions=(0.8 * (1 - val_fraction), 0.8 * val_fraction, 0.2),  # 20 % test
                split_by=split_by,
            )
        console.print(summary.describe(), highlight=False)
        console.print(
            f"{summary.noise_level:.1f} photons/pixel; "
            f"{summary.details.n_train_pairs_n2n} N2N training pairs",
            highlight=False,
        )
        if preview is not None:
            write_preview(
                preview,
                size=size,
                seed=seed,
                photons_per_pixel=summary.noise_level,
                geometry=geometry,
            )
            console.print(f"preview: {preview}", highlight=False)
