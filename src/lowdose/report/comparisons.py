"""Paired comparisons: "method − reference" per test image, with cluster-bootstrap 95 % CIs.

Two references per experiment and noise level: the best filter by mean PSNR among the
oracle-tuned filters (any tuning when none is oracle), and the noisy input. Each difference is
taken image by image on the images both were scored on, each image first averaged over a
network's seeds; the 95 % interval resamples whole objects (patients, phantoms), 2000 draws,
seed 0 (:func:`lowdose.data.paired.paired_table`). PSNR on data_range 1; the clean-free uPSNR
when the test set has no clean images.
"""

from __future__ import annotations

import numpy as np

from lowdose.data.paired import PairedDifference, paired_table
from lowdose.data.results import with_defaults
from lowdose.report.analysis import FILTER_METHODS, is_model_method
from lowdose.report.html import Heading, Paragraph, Table
from lowdose.report.sections import (
    fmt_number,
    not_run,
    primary_metric,
    row_label,
    summary_of,
)

_HEADERS = [
    "Method",
    "Reference",
    "Mean difference [dB]",
    "95 % CI [dB]",
    "Images",
    "Objects",
    "Seeds",
]


def references(summary, metric: str) -> list[str]:
    """Summary labels of the references: the best oracle filter (by mean ``metric``), the noisy
    input; each only when present."""
    filters = summary[summary["method"].isin(FILTER_METHODS)]
    oracle = filters[filters["tuning"] == "oracle"]
    pool = oracle if len(oracle) else filters
    found = []
    values = pool[metric].to_numpy(dtype=float)
    if np.isfinite(values).any():
        found.append(str(pool.iloc[int(np.nanargmax(values))]["label"]))
    if (summary["method"] == "noisy").any():
        found.append(str(summary.loc[summary["method"] == "noisy", "label"].iloc[0]))
    return found


def paired_comparisons(experiment) -> list:
    """Tables of ``method − reference`` with 95 % CIs, per noise level and reference."""
    blocks: list = [Heading(3, "Paired comparisons (method − reference)")]
    summary = summary_of(experiment)
    if summary is None:
        return blocks + [not_run("no results/results.csv", "Run `lowdose evaluate`.")]
    metric = primary_metric(experiment.results)
    frame = with_defaults(experiment.results)
    labels = {str(r["label"]): row_label(r) for _, r in summary.iterrows()}
    levels = sorted(frame["noise_level"].unique(), key=lambda v: (np.isnan(v), v))
    for level in levels:
        part = frame[frame["noise_level"] == level] if not np.isnan(level) else frame
        here = summary[summary["noise_level"] == level] if not np.isnan(level) else summary
        if len(levels) > 1:
            blocks.append(Heading(4, f"Noise level {level:g}"))
        blocks += _level_tables(part, here, metric, labels)
    return blocks


#: Below this many test objects the cluster-bootstrap intervals are flagged as descriptive.
FEW_OBJECTS = 5


def _level_tables(results, summary, metric: str, labels: dict) -> list:
    found = references(summary, metric)
    if not found:
        return [Paragraph("No filter or noisy-input rows to compare with.", css_class="note")]
    blocks = [Paragraph(_test_set_text(results))]
    for reference in found:
        rows = []
        for diff in paired_table(results, reference, metric=metric):
            if diff.method.startswith("noisy") and reference != found[-1]:
                continue  # noisy − best filter says nothing the other table does not
            rows.append(_row(diff, labels))
        name = "PSNR" if metric == "psnr_db" else "uPSNR (no clean images)"
        caption = (
            f"{name} of each method minus that of {labels.get(reference, reference)}, image by "
            "image (data_range 1; each image first averaged over a network's seeds); mean over "
            "images; 95 % CI: cluster-bootstrap percentile interval resampling whole objects "
            "(2000 draws, seed 0). An interval that excludes 0 is a difference the test set "
            "resolves."
        )
        blocks.append(Table(_HEADERS, rows, caption=caption, numeric=(2, 3, 4, 5, 6)))
    return blocks


def _row(diff: PairedDifference, labels: dict) -> list[str]:
    method = diff.method
    is_net = is_model_method(method.split(" ")[0])  # a summary label starts with the method
    ci = (
        f"[{fmt_number(diff.ci_low_db, signed=True)}, {fmt_number(diff.ci_high_db, signed=True)}]"
        if np.isfinite(diff.ci_low_db)
        else ("— (one object)" if diff.n_objects == 1 else "—")
    )
    return [
        labels.get(method, method),
        labels.get(diff.reference, diff.reference),
        fmt_number(diff.mean_db, signed=True),
        ci,
        str(diff.n_images),
        str(diff.n_objects),
        str(diff.n_seeds) if is_net else "—",
    ]


def _test_set_text(results) -> str:
    images = results["image_index"].nunique()
    objects = results["object_id"].nunique()
    nets = results[results["method"].map(is_model_method)]
    seeds = sorted({int(s) for s in nets["seed"] if int(s) >= 0})
    seed_text = (
        f"networks trained with seed(s) {', '.join(map(str, seeds))}"
        if seeds
        else "network seeds not recorded"
    )
    text = f"Test set: {images} images of {objects} objects; {seed_text}."
    if 1 < objects < FEW_OBJECTS:
        # A bootstrap over k clusters has only C(2k-1, k) distinct resamples (3 for k = 2): its
        # percentile interval is the spread of the few objects' means, far narrower than a
        # 95 % CI for new objects would be.
        text += (
            f" **Only {objects} test objects**: the cluster bootstrap has few distinct "
            "resamples, so its intervals show how the objects differ from each other and "
            "understate the uncertainty for new objects; read them as descriptive."
        )
    return text
