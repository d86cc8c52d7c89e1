"""``lowdose simulate xray``: torso phantoms -> projections -> Poisson realisations -> HDF5."""

from __future__ import annotations

from pathlib import Path

import typer

from lowdose.cli._app import console, simulate_app, stage_progress, user_errors


@simulate_app.command("xray")
def simulate_xray(
    out: Path = typer.Option(Path("data/xray.h5"), "--out", help="Dataset file to write (.h5)."),
    phantoms: int = typer.Option(100, help="Random torso phantoms (paper: 100)."),
    angles: int = typer.Option(63, help="Views per phantom over 360 degrees (paper: 63)."),
    size: int = typer.Option(256, help="Projection side in pixels (phantom is size^3)."),
    realisations: int = typer.Option(2, help="Independent noisy copies per projection."),
    target_psnr: float = typer.Option(
        None, "--target-psnr", help="Mean baseline PSNR to solve the dose for (default 29.91)."
    ),
    photons: float = typer.Option(
        None, "--photons", help="Photons per pixel instead of --target-psnr."
    ),
    geometry: str = typer.Option("parallel", help="parallel or cone (C-arm flat panel)."),
    seed: int = typer.Option(0, help="Root seed; same seed, same file, any --workers."),
    workers: int = typer.Option(1, help="Processes over phantoms (e.g. your core count)."),
    val_fraction: float = typer.Option(0.1, help="Share of training phantoms for validation."),
    preview: Path = typer.Option(
        None, "--preview", help="Also write a PNG montage of phantom 0 and its projections."
    ),
) -> None:
    """Simulate the paper's X-ray projection dataset (Table III) from random torso phantoms."""
    with user_errors():
        from lowdose.simulate.xray import build_xray_dataset
        from lowdose.simulate.xray_preview import write_preview

        if target_psnr is None and photons is None:
            target_psnr = 29.91
        with stage_progress("phantoms", absolute=True) as progress:
            summary = build_xray_dataset(
                out, phantoms=phantoms, angles=angles, size=size, realisations=realisations,
                target_psnr_db=target_psnr, photons_per_pixel=photons, geometry=geometry,
                seed=seed, workers=workers, val_fraction=val_fraction, progress=progress,
            )  # fmt: skip
        console.print(
            f"wrote {summary.path}: {summary.n_images} projections "
            f"({summary.n_train_images} train, {summary.n_val_images} val, "
            f"{summary.n_test_images} test; {summary.n_train_pairs_n2n} N2N training pairs), "
            f"{summary.photons_per_pixel:.1f} photons/pixel, baseline "
            f"{summary.achieved_psnr_db:.2f} dB (target {summary.target_psnr_db:.2f}), "
            f"{summary.elapsed_s:.0f} s",
            highlight=False,
        )
        if preview is not None:
            write_preview(
                preview, size=size, seed=seed, photons_per_pixel=summary.photons_per_pixel,
                geometry=geometry,
            )  # fmt: skip
            console.print(f"preview: {preview}", highlight=False)
