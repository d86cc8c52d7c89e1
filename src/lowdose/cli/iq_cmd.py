"""``lowdose iq``: the noisy FBP, networks and blind filters measured on the digital QA phantom."""

from __future__ import annotations

from pathlib import Path

import typer

from lowdose.cli._app import app, check_out_writable, console, stage_progress, user_errors
from lowdose.core.devices import resolve_device
from lowdose.report.iq_section import iq_summary, write_iq_report


@app.command()
def iq(
    data: Path = typer.Option(
        ...,
        "--data",
        help="QA-phantom dataset (.h5) from `lowdose simulate ct --source qa-phantom`, with "
        "N >= 2 realisations (8 or more for stable numbers).",
    ),
    model: list[Path] = typer.Option(
        [], "--model", help="Checkpoint or run folder of a CT model (HU); repeat for several."
    ),
    filters: str = typer.Option(
        "nlm,bm3d,bm3d-psd",
        "--filters",
        help="Comma-separated blind filters from realisation pairs: nlm, bm3d (white rule, "
        "sigma), bm3d-psd (BM3D given the pair noise spectrum, strength by pair uMSE); '' "
        "for none.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for iq.csv, iq_nps.csv, iq_ttf.csv, iq.json and report.html."
    ),
    device: str = typer.Option(
        "cpu",
        "--device",
        "--accelerator",
        help="Torch device for models: cpu, cuda, cuda:N or auto (a GPU when torch sees one); "
        "--accelerator is the same option.",
    ),
) -> None:
    """Noise, HU bias, CNR, NPS, TTF and d' of every method, in HU; tables and a report."""
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.evaluation.phantom_iq import measure_image_quality

        names = [name.strip() for name in filters.split(",") if name.strip()]
        check_out_writable(out)  # before the methods run, not after
        with stage_progress() as progress:
            tables = measure_image_quality(
                data,
                models=model,
                filters=names,
                out_dir=out,
                device=resolve_device(device),
                progress=progress,
            )
        html = write_iq_report(out)
        _print_summary(iq_summary(tables.iq), int(tables.conventions.get("n_realisations", 0)))
        console.print(f"[green]wrote[/] {out}/iq.csv, iq_nps.csv, iq_ttf.csv, iq.json")
        console.print(f"[green]wrote[/] {html}")


def _print_summary(rows: list[dict], n_realisations: int) -> None:
    """Per method: uniform sigma, mean |bias|, f50 of two rods, NPS mean frequency, mean d'."""
    from rich.table import Table

    table = Table(title=f"QA phantom, {n_realisations} realisations (HU; f in cycles/mm)")
    table.add_column("Method", no_wrap=True, overflow="ellipsis", max_width=22)
    for header in ("σ", "|bias|", "f50 -35", "f50 +340", "NPS f", "d′ NPWE"):
        table.add_column(header, justify="right", no_wrap=True)
    for r in rows:
        cells = (
            f"{r['sigma_hu']:.2f}",
            f"{r['mean_abs_bias_hu']:.2f}",
            f"{r['f50_m35']:.3f}",
            f"{r['f50_p340']:.3f}",
            f"{r['nps_mean']:.3f}",
            f"{r['dprime_npwe']:.2f}",
        )
        table.add_row(r["method"], *(cell.replace("nan", "—") for cell in cells))
    console.print(table)
