"""`lowdose reproduce`, `lowdose sweep` and `lowdose demo`: the paper's results end to end."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

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
from lowdose.core.progress import Progress
from lowdose.report.build import ReportFiles, write_report

PAPER_ORDER = ["xray", "ct24", "ct18", "ct24-sinogram", "ct18-sinogram"]


def _log(text: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}", highlight=False)


def _report_sentence(files: ReportFiles) -> str:
    """The last line of a run: where its report is (not the ``ReportFiles`` repr)."""
    figures = f"{len(files.figures)} figure{'s' if len(files.figures) != 1 else ''}"
    return (
        f"report written to {files.html} (also {files.markdown.name} and {figures} in "
        f"{files.html.parent / 'figures'})"
    )


def _item_bars() -> AbstractContextManager[Progress]:
    """:func:`stage_progress` for every stage of an experiment (phantoms, slices, images ...),
    counted as items: no one unit fits them all."""
    return stage_progress(unit="items")


def _run_all(names: list[str], scale: str, out: Path, seeds: int) -> None:
    # torch-bound: keeps `lowdose --help` and light commands fast
    from lowdose.pipeline.config import load_experiments
    from lowdose.pipeline.reproduce import run_experiment

    # validate all before running any
    configs = [c for name in names for c in load_experiments(name, scale, seeds=seeds)]
    for config in configs:
        _log(
            f"[bold]experiment {config.name}[/] (table {config.paper_table or '-'}, {scale}, "
            f"{seeds} seed{'s' if seeds > 1 else ''} per network)"
        )
        run_experiment(config, out, log=_log, bars=_item_bars)


@app.command()
def reproduce(
    experiment: Annotated[
        str,
        typer.Argument(help="xray|ct24|ct18|ct24-sinogram|ct18-sinogram|ct-dose|all|a YAML"),
    ],
    scale: Annotated[str, typer.Option(help="quick|medium|paper")] = "quick",
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/<experiment>)")] = None,
    report: Annotated[bool, typer.Option(help="write report.md/html when done")] = True,
    seeds: Annotated[
        int, typer.Option(help="trainings per network (seeds train.seed + 0..K-1), >= 1")
    ] = 3,
) -> None:
    """Reproduce a paper table (and its sweep figure); finished stages are reused, runs resume."""
    with user_errors():
        check_positive_options({"--seeds": seeds})
        names = PAPER_ORDER if experiment == "all" else [experiment]
        out = out or Path("runs") / (Path(experiment).stem if experiment != "all" else "all")
        check_out_writable(out)
        _run_all(names, scale, out, seeds)
        if report:
            _log(_report_sentence(write_report(out)))
        else:
            _log(f"results in {out}; write the report with: lowdose report {out}")


@app.command()
def sweep(
    data: Annotated[Path, typer.Option(help="HDF5 dataset with clean test images")],
    model: Annotated[list[Path], typer.Option(help="checkpoint(s) or run folder(s)")],
    out: Annotated[Path, typer.Option(help="folder for sweep.csv")],
    psnr_range: Annotated[str, typer.Option(help="input PSNR range in dB, LOW:HIGH")] = "4:50",
    levels: Annotated[int, typer.Option(help="number of noise levels")] = 15,
    images: Annotated[int, typer.Option(help="test images per level")] = 20,
    filters: Annotated[
        str,
        typer.Option(
            help="oracle filters, comma separated; bm3d-psd: BM3D given the true noise spectrum"
        ),
    ] = ("gaussian,median,bilateral"),
    seed: int = 0,
) -> None:
    """Accuracy range against clean: output PSNR and gain against input PSNR (paper Figs. 2, 4)."""
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.evaluation.sweep import (
            default_targets_db,
            run_sweep,
            trained_sweep_models,
            write_sweep,
        )

        check_positive_options({"--levels": levels, "--images": images})
        low, high = parse_range(psnr_range, "--psnr-range", "4:50")
        check_out_writable(out)
        models = trained_sweep_models(data, model)
        table = run_sweep(
            data,
            models,
            targets_db=default_targets_db(low, high, levels),
            filters=[f for f in filters.split(",") if f],
            n_images=images,
            seed=seed,
            log=_log,
        )
        _log(f"wrote {write_sweep(table, out)}")
        summary = table.groupby(["method", "noise_level"])[["input_psnr_db", "gain_db"]].mean()
        console.print(summary.round(2).to_string())


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="run folder")] = Path("runs/demo"),
) -> None:
    """The small CPU run of the whole paper: X-ray (Table III) and CT on phantom slices, report.

    Each network is trained once (one seed, so no spread over seeds); `lowdose reproduce` trains
    three by default.
    """
    with user_errors():
        start = time.perf_counter()
        check_out_writable(out)
        _log("demo: 1 training seed per network (reproduce --seeds K gives sds)")
        _run_all(["xray", "ct24-phantom"], "quick", out, seeds=1)
        files = write_report(out)
        _log(f"demo done in {time.perf_counter() - start:.0f} s")
        _log(_report_sentence(files))
