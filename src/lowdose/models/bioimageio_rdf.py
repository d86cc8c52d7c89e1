"""The ``rdf.yaml`` (BioImage Model Zoo model description, format 0.5) and README of an export.

Pure functions of plain values: :mod:`lowdose.models.bioimageio_export` writes the files and
passes their names and SHA-256 here. Field names follow the 0.5 model specification of
``bioimageio.spec``; the tensors are ``image`` (input) and ``denoised`` (output), both
``(batch, channel = 1, y, x)`` float32 in raw units, any ``y, x >= 32`` (the graph pads to a
multiple of 32 and crops back; step 32 tells tiling consumers the sizes the U-Net likes).
"""

from __future__ import annotations

from typing import Any

from lowdose.models.builtin import ModelCard

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
    space = {"min": 32, "step": 32}
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


def readme(lowdose: dict[str, Any], name: str) -> str:
    """``README.md`` of the package (its ``documentation``): the card of a built-in model, or
    what the checkpoint records."""
    card = lowdose["card"] or {}
    validity = lowdose["validity"]
    scaling = lowdose["scaling"]
    lines = [
        f"# {name}",
        "",
        description(lowdose),
        "",
        "## Input and output",
        "",
        f"- Input `image`: (batch, 1, y, x) float32 in {lowdose['units_in']}; any y, x >= 32.",
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
    lines += ["", "## Validation", "", *_validation_lines(validity)]
    if card.get("test_metrics"):
        lines += ["", "Test metrics on held-out data:", ""]
        lines += [f"- {key}: {value}" for key, value in card["test_metrics"].items()]
    return "\n".join(lines) + "\n"


def _validation_lines(validity: dict[str, Any] | None) -> list[str]:
    """The validity range: where the model's clean-free uPSNR gain was positive."""
    if validity is None:
        return ["The validity range (input noise levels where the model helps) was not measured."]
    if validity["sigma_high"] <= 0:  # the sweep's empty range
        return ["Validity range empty: no clean-free gain was measured at the acquired dose."]
    raw = validity.get("raw_units")
    in_raw = (
        f" ({raw['sigma_low']:.4g} to {raw['sigma_high']:.4g} in raw units, trained at "
        f"{raw['trained_sigma']:.4g})"
        if raw
        else ""
    )
    return [
        f"Validity range, measured clean-free on the validation data ({validity['method']}): the "
        f"model helps for input noise sigma {validity['sigma_low']:.4g} to "
        f"{validity['sigma_high']:.4g} on the network scale, trained at "
        f"{validity['trained_sigma']:.4g}{in_raw}; noise estimator `{validity['estimator']}`. "
        "Outside it, expect less gain or a loss."
    ]


def _file(name: str, files: dict[str, str]) -> dict[str, str]:
    return {"source": name, "sha256": files[name]}
