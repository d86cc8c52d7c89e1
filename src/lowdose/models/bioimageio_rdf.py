"""The ``rdf.yaml`` (BioImage Model Zoo model description, format 0.5) and README of an export.

Pure functions of plain values: :mod:`lowdose.models.bioimageio_export` writes the files and
passes their names and SHA-256 here. Field names follow the 0.5 model specification of
``bioimageio.spec``; the tensors are ``image`` (input) and ``denoised`` (output), both
``(batch, channel = 1, y, x)`` float32 in raw units, any ``y, x >= 32`` (declared as the size
``{"min": 32, "step": 1}``: the graph reflect-pads each side to a multiple of 32, the U-Net's five
poolings, and crops back, so every size from 32 up works; below 32 most of what the network
sees would be padding).
"""

from __future__ import annotations

from typing import Any

from lowdose.data.scaling import NetworkScaling
from lowdose.models.builtin import ModelCard
from lowdose.models.checkpoint import ValidityRange

MIN_SIZE_PX = 32
"""Smallest ``y`` and ``x`` the package declares; any size from it up is accepted (step 1)."""

FORMAT_VERSION = "0.5.4"
"""The oldest 0.5 format with every field written here; newer readers update it on load."""
NOISE2NOISE = {
    "text": "Lehtinen J. et al., Noise2Noise: Learning Image Restoration without Clean Data, "
    "ICML 2018",
    "doi": "10.48550/arXiv.1803.04189",
}
MODE_TEXT = {
    "n2n": "Noise2Noise: pairs of independent noisy realisations, no clean image",
    "n2c": "Noise2Clean: supervised with clean images",
    "nb2nb": "Neighbor2Neighbor: sub-sampled pairs from one noisy realisation, no clean image",
    "n2v": "Noise2Void: blind-spot training on one noisy realisation, no clean image",
}
_MODALITY_TAG = {"ct": "ct", "xray": "x-ray"}


def model_rdf(
    *,
    name: str,
    files: dict[str, str],
    architecture_kwargs: dict[str, Any],
    lowdose: dict[str, Any],
    card: ModelCard | None,
    timestamp: str,
    pytorch_version: str,
) -> dict[str, Any]:
    """The ``rdf.yaml`` mapping.

    Parameters
    ----------
    name : str
        The model's name.
    files : dict of str to str
        File name -> SHA-256 of the package's files (weights, architecture, test tensors).
    architecture_kwargs : dict
        Keyword arguments of ``lowdose_unet.raw_units_unet``.
    lowdose : dict
        ``config.lowdose`` (:func:`lowdose.models.bioimageio_export.lowdose_config`).
    card : ModelCard or None
        Authors, licence and title of a built-in model.
    timestamp : str
        ISO 8601 creation time.
    pytorch_version : str
        The torch version that wrote the weights (without a local ``+cpu`` suffix).
    """
    units = lowdose["units_in"]
    space = {"min": MIN_SIZE_PX, "step": 1}
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description(lowdose),
        "authors": [{"name": author} for author in (card.authors if card else ["lowdose"])],
        "cite": [NOISE2NOISE],
        "license": card.licence if card else "BSD-3-Clause",
        "documentation": "README.md",
        "tags": ["denoising", "noise2noise", "lowdose", "2d", "pytorch"]
        + ([_MODALITY_TAG[lowdose["modality"]]] if lowdose["modality"] else []),
        "timestamp": timestamp,
        "inputs": [
            {
                "id": "image",
                "description": f"noisy image(s) in {units}",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["image"]},
                    {"type": "space", "id": "y", "size": space},
                    {"type": "space", "id": "x", "size": space},
                ],
                "test_tensor": _file("test_input.npy", files),
                "sample_tensor": _file("sample_input.tif", files),
                "data": {"type": "float32"},
            }
        ],
        "outputs": [
            {
                "id": "denoised",
                "description": f"denoised image(s) in {lowdose['units_out']}",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["denoised"]},
                    {"type": "space", "id": "y", "size": {"tensor_id": "image", "axis_id": "y"}},
                    {"type": "space", "id": "x", "size": {"tensor_id": "image", "axis_id": "x"}},
                ],
                "test_tensor": _file("test_output.npy", files),
                "sample_tensor": _file("sample_output.tif", files),
                "data": {"type": "float32"},
            }
        ],
        "weights": {
            "pytorch_state_dict": {
                **_file("weights.pt", files),
                "architecture": {
                    **_file("lowdose_unet.py", files),
                    "callable": "raw_units_unet",
                    "kwargs": architecture_kwargs,
                },
                "pytorch_version": pytorch_version,
            },
            "torchscript": {
                **_file("weights_torchscript.pt", files),
                "parent": "pytorch_state_dict",
                "pytorch_version": pytorch_version,
            },
        },
        "config": {"lowdose": lowdose},
    }


def description(lowdose: dict[str, Any]) -> str:
    """One paragraph: what goes in, what comes out, how it was trained."""
    what = {"ct": "CT slices", "xray": "X-ray projections"}.get(lowdose["modality"], "images")
    training = lowdose["training"]
    mode = MODE_TEXT.get(training["mode"], training["mode"])
    noise = f" with {lowdose['noise_model']} noise" if lowdose["noise_model"] else ""
    network = lowdose["network"]["name"]
    return (
        f"Denoises {what}{noise}: input in {lowdose['units_in']}, output in "
        f"{lowdose['units_out']} (the lowdose scaling is inside the model). A {network} U-Net "
        f"trained by {mode} (loss {training['loss']}), with the lowdose package."
    )


def readme(lowdose: dict[str, Any], name: str, validity: ValidityRange | None) -> str:
    """``README.md`` of the package (its ``documentation``): the card of a built-in model, or
    what the checkpoint records; ``validity`` is the checkpoint's (``CheckpointMeta.validity``).
    """
    card = lowdose["card"] or {}
    scaling = lowdose["scaling"]
    lines = [
        f"# {name}",
        "",
        description(lowdose),
        "",
        "## Input and output",
        "",
        f"- Input `image`: (batch, 1, y, x) float32 in {lowdose['units_in']}; any y, x >= "
        f"{MIN_SIZE_PX}.",
        f"- Output `denoised`: same shape, in {lowdose['units_out']}.",
        f"- Scaling inside the model: `{scaling['scaling_rule']}`, scaled = (raw + "
        f"{scaling['scaling_offset']:g}) / divisor (divisor {scaling['divisor']}; per_image_max: "
        "the maximum of the image smoothed with a Gaussian of sigma 2 px).",
        f"- Display window: {lowdose['window'] or 'none recorded'}.",
        "- CT: set values outside the field of view (scanner padding, below -1500 HU) to air "
        "(-1000 HU) first; `lowdose denoise` does this itself.",
        "",
        "## Training",
        "",
        f"- Method: {MODE_TEXT.get(lowdose['training']['mode'], lowdose['training']['mode'])}; "
        f"model selection {lowdose['training']['model_selection']}.",
        f"- Noise model: {lowdose['noise_model'] or 'not recorded'}.",
    ]
    for key in ("training_data", "doses", "data_licence", "data_citation", "command"):
        if card.get(key):
            lines.append(f"- {key.replace('_', ' ')}: {card[key]}")
    lines += ["", "## Validation", ""]
    lines += _validation_lines(validity, NetworkScaling.from_dict(scaling))
    if card.get("test_metrics"):
        lines += ["", "Test metrics on held-out data:", ""]
        lines += [f"- {key}: {value}" for key, value in card["test_metrics"].items()]
    return "\n".join(lines) + "\n"


def sigmas_in_raw_units(
    validity: ValidityRange, scaling: NetworkScaling
) -> dict[str, float] | None:
    """The range's sigmas in the input's units, where one divisor links the scales, else None.

    The sigmas are on the network's scale; under ``dataset_max`` raw units are ``divisor`` times
    larger (an offset does not change a standard deviation). ``per_image_max`` divides each
    image by its own maximum, so no single raw value exists.

    >>> range_ = ValidityRange(0.01, 0.04, 0.02, "single_image_noise_sigma")
    >>> sigmas_in_raw_units(range_, NetworkScaling("dataset_max", 1024.0, "hu", 3000.0))
    {'sigma_low': 30.0, 'sigma_high': 120.0, 'trained_sigma': 60.0}
    """
    if scaling.scaling_rule != "dataset_max" or not scaling.divisor:
        return None
    values = (validity.sigma_low, validity.sigma_high, validity.trained_sigma)
    keys = ("sigma_low", "sigma_high", "trained_sigma")
    return {key: value * scaling.divisor for key, value in zip(keys, values, strict=True)}


def _validation_lines(validity: ValidityRange | None, scaling: NetworkScaling) -> list[str]:
    """The validity range: where the model's clean-free uPSNR gain was positive."""
    if validity is None:
        return ["The validity range (input noise levels where the model helps) was not measured."]
    if validity.sigma_high <= 0:  # the sweep's empty range
        return ["Validity range empty: no clean-free gain was measured at the acquired dose."]
    raw = sigmas_in_raw_units(validity, scaling)
    in_raw = (
        f" ({raw['sigma_low']:.4g} to {raw['sigma_high']:.4g} in raw units, trained at "
        f"{raw['trained_sigma']:.4g})"
        if raw
        else ""
    )
    return [
        f"Validity range, measured clean-free on the validation data ({validity.method}): the "
        f"model helps for input noise sigma {validity.sigma_low:.4g} to "
        f"{validity.sigma_high:.4g} on the network scale, trained at "
        f"{validity.trained_sigma:.4g}{in_raw}; noise estimator `{validity.estimator}`. "
        "Outside it, expect less gain or a loss."
    ]


def _file(name: str, files: dict[str, str]) -> dict[str, str]:
    return {"source": name, "sha256": files[name]}
