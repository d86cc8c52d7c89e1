"""The report's context sections: the metric conventions and the environment with wall times.

A number is only comparable with the paper's when its conventions are stated beside it: the
PSNR data range and scaling, the HU window, oracle vs blind filter tuning, and clipping.
"""

from __future__ import annotations

import numpy as np

from lowdose.data.attributes import DatasetAttrs
from lowdose.report.html import BulletList, Heading, Table
from lowdose.report.sections import not_run

_TUNING_TEXT = {
    "oracle": "**oracle** filter tuning: parameters chosen per test image to maximise PSNR against "
    "its clean image (the paper's setting; an upper bound on what the filter can do)",
    "blind": "**blind** filter tuning: parameters tuned on held-out validation images; clean test "
    "images are never seen",
    "none": "networks and the noisy input need no tuning (`none`)",
}
_SCALING_TEXT = {
    "per_image_max": "each image divided by its clean image's maximum, the noisy ones by the same "
    "number (the paper's X-ray scaling)",
    "dataset_max": "every image divided by the dataset's maximum (the paper's CT scaling)",
    "none": "no scaling: metrics on the raw values",
}


def _unique(frame, column: str) -> list[str]:
    if frame is None or column not in frame:
        return []
    return sorted({str(v) for v in frame[column].dropna() if str(v) not in ("", "nan")})


def conventions(experiment) -> list:
    """Bullet list of the conventions behind this experiment's numbers."""
    results = experiment.results
    attrs = experiment.attrs
    items = []
    ranges = _unique(results, "data_range") or [str(attrs.psnr_data_range if attrs else 1.0)]
    items.append(f"PSNR and SSIM use data_range = {', '.join(ranges)} on the scaled images.")
    rules = _unique(results, "scaling_rule") or ([attrs.scaling_rule] if attrs else [])
    for rule in rules:
        items.append(f"Scaling `{rule}`: {_SCALING_TEXT.get(rule, 'as named')}.")
    if attrs is not None:
        items.append(
            f"Raw units `{attrs.raw_units}`, scaling offset "
            f"{attrs.scaling_offset} (scaled = (raw + offset) / divisor)."
        )
    windows = _unique(results, "hu_window")
    items.append(
        f"HU-window PSNR reported beside it for window(s) {', '.join(windows)} HU."
        if windows
        else "HU window: not applicable (no HU-window metric in these results)."
    )
    for tuning in _unique(results, "tuning"):
        items.append(_TUNING_TEXT.get(tuning, f"tuning `{tuning}`"))
    clipped = _unique(results, "clipped")
    if clipped:
        on = any(v.lower() in ("true", "1") for v in clipped)
        items.append(
            "Outputs clipped to [0, 1] before the metrics."
            if on
            else "Metrics on unclipped outputs (clipping to [0, 1] would add 0.4–1.2 dB on "
            "bright flat backgrounds)."
        )
    items += _data_items(results, attrs)
    items.append(
        "95 % CI: Student-t interval of the mean over test images; sweep crossings by "
        "linear interpolation on the mean curve over test images."
    )
    return [Heading(4, "Conventions"), BulletList(items)]


def _data_items(results, attrs: DatasetAttrs | None) -> list[str]:
    keys = ("noise_model", "noise_level", "target_psnr_db", "achieved_psnr_db", "n_realisations")
    noise = [f"{k} = {getattr(attrs, k)}" for k in keys] if attrs is not None else []
    items = ["Noise: " + ", ".join(noise) + "."] if noise else []
    if results is not None:
        n_images = results["image_index"].nunique() if "image_index" in results else "?"
        n_objects = results["object_id"].nunique() if "object_id" in results else "?"
        items.append(
            f"Test set: {n_images} images from {n_objects} distinct objects (split by "
            "object, never by image)."
        )
    return items


def _seconds(value) -> str:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(seconds):
        return "—"
    return f"{seconds:.1f} s" + (f" ({seconds / 60:.1f} min)" if seconds >= 60 else "")


def environment(experiment) -> list:
    """Machine, versions and wall time per stage, from ``experiment.json``."""
    blocks: list = [Heading(4, "Environment and wall times")]
    env = experiment.record.environment
    walls = experiment.record.wall_times_s
    if not env and not walls:
        return blocks + [
            not_run(
                "no environment or wall times in experiment.json",
                "Run `lowdose reproduce`, which records them.",
            )
        ]
    rows = [[str(k), str(v)] for k, v in env.items()]
    rows += [[f"wall time: {k}", _seconds(v)] for k, v in walls.items()]
    if walls:
        total = sum(float(v) for v in walls.values() if isinstance(v, int | float))
        rows.append(["wall time: total", _seconds(total)])
    return blocks + [Table(["Item", "Value"], rows)]
