"""Export a denoiser as a BioImage Model Zoo package (format 0.5) for napari, Fiji and deepImageJ.

The package (a folder, or a ``.zip`` of it) holds ``rdf.yaml``; ``weights.pt`` (a
``pytorch_state_dict`` for the architecture in ``lowdose_unet.py``: the lowdose U-Net source and
:mod:`lowdose.models.raw_units`, self-contained, importing only torch) and
``weights_torchscript.pt`` (its TorchScript, parent ``pytorch_state_dict``); ``test_input.npy``
and ``test_output.npy`` (a 64 x 64 image and the model's answer); ``README.md``.

The model takes and returns **raw units** (HU for CT, the projection's own units for X-ray): the
checkpoint's scaling is inside the graph (:class:`lowdose.models.raw_units.RawUnitsDenoiser`),
because the per-image rule of X-ray projections (divide by a smoothed maximum) is none of the
BioImage pre-processing steps; so ``preprocessing``/``postprocessing`` are empty. What a CT or
X-ray user needs (units, scaling, display window, noise model, training method, validity range,
and the model card of a built-in model) is in ``config.lowdose`` and in the README.

``rdf.yaml`` is written with PyYAML, so lowdose does not depend on ``bioimageio.spec``. The tests
(``tests/models/test_bioimageio_export.py``) validate the package's format with
``bioimageio.spec`` (a dev extra) and check its inference themselves, the way
``bioimageio.core.test_model`` would (each weight format reproduces the test output, at other
sizes and batch sizes too); ``bioimageio.core`` itself is not used, as its pinned
``bioimageio.spec`` fails under lowdose's pydantic.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import inspect
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
import yaml
from torch import nn

from lowdose import __version__
from lowdose.core.atomic import atomic_path
from lowdose.core.errors import LowdoseInputError
from lowdose.core.file_hash import file_sha256
from lowdose.data.scaling import SCALING_RULES
from lowdose.models import raw_units, unet
from lowdose.models.bioimageio_rdf import model_rdf, readme, sigmas_in_raw_units
from lowdose.models.builtin import (
    BUILTIN_PREFIX,
    BuiltinRecord,
    ModelCard,
    read_card,
    record_path,
)
from lowdose.models.checkpoint import CheckpointMeta
from lowdose.models.export import to_torchscript
from lowdose.models.raw_units import RULE_CODES, RawUnitsDenoiser

TEST_IMAGE_PX = 64
ARCHITECTURE_FILE = "lowdose_unet.py"


def export_bioimageio(
    network: nn.Module,
    meta: CheckpointMeta,
    out: str | Path,
    *,
    card: ModelCard | None = None,
    name: str | None = None,
) -> Path:
    """Write a BioImage Model Zoo package of ``network``: a folder, or a zip if ``out`` ends .zip.

    Parameters
    ----------
    network : lowdose.models.unet.UNet
        One input and one output channel (from :func:`lowdose.models.checkpoint.load_model`);
        not modified.
    meta : CheckpointMeta
        Its metadata: the scaling goes into the graph, the rest into ``config.lowdose``.
    out : str or Path
        A new (or empty) folder, or a ``.zip`` file (replaced atomically).
    card : ModelCard, optional
        The model card of a built-in model: title, modality, units, noise model, training data
        and licences, test metrics.
    name : str, optional
        The model's name in the package (default: the card's title, else the network's name).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    LowdoseInputError
        An ``out`` folder that holds files, a network that is not a one-channel lowdose U-Net,
        or a checkpoint scaling that cannot be put into the graph.
    """
    out = Path(out)
    as_zip = out.suffix.lower() == ".zip"
    if not as_zip and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LowdoseInputError(
            f"--out {out} exists and is not an empty folder; choose a new folder or a .zip file"
        )
    wrapped = raw_units_denoiser(network, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
        folder = Path(staging) / "package"
        folder.mkdir()
        _write_package(folder, wrapped, network, meta, card=card, name=name)
        if as_zip:
            with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(folder.iterdir()):
                    zf.write(path, path.name)
        else:
            if out.exists():
                out.rmdir()  # empty, checked above
            folder.rename(out)  # the same file system: the folder appears whole or not at all
    return out


def model_card(model_source: str, card_path: str | Path | None) -> ModelCard | None:
    """The card an export describes: ``card_path`` if given, else a built-in model's own card
    (``model_source`` ``"builtin:NAME"``), else None (a plain checkpoint has no card)."""
    if card_path is not None:
        return read_card(card_path)
    if model_source.startswith(BUILTIN_PREFIX):
        name = model_source.removeprefix(BUILTIN_PREFIX)
        return BuiltinRecord.from_json(record_path(name)).card
    return None


def raw_units_denoiser(network: nn.Module, meta: CheckpointMeta) -> RawUnitsDenoiser:
    """A copy of ``network`` inside the checkpoint's scaling, in eval mode: raw units in and out."""
    config = getattr(network, "config", None)
    if not callable(config) or (config()["in_channels"], config()["out_channels"]) != (1, 1):
        raise LowdoseInputError(
            "the BioImage export takes a lowdose U-Net with one input and one output channel"
        )
    scaling = meta.scaling
    if scaling.scaling_rule not in SCALING_RULES:
        raise LowdoseInputError(
            f"scaling_rule {scaling.scaling_rule!r} in the checkpoint is unknown; expected one of "
            f"{SCALING_RULES}"
        )
    if scaling.scaling_rule == "dataset_max" and not (scaling.divisor or 0) > 0:
        raise LowdoseInputError(
            "checkpoint scaling is dataset_max but it stores no divisor; retrain with a lowdose "
            "dataset that stores its scale"
        )
    return RawUnitsDenoiser(
        copy.deepcopy(network).cpu().eval(),
        rule=RULE_CODES[scaling.scaling_rule],
        offset=scaling.scaling_offset,
        divisor=scaling.divisor or 1.0,
    ).eval()


def architecture_source() -> str:
    """One importable file: ``unet.py``, then ``raw_units.py`` without its lowdose imports."""
    body = [
        line
        for line in inspect.getsource(raw_units).splitlines()
        if not line.startswith(("from __future__", "from lowdose"))
    ]
    header = "# Generated by lowdose: lowdose/models/unet.py, then lowdose/models/raw_units.py.\n"
    return header + inspect.getsource(unet) + "\n\n" + "\n".join(body) + "\n"


def sample_image(meta: CheckpointMeta, *, rng: np.random.Generator) -> np.ndarray:
    """A ``(1, 1, 64, 64)`` float32 test input in raw units: a bright disc on a darker
    background with Gaussian noise of 0.02 on the network's scale (CT: about 40 HU per 0.02 of
    a 2000 HU divisor)."""
    rows, cols = np.mgrid[:TEST_IMAGE_PX, :TEST_IMAGE_PX]
    centre = TEST_IMAGE_PX / 2
    disc = (rows - centre) ** 2 + (cols - centre) ** 2 < (TEST_IMAGE_PX / 4) ** 2
    scaled = np.where(disc, 0.55, 0.2) + rng.normal(0.0, 0.02, disc.shape)
    scaling = meta.scaling
    divisor = scaling.divisor if scaling.scaling_rule == "dataset_max" else 1.0
    raw = scaled * float(divisor or 1.0) - scaling.scaling_offset
    return raw.astype(np.float32)[None, None]


def _write_package(
    folder: Path,
    wrapped: RawUnitsDenoiser,
    network: nn.Module,
    meta: CheckpointMeta,
    *,
    card: ModelCard | None,
    name: str | None,
) -> None:
    test_input = sample_image(meta, rng=np.random.default_rng(0))
    with torch.no_grad():
        test_output = wrapped(torch.from_numpy(test_input)).numpy().astype(np.float32)
    np.save(folder / "test_input.npy", test_input)
    np.save(folder / "test_output.npy", test_output)
    # the same pair as pictures (2-D float32 TIFF) for model browsers: the sample tensors
    tifffile.imwrite(folder / "sample_input.tif", test_input[0, 0])
    tifffile.imwrite(folder / "sample_output.tif", test_output[0, 0])
    torch.save(wrapped.state_dict(), folder / "weights.pt")
    scripted = torch.jit.script(
        RawUnitsDenoiser(
            to_torchscript(network),
            rule=wrapped.rule,
            offset=wrapped.offset,
            divisor=wrapped.divisor,
        )
    )
    torch.jit.save(scripted, str(folder / "weights_torchscript.pt"))
    (folder / ARCHITECTURE_FILE).write_text(architecture_source(), encoding="utf-8")
    config = network.config()
    kwargs = {
        "width": config["width"],
        "residual": config["residual"],
        "scaling_rule": meta.scaling.scaling_rule,
        "scaling_offset": meta.scaling.scaling_offset,
        "divisor": meta.scaling.divisor,
    }
    lowdose = lowdose_config(meta, card)
    readme_text = readme(lowdose, name or _name(meta, card), meta.validity)
    (folder / "README.md").write_text(readme_text, encoding="utf-8")
    files = {path.name: file_sha256(path) for path in folder.iterdir()}
    rdf = model_rdf(
        name=name or _name(meta, card),
        files=files,
        architecture_kwargs=kwargs,
        lowdose=lowdose,
        card=card,
        timestamp=datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        pytorch_version=torch.__version__.split("+")[0],
    )
    text = yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True)
    (folder / "rdf.yaml").write_text(text, encoding="utf-8")


def lowdose_config(meta: CheckpointMeta, card: ModelCard | None) -> dict[str, Any]:
    """``config.lowdose`` of ``rdf.yaml``: what a CT or X-ray user needs, as plain values."""
    scaling = meta.scaling
    units = {"hu": "HU"}.get(scaling.raw_units.lower(), scaling.raw_units or "input units")
    validity = None if meta.validity is None else meta.validity.to_dict()
    if validity is not None and (raw := sigmas_in_raw_units(meta.validity, scaling)):
        validity["raw_units"] = raw
    return {
        "lowdose_version": __version__,
        "modality": card.modality if card else "",
        "units_in": card.units_in if card and card.units_in else units,
        "units_out": card.units_out if card and card.units_out else units,
        "scaling": dataclasses.asdict(scaling),
        "scaling_in_graph": True,
        "window": list(card.window) if card and card.window else None,
        "noise_model": card.noise_model if card else "",
        "training": {
            "mode": meta.mode,
            "loss": meta.loss,
            "model_selection": meta.selection or "unknown",
            "val_reference": meta.val_reference,
            "global_step": meta.global_step,
            "seed": meta.seed,
            "dataset_sha256": meta.dataset_sha256,
        },
        "validity": validity,
        "network": dataclasses.asdict(meta.model),
        "card": card.model_dump(mode="json") if card else None,
    }


def _name(meta: CheckpointMeta, card: ModelCard | None) -> str:
    return card.title if card else f"lowdose {meta.model.name} {meta.mode} denoiser"
