"""``lowdose denoise`` (user images through a trained model) and ``lowdose export``."""

from __future__ import annotations

from pathlib import Path

import typer

from lowdose.cli._app import app, console, stage_progress, user_errors, warn_line
from lowdose.core.errors import LowdoseInputError


@app.command()
def denoise(
    inputs: list[Path] = typer.Argument(
        ..., help="Images: .npy, .tif/.tiff stacks, .png, NIfTI, DICOM files or series folders."
    ),
    model: Path = typer.Option(
        ...,
        "--model",
        help="Checkpoint (RUN_DIR/best.ckpt), a run folder, or builtin:NAME (lowdose models).",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: same names, format and units."),
    tile: int | None = typer.Option(
        None, "--tile", help="Tile side in pixels (multiple of 32); default: from free memory."
    ),
    device: str = typer.Option(
        "auto",
        "--device",
        "--accelerator",
        help="auto (a GPU when torch sees one), cpu, cuda or cuda:N.",
    ),
    devices: int = typer.Option(
        1, "--devices", help="Devices for Lightning's predict loop (GPUs, or CPU processes)."
    ),
    strategy: str = typer.Option(
        "auto", "--strategy", help="Lightning strategy for --devices > 1: ddp (GPU), ddp_spawn."
    ),
    units: str = typer.Option(
        "auto",
        "--units",
        help="What the values are: auto (checked to look like the model's units), hu, scaled "
        "(the model's network scale), window:C,W (a display image of that HU window), or the "
        "model's raw units (transmission).",
    ),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Leave series an earlier run of this model finished."
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="K/N: only the K-th of N interleaved parts (one job of an array)."
    ),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Skip unreadable files of a DICOM series (named) instead."
    ),
    batch_size: int = typer.Option(4, "--batch-size", help="Tiles per forward pass."),
    tta: int = typer.Option(
        1, "--tta", help="1, or 8: average the model over 8 rotations/mirrors (8x the time)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for torch (default: torch's choice)."
    ),
    blend_bm3d_psd: bool = typer.Option(
        False,
        "--blend-bm3d-psd",
        help="CT in HU: average the model 1:1 with BM3D given each slice's own noise spectrum "
        "(fit's one-scan recipe with builtin:ct-sinogram and --tta 8; ~2 s per 256^2 slice).",
    ),
) -> None:
    """Denoise images with a trained model; the checkpoint's scaling is applied and inverted.

    Streams one series (or file) at a time, so an archive of any size fits in memory; outputs
    mirror the input folders. A killed run resumes with --skip-existing; --shard K/N splits the
    series over N jobs (a SLURM array: --shard $SLURM_ARRAY_TASK_ID/N) that together write what
    one job would.

    CT padding outside the field of view (DICOM PixelPaddingValue, or values below -1500 HU
    touching the border of an HU image) is shown to the network as air and written back
    unchanged. DICOM comes back as a new derived series, uncompressed Explicit VR Little Endian;
    with --tta 8 its DerivationDescription names the self-ensemble. A model whose validation
    score was below its noisy input's (training made images worse) gets one warning line.
    """
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        import torch

        from lowdose.inference.files import denoise_files
        from lowdose.models.checkpoint import load_model

        if threads:
            torch.set_num_threads(threads)
        _, meta = load_model(model)
        line = None if meta.scores is None else meta.scores.warning(str(model))
        if line is not None:
            warn_line(line)
        with stage_progress("img") as progress:
            written = denoise_files(
                inputs,
                out,
                model,
                tile=tile,
                device=device,
                batch_size=batch_size,
                tta=tta,
                progress=progress,
                warn=warn_line,
                blend_bm3d_psd=blend_bm3d_psd,
                units=units,
                skip_existing=skip_existing,
                shard=shard,
                devices=devices,
                strategy=strategy,
                skip_bad=skip_bad,
            )
        part = f" (shard {shard})" if shard else ""
        console.print(
            f"[green]wrote[/] {len(written)} file(s) for {len(inputs)} input(s){part} to {out}"
        )


@app.command("export")
def export(
    model: Path = typer.Option(
        ..., "--model", help="Checkpoint (RUN_DIR/best.ckpt), a run folder, or builtin:NAME."
    ),
    fmt: str = typer.Option(
        "onnx", "--format", help="torchscript, onnx, or bioimageio (BioImage Model Zoo package)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Model file to write (sidecar: FILE.json); bioimageio: a new folder or a .zip.",
    ),
    card: Path | None = typer.Option(
        None,
        "--card",
        help="bioimageio: CARD.yaml of the model (title, modality, noise model, data, licences); "
        "a builtin:NAME model brings its own.",
    ),
) -> None:
    """Export a model for (B, 1, H, W) float32 input of any H, W; scaling goes to FILE.json.

    --format bioimageio writes a BioImage Model Zoo package (rdf.yaml, PyTorch state dict with
    its architecture source, TorchScript, test input and output) for napari, Fiji and deepImageJ;
    that model takes and returns raw units (HU for CT), with the scaling inside it.
    """
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.models.checkpoint import load_model

        if card is not None and fmt != "bioimageio":
            raise LowdoseInputError(f"--card describes --format bioimageio only, not {fmt}")
        network, meta = load_model(model)
        if fmt == "bioimageio":
            from lowdose.models.bioimageio_export import export_bioimageio, model_card

            written = export_bioimageio(network, meta, out, card=model_card(str(model), card))
            console.print(f"[green]wrote[/] BioImage Model Zoo package {written}")
            return
        from lowdose.models.export import export_model

        path, sidecar = export_model(network, out, fmt=fmt, meta=meta)
        console.print(f"[green]wrote[/] {path} and {sidecar}")
