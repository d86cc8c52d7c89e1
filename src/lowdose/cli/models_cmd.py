"""``lowdose models``: the ready-to-use models in the package, and ``lowdose models pack``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import typer
from rich.markup import escape

from lowdose.cli._app import app, console, user_errors
from lowdose.core.errors import LowdoseInputError
from lowdose.data.scaling import NetworkScaling

models_app = typer.Typer(
    help="Built-in models (denoise --model builtin:NAME): list them, or pack a trained one.",
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")


@models_app.callback()
def models(
    ctx: typer.Context,
    folder: Path | None = typer.Option(
        None, "--dir", help="Folder of models (default: $LOWDOSE_BUILTIN_DIR or the package's)."
    ),
) -> None:
    """List the built-in models: name, modality, units, training, validity range and size."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        # torch-bound (lowdose.models): keeps `lowdose --help` and light commands fast
        from lowdose.models.builtin import BuiltinRecord, builtin_dir, builtin_names, record_path

        where = builtin_dir() if folder is None else folder
        names = builtin_names(where)
        if not names:
            console.print(f"no built-in models in {escape(str(where))}")
            return
        lines = _wrapped(f"Built-in models in {where} (lowdose denoise --model builtin:NAME)", "")
        for name in names:
            try:
                modality, units, training, validity, size = _row(
                    BuiltinRecord.from_json(record_path(name, where))
                )
            except LowdoseInputError as exc:
                lines += ["", *_wrapped(f"{name}: unreadable: {exc}", "  ")]
                continue
            lines += ["", *_wrapped(f"{name}: {modality}, {units}, {size}", "  ", first="")]
            lines += _wrapped(f"training  {training}", " " * 12)
            lines += _wrapped(f"validity  {validity}", " " * 12)
        # one block per model, wrapped at the terminal's width: readable at 80 columns
        console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _wrapped(text: str, indent: str, *, first: str | None = None) -> list[str]:
    """``text`` wrapped at the console's width: first line indented by ``first`` (default two
    spaces, none when ``indent`` is empty), the others by ``indent``."""
    start = first if first is not None else ("  " if indent else "")
    return textwrap.wrap(
        text,
        max(console.width, 40),
        initial_indent=start,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )


def _row(record) -> tuple[str, str, str, str, str]:
    """The table's columns after the name; a malformed validity range raises LowdoseInputError."""
    from lowdose.models.checkpoint import ValidityRange
    from lowdose.models.validity_range import in_input_units, range_text

    card, hparams = record.card, record.hyper_parameters
    values = hparams["meta"].get("validity")
    try:  # the typed range load_model reads (CheckpointMeta.validity), not a free dict
        validity = None if values is None else ValidityRange.from_dict(values)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LowdoseInputError(f"{record.name}: meta.validity is malformed ({exc})") from None
    if validity is None:
        validity_text = "not measured"
    elif validity.sigma_high <= 0:  # the validity sweep's empty range
        validity_text = "empty (no gain)"
    else:  # in the input's units (HU sd for CT), not on the network's scale
        scaling = NetworkScaling.from_dict(hparams["meta"].get("scaling") or {})
        validity_text = range_text(in_input_units(validity, scaling))
    training = f"{hparams['mode']}-{hparams['loss']}, {card.noise_model}; {card.doses}"
    return (
        card.modality,
        f"{card.units_in} -> {card.units_out}",
        training,
        validity_text,
        f"{record.weights_bytes / 1e6:.2f} MB",
    )


@models_app.command("pack")
def pack(
    model: str = typer.Option(
        ..., "--model", help="Checkpoint (RUN_DIR/best.ckpt), a run folder, or builtin:NAME."
    ),
    name: str = typer.Option(..., "--name", help="Built-in name: lower case, digits, . _ -"),
    card: Path = typer.Option(
        ...,
        "--card",
        help="CARD.yaml: title, modality, noise_model, training_data, "
        "data_licence, doses, test_metrics, command (see lowdose.models.builtin.ModelCard).",
    ),
    into: Path | None = typer.Option(
        None, "--into", help="Folder to write to (default: the package's built-in folder)."
    ),
) -> None:
    """Pack a trained model as builtin:NAME: NAME.safetensors, NAME.json and the card NAME.md."""
    with user_errors():
        # torch-bound: keeps `lowdose --help` and light commands fast
        from lowdose.models.builtin import read_card
        from lowdose.models.builtin_pack import pack_model

        paths = pack_model(model, name, read_card(card), into=into)
        size_mb = paths[0].stat().st_size / 1e6
        console.print(f"[green]wrote[/] {', '.join(str(p) for p in paths)} ({size_mb:.2f} MB)")
