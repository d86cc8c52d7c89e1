"""``lowdose simulate ct``: real CT slices or phantoms -> AWGN or sinogram noise -> HDF5."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.markup import escape

from lowdose.cli._app import (
    check_out_writable,
    check_positive_options,
    console,
    simulate_app,
    stage_progress,
    user_errors,
)
from lowdose.core.errors import LowdoseInputError
from lowdose.data.build import DatasetSummary
from lowdose.simulate.ct import CTDetails, build_ct_dataset, ct_noise_level
from lowdose.simulate.ct_levels import ct_noise_name
from lowdose.simulate.ct_preview import preview_arrays, write_ct_preview
from lowdose.simulate.ct_source import load_ct_source
from lowdose.simulate.starvation_check import starvation_warning


@simulate_app.command("ct")
def simulate_ct(
    source: str = typer.Option(
        "phantom",
        "--source",
        help="Folder/file of CT (DICOM, NIfTI, TIFF, PNG, .npy), phantom or qa-phantom.",
    ),
    noise: str = typer.Option(
        "awgn", help="awgn (the paper; gaussian names it too) or sinogram (Poisson + FBP)."
    ),
    target_psnr: float = typer.Option(
        None, "--target-psnr", help="Baseline PSNR (dB) on --target-scale [default: 24.44]."
    ),
    photons_per_ray: float = typer.Option(
        None, "--photons-per-ray", help="Sinogram dose: unattenuated photons per bin and view."
    ),
    dose_fraction: float = typer.Option(
        None,
        "--dose-fraction",
        help="Sinogram dose as a fraction of full dose (1e5 photons "
        "per 1 mm bin and view at 1000 views; lowdose.physics.ct_dose).",
    ),
    electronic_noise: float = typer.Option(
        0.0, "--electronic-noise", help="Gaussian read-out noise (counts) before the log."
    ),
    kernel: str = typer.Option(
        "hann",
        "--kernel",
        "--filter",
        help="FBP kernel: hann, ramp or shepp-logan (--filter is the same option).",
    ),
    view_subsets: int = typer.Option(
        None, "--view-subsets", help="Split one scan per slice into K view subsets (sinogram)."
    ),
    target_scale: str = typer.Option(
        "data_range_1",
        "--target-scale",
        help="data_range_1 (HU+1024 / dataset max, the paper) or hu_window (-1000..1000 HU).",
    ),
    realisations: int = typer.Option(None, help="Independent noisy copies per slice [default: 2]."),
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
    """Build a CT dataset (paper Tables IV/V: --target-psnr 24.44 or 18.66; or by dose)."""
    with user_errors():
        noise = ct_noise_name(noise)
        check_out_writable(out)
        check_positive_options(
            {
                "--target-psnr": target_psnr,
                "--size": size,
                "--realisations": realisations,
                "--views": views,
            }
        )
        if view_subsets is not None and realisations is not None:
            raise LowdoseInputError(
                "--realisations and --view-subsets exclude each other: one "
                "scan per slice gives the K subset images"
            )
        level = ct_noise_level(
            noise,
            target_psnr_db=target_psnr,
            photons_per_ray=photons_per_ray,
            dose_fraction=dose_fraction,
        )
        with stage_progress("slices") as progress:
            summary = build_ct_dataset(
                out,
                source=source,
                noise=noise,
                level=level,
                realisations=2 if realisations is None else realisations,
                size=size,
                split_by=split_by,
                seed=seed,
                views=views,
                filter_name=kernel,
                target_scale=target_scale,
                electronic_noise_counts=electronic_noise,
                view_subsets=view_subsets,
                skip_bad=skip_bad,
                progress=progress,
            )
        for path, reason in summary.skipped:
            console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
        console.print(summary.describe(), highlight=False)
        console.print(_noise_line(summary, noise, target_scale), highlight=False)
        sinogram = summary.details.sinogram
        warning = sinogram and starvation_warning(sinogram.starvation, sinogram.photons_per_ray)
        if warning:
            # wrapped at word boundaries by rich (fits 80 columns), one warning
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        if preview is not None:
            _write_preview(preview, summary, source=source, size=size, seed=seed)
            console.print(f"preview: {preview}", highlight=False)


def _noise_line(summary: DatasetSummary[CTDetails], noise: str, target_scale: str) -> str:
    """The level, the baselines (and the target, or the dose) and the noise's correlation."""
    details = summary.details
    level = "sigma" if noise == "awgn" else "I0"
    text = (
        f"{noise} {level} = {summary.noise_level:.4g}; baseline "
        f"{summary.achieved_psnr_db:.2f} dB data_range 1, "
        f"{details.achieved_psnr_hu_window_db:.2f} dB in -1000..1000 HU "
    )
    if math.isfinite(summary.target_psnr_db):
        text += f"(target {summary.target_psnr_db:.2f} on {target_scale})"
    else:
        sinogram = details.sinogram
        text += (
            f"(dose fraction {sinogram.dose_fraction_equivalent:.3g}, noise SD "
            f"{sinogram.starvation.noise_sd_hu:.1f} HU, mean bias "
            f"{sinogram.starvation.mean_bias_rms_hu:.2f} HU RMS)"
        )
    return text + f"; noise neighbour correlation {details.noise_neighbour_correlation:.3f}"


def _write_preview(
    path: Path, summary: DatasetSummary[CTDetails], *, source: str, size: int, seed: int
) -> None:
    """The 2 x 3 noise-model picture on the middle slice of ``source`` at the dataset's level."""
    src = load_ct_source(source, size=size, seed=seed, skip_bad=True, n_phantoms=1)
    index = len(src.hu) // 2
    sinogram = summary.details.sinogram
    target = summary.target_psnr_db if math.isfinite(summary.target_psnr_db) else 24.44
    arrays = preview_arrays(
        src.hu[index],
        float(src.pixel_mm[index]),
        data_max=summary.details.data_max,
        target_psnr_db=summary.achieved_psnr_db if sinogram else target,
        seed=seed,
        i0_photons=sinogram.photons_per_ray if sinogram else None,
        filter_name=sinogram.filter_name if sinogram else "hann",
        views=sinogram.views if sinogram else None,
        electronic_noise_counts=sinogram.electronic_noise_counts if sinogram else 0.0,
    )
    write_ct_preview(path, arrays)
