"""``lowdose simulate ct``: real CT slices or phantoms -> AWGN or sinogram noise -> HDF5."""

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
from lowdose.data.build import DatasetSummary
from lowdose.simulate.ct import build_ct_dataset, load_ct_source
from lowdose.simulate.ct_preview import preview_arrays, write_ct_preview


@simulate_app.command("ct")
def simulate_ct(
    source: str = typer.Option(
        "phantom", "--source", help="Folder/file of CT (DICOM, NIfTI, TIFF, PNG, .npy) or phantom."
    ),
    noise: str = typer.Option("awgn", help="awgn (the paper) or sinogram (Poisson + FBP)."),
    target_psnr: float = typer.Option(
        24.44, "--target-psnr", help="Baseline PSNR (dB) on --target-scale."
    ),
    target_scale: str = typer.Option(
        "data_range_1",
        "--target-scale",
        help="data_range_1 (HU+1024 / dataset max, the paper) or hu_window (-1000..1000 HU).",
    ),  # fmt: skip
    realisations: int = typer.Option(2, help="Independent noisy copies per slice."),
    size: int = typer.Option(256, help="Slice side in pixels (512 slices are resized)."),
    split_by: str = typer.Option(
        "auto",
        "--split-by",
        help="auto (patient if there are enough, else slabs of slices, else tiles), patient, "
        "volume, slab or region.",
    ),
    seed: int = typer.Option(
        0, help="Root seed: same seed and target, same file; other targets draw other noise."
    ),
    views: int = typer.Option(None, help="Sinogram views over 180 deg (default 720*size/512)."),
    out: Path = typer.Option(Path("data/ct.h5"), "--out", help="Dataset file to write (.h5)."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Skip unreadable files (listed) instead of stopping."
    ),
    preview: Path = typer.Option(
        None, "--preview", help="Also write a PNG: clean, AWGN and sinogram noise on one slice."
    ),
) -> None:
    """Build a CT dataset (paper Tables IV/V: --target-psnr 24.44 or 18.66)."""
    with user_errors():
        check_out_writable(out)
        check_positive_options({"--target-psnr": target_psnr, "--size": size,
                                "--realisations": realisations, "--views": views})  # fmt: skip
        with stage_progress("slices") as progress:
            summary = build_ct_dataset(
                out, source=source, noise=noise, target_psnr_db=target_psnr,
                realisations=realisations, size=size, split_by=split_by, seed=seed,
                views=views, target_scale=target_scale, skip_bad=skip_bad,
                progress=progress,
            )  # fmt: skip
        for path, reason in summary.skipped:
            console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
        level = "sigma" if noise == "awgn" else "I0"
        details = summary.details
        console.print(summary.describe(), highlight=False)
        console.print(
            f"{noise} {level} = {summary.noise_level:.4g}; baseline "
            f"{summary.achieved_psnr_db:.2f} dB data_range 1, "
            f"{details['achieved_psnr_hu_window_db']:.2f} dB in -1000..1000 HU (target "
            f"{summary.target_psnr_db:.2f} on {target_scale}); noise "
            f"neighbour correlation {details['noise_neighbour_correlation']:.3f}",
            highlight=False,
        )
        if preview is not None:
            _write_preview(preview, summary, source=source, size=size, seed=seed)
            console.print(f"preview: {preview}", highlight=False)


def _write_preview(
    path: Path, summary: DatasetSummary, *, source: str, size: int, seed: int
) -> None:
    """The 2 x 3 noise-model picture on the middle slice of ``source`` at the dataset's level."""
    src = load_ct_source(source, size=size, seed=seed, skip_bad=True, n_phantoms=1)
    index = len(src.hu) // 2
    sinogram = summary.noise_model == "sinogram"
    arrays = preview_arrays(
        src.hu[index], float(src.pixel_mm[index]), data_max=summary.details["data_max"],
        target_psnr_db=summary.target_psnr_db, seed=seed,
        i0_photons=summary.noise_level if sinogram else None,
        clean_reference=summary.details.get("clean_reference", "original"),
    )  # fmt: skip
    write_ct_preview(path, arrays)
