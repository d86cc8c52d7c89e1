"""Pack a trained checkpoint as a built-in model: safetensors weights, JSON record, Markdown card.

``lowdose models pack --model RUN/best.ckpt --name NAME --card CARD.yaml`` calls
:func:`pack_model`. The record is rebuilt from what :func:`lowdose.models.checkpoint.load_model`
read, so ``load_model("builtin:NAME")`` gives back the same network and metadata (less the
training machine's paths), and any model that loads (a checkpoint, or a built-in model) packs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

from lowdose import __version__
from lowdose.core.atomic import atomic_write_bytes, atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import HU_SOFT_TISSUE_WINDOW
from lowdose.data.scaling import NetworkScaling
from lowdose.models.builtin import NAME_PATTERN, BuiltinRecord, ModelCard, builtin_dir
from lowdose.models.checkpoint import CheckpointMeta, ValidityRange, load_model
from lowdose.models.validity_range import UNITS_TEXT, WHITE_NOISE_ESTIMATOR, in_input_units


def pack_model(
    model_source: str | Path, name: str, card: ModelCard, *, into: str | Path | None = None
) -> list[Path]:
    """Write ``NAME.safetensors``, ``NAME.md`` and (last) ``NAME.json`` for a trained model.

    Parameters
    ----------
    model_source : str or Path
        Anything :func:`lowdose.models.checkpoint.load_model` reads (``RUN/best.ckpt``, a run
        folder, ``builtin:OTHER``).
    name : str
        The built-in name: 1-64 of lower case letters, digits, ``.``, ``_``, ``-``.
    card : ModelCard
        The human fields; unset units and window are filled from the checkpoint's scaling.
    into : str or Path, optional
        Folder to write to (default :func:`lowdose.models.builtin.builtin_dir`).

    Returns
    -------
    list of Path
        The three files, each written atomically; the JSON last, so that a model is listed only
        once its weights and card are complete.

    Raises
    ------
    LowdoseInputError
        A bad name, a model that does not load, or a CT card for a model not in HU.
    """
    from safetensors.torch import save  # imports torch

    if not NAME_PATTERN.match(name):
        raise LowdoseInputError(
            f"--name {name!r}: use 1-64 lower case letters, digits, '.', '_' or '-'"
        )
    network, meta = load_model(model_source)
    card = completed_card(card, meta.scaling)
    state = {key: value.contiguous() for key, value in network.state_dict().items()}
    weights = save(state, metadata={"format": "pt", "lowdose_model": name})
    record = BuiltinRecord(
        name=name,
        hyper_parameters=hyper_parameters(network.config(), meta),
        global_step=meta.global_step,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        weights_bytes=len(weights),
        parameters=sum(int(value.numel()) for value in state.values()),
        card=card,
        lowdose_version=__version__,
    )
    folder = builtin_dir() if into is None else Path(into)
    paths = [folder / f"{name}.safetensors", folder / f"{name}.md", folder / f"{name}.json"]
    atomic_write_bytes(paths[0], weights)
    atomic_write_text(paths[1], card_markdown(record))
    atomic_write_text(paths[2], record.to_json())
    return paths


def completed_card(card: ModelCard, scaling: NetworkScaling) -> ModelCard:
    """``card`` with units (and a CT display window) taken from the checkpoint where unset."""
    units = {"hu": "HU"}.get(scaling.raw_units.lower(), scaling.raw_units or "input units")
    is_hu = units == "HU"
    if card.modality == "ct" and not is_hu:
        raise LowdoseInputError(
            f"the card says modality ct but the model was trained on {units!r} data, not HU; "
            "a CT model takes and returns HU: pack a model trained on a CT dataset in HU"
        )
    window = card.window or (HU_SOFT_TISSUE_WINDOW if is_hu else None)
    return card.model_copy(
        update={
            "units_in": card.units_in or units,
            "units_out": card.units_out or card.units_in or units,
            "window": window,
        }
    )


def hyper_parameters(config: dict[str, Any], meta: CheckpointMeta) -> dict[str, Any]:
    """The checkpoint's ``hyper_parameters`` that :func:`load_model` reads, as plain JSON values.

    The training machine's paths (``run_dir``, ``dataset``) are left out: they mean nothing on
    a user's machine; ``dataset_sha256`` still names the training data.
    """
    extra: dict[str, Any] = {
        "scaling": dataclasses.asdict(meta.scaling),
        "dataset_sha256": meta.dataset_sha256,
        "val_reference": meta.val_reference,
        "seed": meta.seed,
    }
    if meta.validity is not None:
        extra["validity"] = meta.validity.to_dict()
    return {"model": dict(config), "mode": meta.mode, "loss": meta.loss, "meta": extra}


def card_markdown(record: BuiltinRecord) -> str:
    """The model card for people (``NAME.md``), generated from the record alone."""
    card, hparams = record.card, record.hyper_parameters
    scaling = NetworkScaling.from_dict(hparams["meta"].get("scaling") or {})
    lines = [
        f"# {record.name}: {card.title}",
        "",
        *([card.description, ""] if card.description else []),
        f"Use it: `lowdose denoise --model builtin:{record.name} INPUTS --out OUT`.",
        "",
        "| | |",
        "|---|---|",
        f"| modality | {card.modality} |",
        f"| units in / out | {card.units_in} / {card.units_out} |",
        f"| noise model | {card.noise_model} |",
        f"| network | U-Net {hparams['model']} ({record.parameters:,} parameters, "
        f"{record.weights_bytes / 1e6:.2f} MB) |",
        f"| training | {hparams['mode']}, loss {hparams['loss']}, "
        f"{record.global_step} steps, seed {hparams['meta'].get('seed')} |",
        f"| scaling | {scaling.scaling_rule}: scaled = (raw + {scaling.scaling_offset:g}) / "
        f"{scaling.divisor if scaling.divisor is not None else 'per-image maximum'} |",
        f"| display window | {card.window or 'none'} |",
        f"| weights licence | {card.licence} |",
        f"| authors | {', '.join(card.authors)} |",
        "",
        "## Training data",
        "",
        card.training_data,
        "",
        f"Doses: {card.doses}",
        "",
        f"Data licence: {card.data_licence}."
        + (f" Cite: {card.data_citation}" if card.data_citation else ""),
        "",
        "## Validity range",
        "",
        *_validity_lines(hparams["meta"].get("validity"), scaling),
        "",
        "## Test metrics (held-out data)",
        "",
        *([card.test_data, ""] if card.test_data else []),
        "| metric | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in card.test_metrics.items()),
        "",
        "## Retrain it",
        "",
        "```bash",
        card.command,
        "```",
        "",
        f"Packed by lowdose {record.lowdose_version}; weights SHA-256 `{record.weights_sha256}`.",
        "",
    ]
    return "\n".join(lines)


def _validity_lines(values: dict | None, scaling: NetworkScaling) -> list[str]:
    """The card's range in the input's physical units (HU sd for CT; the network's transmission
    scale for X-ray), with the stored network-scale values beside a converted one."""
    if values is None:
        return ["Not measured for this model."]
    stored = ValidityRange.from_dict(values)
    if stored.sigma_high <= 0:  # the sweep's empty range: no gain even at the acquired dose
        return [f"Empty: no clean-free gain at the acquired dose ({stored.method})."]
    validity = in_input_units(stored, scaling)
    unit = UNITS_TEXT.get(validity.scale, validity.scale)
    as_stored = ""
    if validity.scale == "hu" and stored.scale == "network":  # converted by the divisor
        as_stored = (
            f" (stored on the network scale: {stored.sigma_low:.4g} to "
            f"{stored.sigma_high:.4g}, x {scaling.divisor:g})"
        )
    note = ""
    if validity.scale == "hu" and validity.estimator == WHITE_NOISE_ESTIMATOR:
        note = (
            " (Immerkaer's, for white noise: it reads FBP noise 2.6-6x low; `lowdose "
            "denoise` compares an input by the same estimator)"
        )
    lines = [
        f"Helps (clean-free uPSNR gain > 0) for input noise sd {validity.sigma_low:.3g} to "
        f"{validity.sigma_high:.3g} {unit}{as_stored}; trained at {validity.trained_sigma:.3g} "
        f"{unit}. Estimator: `{validity.estimator}`{note}. {validity.method}",
    ]
    if levels := validity.levels:
        lines += ["", f"| dose fraction | noise sd ({unit}) | gain (dB) |", "|---|---|---|"]
        # NaN: a uMSE <= 0, below what the validation pairs resolve, so no dB value
        lines += [
            f"| {dose:g} | {sigma:.4g} | {'n/a' if math.isnan(gain) else f'{gain:+.2f}'} |"
            for dose, sigma, gain in levels
        ]
    return lines
