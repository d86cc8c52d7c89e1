"""``lowdose evaluate``: noisy input, models and tuned filters on a test split -> results table."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from lowdose.cli._app import (
    app,
    check_out_writable,
    check_positive_options,
    console,
    parse_range,
    stage_progress,
    user_errors,
)
from lowdose.core.devices import resolve_device
from lowdose.core.extras import extra_installed, install_hint
from lowdose.data.results import SummaryRow, summarize


@app.command()
def evaluate(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Dataset file (.h5): clean test images and/or N >= 2 realisations (uPSNR).",
    ),
    model: list[Path] = typer.Option(
        [], "--model", help="Checkpoint or run folder (best.ckpt); repeat for several."
    ),
    filters: str = typer.Option(
        "gaussian,median,bilateral",
        "--filters",
        help="Comma-separated: gaussian, median, bilateral, nlm, bm3d ('' for none).",
    ),
    tuning: str = typer.Option(
        "both",
        "--tuning",
        help="One or a comma-separated list: oracle (per image vs clean: the paper), blind "
        "(training noisy pairs, no clean), blind-clean (training clean images), both (oracle + "
        "blind), blind-sigma (NLM/BM3D strength from each scan's own noise sd, white rule), "
        "oracle+blind-sigma; BM3D given the noise power spectrum: blind-psd (spectrum of the "
        "training pair differences, strength by their pair uMSE), blind-psd-image (strength "
        "per image by its own pair), single-psd (spectrum from each image alone, one scan), "
        "oracle-psd (true noise spectrum, strength vs clean: upper bound).",
    ),
    out: Path = typer.Option(..., "--out", help="Results folder to write."),
    hu_window: str = typer.Option(
        "-1000:1000", "--hu-window", help="CT only: HU window LOW:HIGH for the HU-window PSNR."
    ),
    workers: int = typer.Option(1, "--workers", help="Processes for the oracle search."),
    device: str = typer.Option(
        "cpu",
        "--device",
        "--accelerator",
        help="Torch device for models: cpu, cuda, cuda:N or auto (a GPU when torch sees one); "
        "--accelerator is the same option.",
    ),
    tta: int = typer.Option(
        1,
        "--tta",
        help="1, or 8: also evaluate each model averaged over 8 rotations/mirrors "
        "(<mode>-<loss>-tta8); params record tta and seconds_per_image.",
    ),
) -> None:
    """Write results.csv/.parquet, summary.md and panels.npz; print the paper-form table."""
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.evaluation.evaluate import evaluate as run_evaluate
        from lowdose.inference.self_ensemble import checked_tta

        names = [name.strip() for name in filters.split(",") if name.strip()]
        window = parse_range(hu_window, "--hu-window", "-1000:1000 (HU)")
        check_positive_options({"--workers": workers})
        checked_tta(tta)
        check_out_writable(out)  # before the models and filters run, not after
        with stage_progress() as progress:
            results = run_evaluate(
                data,
                models=model,
                filters=names,
                tuning=tuning,
                out_dir=out,
                hu_window=window,
                workers=workers,
                device=resolve_device(device),
                tta=tta,
                progress=progress,
            )
        _print_table(summarize(results))
        parquet = extra_installed("parquet")
        tables = "results.csv, results.parquet" if parquet else "results.csv"
        console.print(f"[green]wrote[/] {out}/{tables}, summary.md, panels.npz")
        if not parquet:
            hint = install_hint("parquet")
            note = f"note: results.parquet skipped: it needs the parquet extra, {hint}"
            note += " (results.csv holds the same table)"
            console.print(note, markup=False, soft_wrap=True)


def _print_table(rows: list[SummaryRow]) -> None:
    from rich.table import Table

    has_hu = any(math.isfinite(r["psnr_hu_window_db"]) for r in rows)
    table = Table(title="Mean over test images (95 % CI; uPSNR's: bootstrap over objects)")
    table.add_column("Method", no_wrap=True)
    for header in ("PSNR (dB)", "SSIM", "n", "uPSNR (dB)", "95 % CI"):
        table.add_column(header, justify="right")
    if has_hu:
        table.add_column("PSNR HU window", justify="right")
    for r in rows:
        cells = [
            r["label"],
            f"{r['psnr_db']:.2f} ±{r['psnr_ci95_db']:.2f}",
            f"{r['ssim']:.4f}",
            str(r["n"]),
            f"{r['upsnr_db']:.2f}",
            f"{r['upsnr_ci95_low_db']:.2f}..{r['upsnr_ci95_high_db']:.2f}",
        ]
        table.add_row(*cells, *([f"{r['psnr_hu_window_db']:.2f}"] if has_hu else []))
    console.print(table)
