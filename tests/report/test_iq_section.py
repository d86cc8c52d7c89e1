"""The report's "Image quality" section: from ``lowdose iq``'s saved tables to blocks and files.

A small simulated QA phantom measured once per module (noisy FBP and blind NLM) feeds every
test; the summary's arithmetic is checked on a hand-made table whose answers are known.
"""

from __future__ import annotations

import base64
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.report.build import write_report
from lowdose.report.html import Figure, Heading, Paragraph, Table, to_html
from lowdose.report.iq_section import image_quality_blocks, iq_summary, write_iq_report


@pytest.fixture(scope="module")
def iq_folder(tmp_path_factory):
    """``lowdose iq``'s four files for a 96-px phantom, N = 4, methods noisy and nlm-blind."""
    from lowdose.evaluation.phantom_iq import measure_image_quality
    from lowdose.physics.noise_levels import NoiseLevel
    from lowdose.simulate.ct import build_ct_dataset

    root = tmp_path_factory.mktemp("iq")
    data = root / "qa.h5"
    level = NoiseLevel(photons_per_ray=1e5)
    build_ct_dataset(
        data, source="qa-phantom", noise="sinogram", level=level, realisations=4, size=96
    )
    measure_image_quality(data, filters=("nlm",), out_dir=root / "iq")
    return root / "iq"


def test_the_section_has_its_tables_figures_and_conventions(iq_folder):
    blocks = image_quality_blocks(iq_folder, name="ct dose")
    assert blocks[0] == Heading(3, "Image quality")
    tables = [b for b in blocks if isinstance(b, Table)]
    summary, dprime = tables
    assert [row[0] for row in summary.rows] == ["noisy", "nlm-blind"]
    iq = pd.read_csv(iq_folder / "iq.csv")
    pooled = iq[(iq["method"] == "noisy") & (iq["insert"] == "nps")]["sigma_hu"].item()
    assert summary.rows[0][1] == f"{pooled:.2f}"
    assert float(summary.rows[1][1]) < float(summary.rows[0][1])  # NLM lowered the noise
    assert dprime.headers == ["Method", "+3 HU", "+5 HU", "+10 HU", "+15 HU"]
    figures = [b for b in blocks if isinstance(b, Figure)]
    assert [f.filename for f in figures] == [
        "figures/ct_dose-iq-nps.png",
        "figures/ct_dose-iq-ttf.png",
    ]
    assert all(f.png.startswith(b"\x89PNG") and len(f.png) > 10_000 for f in figures)
    note = blocks[-1]
    assert isinstance(note, Paragraph) and "polystyrene" in note.text and "TG-233" in note.text
    assert "4 independent noisy FBP realisations of 96 px" in note.text
    html = to_html(blocks, title="t")
    assert html.count("data:image/png;base64,") == 2


def test_the_summary_takes_the_rows_it_names():
    rows = []
    for method, bias, f50, sigma, dprime in (
        ("noisy", 2.0, 0.5, 10.0, 1.0),
        ("net", -1.0, 0.3, 4.0, 3.0),
    ):
        base = {
            "method": method,
            "model": "unet" if method == "net" else "",
            "selection": "",
            "cnr": np.nan,
            "f50": np.nan,
            "hu_bias": np.nan,
            "sigma_hu": np.nan,
            "nps_mean": np.nan,
            "nps_peak": np.nan,
            "dprime_npw": np.nan,
            "dprime_npwe": np.nan,
        }
        rows += [
            {
                **base,
                "module": "sensitometry",
                "insert": "polystyrene",
                "nominal_hu": -35.0,
                "hu_bias": bias,
                "f50": f50,
                "cnr": 7.0,
            },
            {
                **base,
                "module": "sensitometry",
                "insert": "delrin",
                "nominal_hu": 340.0,
                "hu_bias": -3 * bias,
                "f50": 2 * f50,
            },
            {
                **base,
                "module": "uniform",
                "insert": "roi-centre",
                "nominal_hu": 0.0,
                "sigma_hu": 99.0,
            },
            {
                **base,
                "module": "uniform",
                "insert": "nps",
                "nominal_hu": 0.0,
                "sigma_hu": sigma,
                "nps_mean": 0.2,
                "nps_peak": 0.1,
            },
            {
                **base,
                "module": "low_contrast",
                "insert": "a",
                "nominal_hu": 3.0,
                "dprime_npw": dprime,
                "dprime_npwe": dprime / 2,
            },
            {
                **base,
                "module": "low_contrast",
                "insert": "b",
                "nominal_hu": 15.0,
                "dprime_npw": 3 * dprime,
                "dprime_npwe": np.nan,
            },
        ]
    summary = iq_summary(pd.DataFrame(rows))
    assert [r["method"] for r in summary] == ["noisy", "net"]
    noisy, net = summary
    assert noisy["sigma_hu"] == 10.0  # the pooled NPS ROIs, not one ROI
    assert noisy["mean_abs_bias_hu"] == pytest.approx(4.0)  # (|2| + |-6|) / 2
    assert net["mean_abs_bias_hu"] == pytest.approx(2.0)
    assert (net["f50_m35"], net["f50_p340"], net["cnr_m35"]) == (0.3, 0.6, 7.0)
    assert net["dprime_npw"] == pytest.approx(6.0) and net["dprime_npwe"] == pytest.approx(1.5)
    assert net["model"] == "unet" and noisy["model"] == ""


def test_the_standalone_report_is_written_with_its_figures(iq_folder, tmp_path):
    html = write_iq_report(iq_folder)
    assert html == iq_folder / "report.html"
    text = html.read_text()
    assert "Image quality" in text and len(re.findall("data:image/png;base64,", text)) == 2
    for match in re.findall(r'data:image/png;base64,([^"]+)"', text):
        assert base64.b64decode(match).startswith(b"\x89PNG")
    markdown = (iq_folder / "report.md").read_text()
    for name in ("iq-nps.png", "iq-ttf.png"):
        assert f"(figures/{name})" in markdown and (iq_folder / "figures" / name).is_file()
    with pytest.raises(LowdoseInputError, match=r"iq\.csv not found.*lowdose iq"):
        write_iq_report(tmp_path)
    assert image_quality_blocks(tmp_path) == []


def test_an_experiment_with_iq_results_gets_the_section_after_the_sweep(iq_folder, tmp_path):
    with_iq, without = tmp_path / "ct-dose", tmp_path / "ct24"
    for folder in (with_iq, without):
        (folder / "results").mkdir(parents=True)
    shutil.copytree(iq_folder, with_iq / "iq", ignore=shutil.ignore_patterns("report*", "fig*"))
    files = write_report(tmp_path)
    markdown = files.markdown.read_text()
    parts = {chunk.split("\n", 1)[0]: chunk for chunk in markdown.split("## Experiment ")[1:]}
    assert "### Image quality" in parts["ct-dose"] and "### Image quality" not in parts["ct24"]
    assert parts["ct-dose"].index("### Accuracy range against clean") < parts["ct-dose"].index(
        "### Image quality"
    )
    assert {p.name for p in files.figures} >= {"ct-dose-iq-nps.png", "ct-dose-iq-ttf.png"}
    conventions = json.loads((with_iq / "iq" / "iq.json").read_text())
    assert conventions["n_realisations"] == 4
