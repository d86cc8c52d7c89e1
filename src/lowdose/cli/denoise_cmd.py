"""``lowdose denoise`` (user images through a trained model) and ``lowdose export``."""

from __future__ import annotations

from pathlib import Path

import typer

from lowdose.cli._app import app, console, stage_progress, user_errors


@app.command()
def denoise(
    inputs: list[Path] = typer.Argument(
        ..., help="Images: .npy, .tif/.tiff stacks, .png, NIfTI, DICOM files or series folders."
    ),
    model: Path = typer.Option(
        ..., "--model", help="Checkpoint (RUN_DIR/best.ckpt) or a run folder."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: same names, format and units."),
    tile: int | None = typer.Option(
        None, "--tile", help="Tile side in pixels (multiple of 32); default: from free memory."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(4, "--batch-size", help="Tiles per forward pass."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for torch (default: torch's choice)."
    ),
) -> None:
    """Denoise images with a trained model; the checkpoint's scaling is applied and inverted."""
    with user_errors():
        import torch

        from lowdose.inference.predict import denoise as denoise_images
        from lowdose.io.images import write_like
        from lowdose.training.run import load_model

        if threads:
            torch.set_num_threads(threads)
        _check_out(inputs, out)
        network, meta = load_model(model)
        loaded = [_read_checked(path) for path in inputs]
        total = sum(1 if array.ndim == 2 else array.shape[0] for _p, array, _k, _m in loaded)
        derivation = _derivation(meta)
        written: list[Path] = []
        with stage_progress("img", absolute=True) as progress:
            finished = 0
            for path, array, _kind, file_meta in loaded:

                def tick(done: int, base: int = finished) -> None:
                    progress("denoise", base + done, total)

                result = denoise_images(
                    network,
                    array,
                    scaling=meta.get("scaling", {}),
                    tile=tile,
                    device=device,
                    batch_size=batch_size,
                    on_image_done=tick,
                )
                written += write_like(path, result, out, file_meta, derivation=derivation)
                finished += 1 if array.ndim == 2 else array.shape[0]
        console.print(f"[green]wrote[/] {len(written)} file(s) for {len(loaded)} input(s) to {out}")


@app.command("export")
def export(
    model: Path = typer.Option(
        ..., "--model", help="Checkpoint (RUN_DIR/best.ckpt) or a run folder."
    ),
    fmt: str = typer.Option("onnx", "--format", help="torchscript or onnx."),
    out: Path = typer.Option(..., "--out", help="Model file to write (sidecar: FILE.json)."),
) -> None:
    """Export a model for (B, 1, H, W) float32 input of any H, W; scaling goes to FILE.json."""
    with user_errors():
        from lowdose.models.export import export_model
        from lowdose.training.run import load_model

        network, meta = load_model(model)
        path, sidecar = export_model(network, out, fmt=fmt, meta=meta)
        console.print(f"[green]wrote[/] {path} and {sidecar}")


def _read_checked(path: Path):
    """``(path, array, kind, meta)`` of one input, or one error line naming the file."""
    import numpy as np

    from lowdose.core.errors import LowdoseInputError
    from lowdose.io.images import read_image_stack

    if not path.exists():
        raise LowdoseInputError(f"{path}: no such file or folder")
    try:
        array, kind, meta = read_image_stack(path)
    except LowdoseInputError:
        raise
    except Exception as exc:  # any library's parse error becomes one line naming the file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LowdoseInputError(
            f"{path}: cannot read it ({reason}); pass .npy, .tif/.tiff, .png, NIfTI or DICOM"
        ) from None
    array = np.asarray(array)
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise LowdoseInputError(
            f"{path}: image shape {array.shape}; pass single-channel (H, W) images or (B, H, W) "
            "stacks"
        )
    if not (np.issubdtype(array.dtype, np.number) and np.all(np.isfinite(array))):
        raise LowdoseInputError(f"{path}: contains NaN, Inf or non-numbers; fix or drop the file")
    return path, array, kind, meta


def _check_out(inputs: list[Path], out: Path) -> None:
    from lowdose.core.errors import LowdoseInputError

    for path in inputs:
        folder = path if path.is_dir() else path.parent
        if folder.resolve() == out.resolve():
            raise LowdoseInputError(
                f"--out {out} holds the input {path}; choose another folder so inputs stay intact"
            )


def _derivation(meta: dict) -> str:
    """DICOM DerivationDescription: lowdose version, model name, mode and loss."""
    from lowdose import __version__

    model = meta.get("model", {})
    name = model.get("name", "unet") if isinstance(model, dict) else str(model)
    return f"denoised by lowdose {__version__} {name} {meta.get('mode')}-{meta.get('loss')}"
