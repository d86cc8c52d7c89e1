"""The report's context sections: the metric conventions and the environment with wall times.

A number is only comparable with the paper's when its conventions are stated beside it: the
PSNR data range and scaling, the HU window, oracle vs blind filter tuning, and clipping.
"""

from __future__ import annotations

import numpy as np

from lowdose.data.attributes import DatasetAttrs
from lowdose.report.analysis import is_model_method
from lowdose.report.html import BulletList, Heading, Table
from lowdose.report.sections import not_run

_TUNING_TEXT = {
    "oracle": "**oracle** filter tuning: parameters chosen per test image to maximise PSNR against "
    "its clean image (the paper's setting; an upper bound on what the filter can do)",
    "blind": "**blind** filter tuning: one setting for the dataset, chosen on the training split "
    "against a second noisy realisation (no clean image at all, like Noise2Noise)",
    "blind-clean": "**blind-clean** filter tuning: one setting for the dataset, chosen on the "
    "training split against its clean images (clean data used, never the test images)",
    "blind-sigma": "**blind-sigma** filter setting (the white-noise rule): no search; NLM h = "
    "0.8 sigma, BM3D sigma_psd = sigma, with sigma the noise sd of each test scan estimated "
    "from its own pair (or single image); no clean image",
    "blind-psd": "**blind-psd** BM3D: given the noise power spectrum of the training pairs' "
    "difference (y1 - y2)/sqrt(2), its strength (a multiplier of the spectrum) chosen by their "
    "pair uMSE; no clean image. The strongest classical baseline for correlated (FBP) noise",
    "blind-psd-image": "**blind-psd-image** BM3D: the blind-psd spectrum, its strength chosen per "
    "test image by the uMSE of that image's own pair; no clean image",
    "single-psd": "**single-psd** BM3D: the noise power spectrum estimated from each test image "
    "alone (one scan), strength 1; no clean image",
    "oracle-psd": "**oracle-psd** BM3D: the spectrum of the true test noise, strength tuned per "
    "image against its clean image (an upper bound)",
    "none": "networks and the noisy input need no tuning (`none`)",
}
_SELECTION_TEXT = {
    "clean-free": "**clean-free** network: validation and checkpoint choice against a second "
    "noisy realisation; no clean image was read in training",
    "clean-selected": "**clean-selected** network: checkpoint chosen by PSNR against clean "
    "validation images (Noise2Clean, or a Noise2Noise run validated on clean images)",
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
    items += _metric_items(results)
    for tuning in _unique(results, "tuning"):
        items.append(_TUNING_TEXT.get(tuning, f"tuning `{tuning}`"))
    for selection in _unique(results, "selection"):
        items.append(_SELECTION_TEXT.get(selection, f"selection `{selection}`"))
    items += _seed_items(results)
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
        "95 % CI of a mean: Student-t interval over test images (each image first averaged over a "
        "network's seeds); of a paired difference and of uPSNR: cluster-bootstrap percentile "
        "interval resampling whole objects (2000 draws, seed 0). Sweep crossings by linear "
        "interpolation on the mean curve over test images."
    )
    return [Heading(4, "Conventions"), BulletList(items)]


def _metric_items(results) -> list[str]:
    windows = _unique(results, "hu_window")
    items = [
        "SSIM: 7×7 uniform window on the dataset scale (data_range 1); 'SSIM Wang': Wang et al. "
        "(2004), Gaussian 11×11 window, σ 1.5, on HU clipped to -1000..1000 (data_range 2000).",
        f"HU-window PSNR for window(s) {', '.join(windows)} HU and the soft-tissue window "
        "-160..240 HU (data_range 400), both images clipped to the window, data_range its width."
        if windows
        else "HU window: not applicable (no HU-window metric in these results).",
    ]
    if results is not None and "upsnr_db" in results:
        items.append(
            "uPSNR: PSNR (data_range 1) of the unbiased MSE estimate mean((f(y1) − y2)²) − "
            "Var(y1 − y2)/2 from two noisy realisations, no clean image used; uMSE is averaged "
            "over images before the conversion to dB."
        )
    return items


def _seed_items(results) -> list[str]:
    if results is None or not results["method"].map(is_model_method).any():
        return []
    nets = results[results["method"].map(is_model_method)]
    seeds = sorted({int(s) for s in nets["seed"].dropna() if int(s) >= 0}) if "seed" in nets else []
    if not seeds:
        return ["Network training seeds: not recorded in these results."]
    if len(seeds) > 1:
        return [
            f"Networks: {len(seeds)} trainings each (seeds {', '.join(map(str, seeds))}); their "
            "rows give the mean over seeds of the per-seed mean, ± the sd over seeds; the "
            "sweep against clean uses the first seed's checkpoint."
        ]
    return [
        f"Networks: one training seed ({seeds[0]}), so no spread over seeds (`lowdose demo` "
        "trains one; `lowdose reproduce --seeds K`, default 3, trains K)."
    ]


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
