"""`lowdose report`: fake saved results in, report.md + self-contained report.html out.

The fixture generator writes files exactly as docs/interfaces.md ("Results") describes them, so
the report is tested without evaluate/sweep/train having run. The sweep curves are linear in input
PSNR, so their crossings are known exactly (n2n-mse gain 0 at 40 dB, n2c-mse at 37.14 dB, the two
models cross at 30 dB input / 32.5 dB output).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer.testing

import lowdose.cli
import lowdose.cli.report_cmd  # noqa: F401  (registers the command)
from lowdose.core.errors import LowdoseInputError
from lowdose.data.results import mean_ci95
from lowdose.report.analysis import curve_crossings, zero_crossings
from lowdose.report.build import find_experiments, load_experiment, write_report
from lowdose.report.paper_numbers import PAPER_TABLES

# (method, model, tuning, selection, mean PSNR offset over the paper's baseline)
_METHODS = [
    ("noisy", "", "none", "", 0.0),
    ("n2n-mae", "unet-w16", "none", "clean-free", 7.0),
    ("n2n-mse", "unet-w16", "none", "clean-free", 8.5),
    ("n2c-mse", "unet-w16", "none", "clean-selected", 9.0),
    ("gaussian", "", "oracle", "", 5.0),
    ("gaussian", "", "blind", "", 4.5),
    ("bilateral", "", "oracle", "", 5.2),
    ("median", "", "oracle", "", 4.8),
]
_SEEDS = (0, 1, 2)  # every network trained three times; seed -1 for the others
_SWEEP_LINES = {  # (method, tuning, trained_at) -> output = a + b * input
    ("n2n-mse", "none", 29.91): (10.0, 0.75),
    ("n2c-mse", "none", 29.91): (13.0, 0.65),
}


def _phantom(size: int, shift: float, *, ct: bool) -> np.ndarray:
    """A smooth torso-like image; for CT in scaled units of HU (HU = value * 3095 - 1024)."""
    y, x = np.mgrid[0:size, 0:size] / size
    body = ((x - 0.5) / 0.38) ** 2 + ((y - 0.5 - shift) / 0.3) ** 2 < 1
    organ = ((x - 0.62) ** 2 + (y - 0.45) ** 2) < 0.01
    bone = ((x - 0.4) ** 2 + (y - 0.6 - shift) ** 2) < 0.003
    if ct:
        hu = np.where(body, 40.0, -1000.0) + 60.0 * organ + 660.0 * bone
        return ((hu + 1024.0) / 3095.0).astype(np.float32)
    fall_off = np.exp(-(((x - 0.5) / 0.35) ** 2 + ((y - 0.5 - shift) / 0.42) ** 2))
    return ((0.7 * fall_off + 0.4 * organ) / 1.1).astype(np.float32)


def _results(name: str, baseline_db: float, *, rng: np.random.Generator, n: int = 6, ct: bool):
    """A results table: n images of n / 2 objects, networks at three seeds, CT metrics in HU."""
    rows = []
    for method, model, tuning, selection, offset in _METHODS:
        for seed in _SEEDS if selection else (-1,):
            seed_shift = 0.3 * seed if seed >= 0 else 0.0
            for i in range(n):
                psnr = baseline_db + offset + seed_shift + rng.normal(0, 0.4)
                rows.append(
                    {
                        "dataset": f"{name}.h5",
                        "dataset_sha256": "ab" * 32,
                        "image_index": i,
                        "object_id": f"obj{i // 2}",
                        "method": method,
                        "model": model,
                        "tuning": tuning,
                        "params": "{}" if tuning == "none" else json.dumps({"sigma": 1.2}),
                        "noise_level": 0.05,
                        "input_psnr_db": baseline_db + rng.normal(0, 0.2),
                        "psnr_db": psnr,
                        "ssim": min(0.99, 0.5 + psnr / 100),
                        "psnr_hu_window_db": psnr - 3 if ct else np.nan,
                        "hu_window": "-1000..1000" if ct else "",
                        "data_range": 1.0,
                        "scaling_rule": "dataset_max" if ct else "per_image_max",
                        "clipped": False,
                        "seed": seed,
                        "selection": selection,
                        "upsnr_db": psnr + rng.normal(0, 0.3),
                        "psnr_hu_soft_db": psnr - 9 if ct else np.nan,
                        "ssim_wang_hu_window": min(0.99, 0.4 + psnr / 100) if ct else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def _sweep(*, rng: np.random.Generator, n_images: int = 3) -> pd.DataFrame:
    rows = []
    for level, input_db in enumerate(np.arange(5.0, 51.0, 5.0)):
        for i in range(n_images):
            x = input_db + rng.uniform(-0.3, 0.3)
            for (method, tuning, trained), (a, b) in _SWEEP_LINES.items():
                rows.append((method, trained, level, i, x, a + b * x, tuning))
            rows.append(("gaussian", np.nan, level, i, x, x + 6 * np.exp(-x / 20), "oracle"))
    columns = [
        "method",
        "model_trained_at_db",
        "noise_level",
        "image_index",
        "input_psnr_db",
        "output_psnr_db",
        "tuning",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["gain_db"] = frame["output_psnr_db"] - frame["input_psnr_db"]
    return frame


def _metrics(final_db: float, epochs: int = 6) -> pd.DataFrame:
    rows = []
    for e in range(epochs):
        lr = 1e-3 * 0.5 ** (e // 3)
        rows.append(
            {
                "epoch": e,
                "step": 10 * e + 9,
                "train_loss": 0.01 / (e + 1),
                "val_psnr_db": np.nan,
                "lr": lr,
                "elapsed_s": 5.0 * e + 4,
            }
        )
        rows.append(
            {
                "epoch": e,
                "step": 10 * e + 9,
                "train_loss": np.nan,
                "val_psnr_db": final_db - 6 * 0.6**e,
                "lr": np.nan,
                "elapsed_s": 5.0 * e + 5,
            }
        )
    return pd.DataFrame(rows)


def make_fake_run(root: Path, *, rng: np.random.Generator) -> Path:
    """Write a run directory: xray and ct24 complete, ct18 with results only (no json/sweep/...)."""
    for name, complete in (("xray", True), ("ct24", True), ("ct18", False)):
        paper = PAPER_TABLES[name]
        folder = root / name
        ct = name.startswith("ct")
        results = _results(name, paper.baseline_psnr_db, rng=rng, ct=ct)
        (folder / "results").mkdir(parents=True)
        results.to_csv(folder / "results" / "results.csv", index=False)
        if not complete:
            continue
        attrs = {
            "modality": "ct" if ct else "xray",
            "noise_model": "gaussian" if ct else "poisson",
            "noise_level": 0.05,
            "target_psnr_db": paper.baseline_psnr_db,
            "achieved_psnr_db": paper.baseline_psnr_db + 0.01,
            "scaling_rule": "dataset_max" if ct else "per_image_max",
            "raw_units": "hu" if ct else "transmission",
            "scaling_offset": 1024.0 if ct else 0.0,
            "n_realisations": 2,
        }
        if ct:
            attrs["dataset_max"] = 3095.0
        meta = {
            "name": name,
            "paper_table": paper.table_id,
            "scale": "quick",
            "baseline_target_db": paper.baseline_psnr_db,
            "dataset_attrs": attrs,
            "wall_times_s": {"simulate": 12.5, "train": 301.0, "evaluate": 40.2},
            "environment": {
                "cpu": "test CPU (2 cores)",
                "gpu": "none",
                "torch": "2.13.0",
                "lowdose": "0.1.0",
            },
        }
        (folder / "experiment.json").write_text(json.dumps(meta))
        clean = np.stack([_phantom(64, s, ct=ct) for s in (0.0, 0.05)])
        sigma = 10 ** (-paper.baseline_psnr_db / 20)
        panels = {
            "clean": clean,
            "noisy": clean + rng.normal(0, sigma, clean.shape),
            "index": np.array([0, 3]),
        }
        if ct:  # evaluate writes each panel image's divisor (HU = value * scale - offset)
            panels["scale"] = np.full(2, 3095.0)
        for method, scale in (
            ("n2n-mse", 0.3),
            ("n2c-mse", 0.25),
            ("gaussian", 0.5),
            ("bilateral", 0.45),
            ("median", 0.55),
        ):
            panels[method] = clean + rng.normal(0, sigma * scale, clean.shape)
        np.savez(
            folder / "results" / "panels.npz",
            **{k: np.asarray(v, np.float32) for k, v in panels.items()},
        )
        (folder / "sweep").mkdir()
        _sweep(rng=rng).to_csv(folder / "sweep" / "sweep.csv", index=False)
        runs = (("n2n-mse", "n2n-mse/seed0", 38.0), ("n2n-mse", "n2n-mse/seed1", 38.2))
        for run, path, final in (*runs, ("n2c-mse", "n2c-mse", 38.6)):  # seed folders, flat
            run_dir = folder / "train" / path
            run_dir.mkdir(parents=True)
            _metrics(final).to_csv(run_dir / "metrics.csv", index=False)
            (run_dir / "manifest.json").write_text(
                json.dumps(
                    {"model": {"name": "unet-w16", "width": 16}, "mode": run[:3], "loss": run[4:]}
                )
            )
    return root


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    root = make_fake_run(tmp_path_factory.mktemp("run"), rng=np.random.default_rng(7))
    files = write_report(root)
    return root, files


def test_crossings_by_linear_interpolation():
    x = np.array([10.0, 20.0, 30.0, 40.0])
    assert [c.input_psnr_db for c in zero_crossings(x, np.array([-1.0, 1.0, 3.0, -1.0]))] == [
        15.0,
        37.5,
    ]
    assert [c.direction for c in zero_crossings(x, np.array([-1.0, 1.0, 3.0, -1.0]))] == [
        "up",
        "down",
    ]
    assert zero_crossings(x, np.array([1.0, 2.0, 3.0, 4.0])) == []
    c = curve_crossings(x, 10 + 0.75 * x, x + 1.0, 13 + 0.65 * (x + 1.0))
    assert (
        len(c) == 1
        and c[0].input_psnr_db == pytest.approx(30.0)
        and c[0].value == pytest.approx(32.5)
    )
    mean, half = mean_ci95(np.array([1.0, np.nan, 3.0]))
    assert mean == 2.0 and half == pytest.approx(12.706 * 1.0, rel=1e-3)


def _row(text: str, start: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def _section(text: str, name: str) -> str:
    start = text.index(f"## Experiment {name}")
    end = text.find("## Experiment ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_markdown_table_has_paper_numbers_and_differences(report_run):
    root, files = report_run
    text = files.markdown.read_text()
    results = pd.read_csv(root / "xray" / "results" / "results.csv")
    nets = results[results["method"] == "n2n-mse"]
    ours = nets["psnr_db"].mean()  # every seed saw the same images: the mean of seed means
    sd = nets.groupby("seed")["psnr_db"].mean().std(ddof=1)
    cells = _row(_section(text, "xray"), "| Noise2Noise MSE loss · unet-w16 · clean-free |")
    assert cells[1] == "6 / 3" and cells[2] == "3"  # images / objects, seeds
    assert cells[3] == f"{ours:.2f} ± {sd:.2f}"  # mean ± sd over seeds
    assert cells[5] == "39.34" and cells[6] == f"{ours - 39.34:+.2f}"
    assert "| Gaussian filter · oracle |" in text and "| Gaussian filter · blind |" in text
    assert "| Noise2Clean MSE loss · unet-w16 · clean-selected |" in text
    assert "42.09" in text and "30.01" in text
    assert "Baseline (noisy) PSNR**: target 29.91 dB (data_range 1)" in text
    for name in ("xray", "ct24"):
        for kind in ("sweep", "panels", "training"):
            png = root / "report" / "figures" / f"{name}-{kind}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"(figures/{name}-{kind}.png)" in text


def test_ct_tables_give_both_hu_windows_and_wang_ssim_for_every_row(report_run):
    root, files = report_run
    ct24 = _section(files.markdown.read_text(), "ct24")
    header = _row(ct24, "| Tool |")
    soft = header.index("PSNR HU −160..240 [dB]")
    wide = header.index("PSNR HU −1000..1000 [dB]")
    assert "SSIM Wang (Gaussian 11×11, σ 1.5), HU −1000..1000" in header
    results = pd.read_csv(root / "ct24" / "results" / "results.csv")
    bilateral = results[results["method"] == "bilateral"]
    cells = _row(ct24, "| Bilateral filter · oracle |")  # filters carry the HU metrics too
    assert cells[soft] == f"{bilateral['psnr_hu_soft_db'].mean():.2f}"
    assert cells[wide] == f"{bilateral['psnr_hu_window_db'].mean():.2f}"
    assert "uPSNR [dB] (95 % CI)" in header  # beside PSNR: a check of the clean-free estimator
    assert "soft-tissue window -160..240 HU (data_range 400)" in ct24


def test_paired_differences_against_the_best_filter_and_the_noisy_input(report_run):
    root, files = report_run
    xray = _section(files.markdown.read_text(), "xray")
    results = pd.read_csv(root / "xray" / "results" / "results.csv")
    oracle = results[results["tuning"] == "oracle"]
    best = oracle.groupby("method")["psnr_db"].mean().idxmax()
    per_image = results[results["method"] == "n2n-mse"].groupby("image_index")["psnr_db"].mean()
    reference = oracle[oracle["method"] == best].set_index("image_index")["psnr_db"]
    expected = (per_image - reference).mean()
    name = {"gaussian": "Gaussian", "bilateral": "Bilateral", "median": "Median"}[best]
    start = f"| Noise2Noise MSE loss · unet-w16 · clean-free | {name} filter · oracle |"
    cells = _row(xray, start)
    assert cells[2] == f"{expected:+.2f}" and cells[4:] == ["6", "3", "3"]
    low, high = (float(v) for v in cells[3].strip("[]").split(","))
    assert low <= expected <= high
    noisy = _row(xray, "| Noise2Noise MSE loss · unet-w16 · clean-free | Noisy input (baseline) |")
    assert float(noisy[2]) > 7  # the networks' offset over the noisy input
    assert "Test set: 6 images of 3 objects; networks trained with seed(s) 0, 1, 2." in xray
    assert "cluster-bootstrap percentile interval resampling whole objects" in xray
    # 3 objects: the report says the intervals are descriptive, not CIs for new objects
    assert "**Only 3 test objects**" in xray and "read them as descriptive" in xray


def test_sweep_crossings_reported_as_numbers(report_run):
    text = report_run[1].markdown.read_text()
    n2n = next(r for r in text.splitlines() if r.startswith("| n2n-mse (trained at 29.91 dB) |"))
    n2c = next(r for r in text.splitlines() if r.startswith("| n2c-mse (trained at 29.91 dB) |"))
    assert "| 40.00 |" in n2n and "| 37.14 |" in n2c
    assert "gain > 0 throughout" in text  # the oracle Gaussian never crosses zero
    cross = next(r for r in text.splitlines() if r.startswith("| n2n-mse (trained at 29.91 dB) × "))
    assert "| 30.00 | 32.50 |" in cross


def test_missing_parts_say_not_run_and_single_folder_works(report_run, tmp_path):
    text = report_run[1].markdown.read_text()
    ct18 = text[text.index("## Experiment ct18") :]
    assert ct18.count("**Not run**") == 4  # sweep, panels, training, environment
    assert "30.01" in ct18  # the paper table still found by name without experiment.json
    single = write_report(report_run[0] / "ct18", out_dir=tmp_path / "out")
    assert "## Experiment ct18" in single.markdown.read_text() and single.figures == ()


def test_minimal_files_still_give_a_report(tmp_path):
    """Only the required columns, a panel file without methods, an empty train folder."""
    folder = tmp_path / "mine"
    (folder / "results").mkdir(parents=True)
    (folder / "sweep").mkdir()
    (folder / "train" / "empty-run").mkdir(parents=True)
    pd.DataFrame({"method": ["noisy", "gaussian"], "psnr_db": [20.0, 25.0]}).to_csv(
        folder / "results" / "results.csv", index=False
    )
    clean = _phantom(32, 0.0, ct=False)
    np.savez(folder / "results" / "panels.npz", clean=clean, noisy=clean + 0.05)
    sweep = {
        "method": ["median"] * 2,
        "noise_level": [1, 2],
        "input_psnr_db": [10.0, 30.0],
        "output_psnr_db": [15.0, 25.0],
    }
    pd.DataFrame(sweep).to_csv(folder / "sweep" / "sweep.csv", index=False)
    files = write_report(folder)
    text = files.markdown.read_text()
    assert "| Gaussian filter | 1 / 1 | — | 25.00 | — | +5.00 | — |" in text
    assert "| 20.00 |" in text.split("Accuracy range against clean")[1]  # median gain: +5 -> -5 dB
    assert "Training curves\n\n**Not run**" in text and len(files.figures) == 2


def test_bad_input_raises_one_line_error(tmp_path):
    with pytest.raises(LowdoseInputError, match="no experiment results"):
        find_experiments(tmp_path)
    (tmp_path / "x" / "results").mkdir(parents=True)
    pd.DataFrame({"method": ["noisy"]}).to_csv(tmp_path / "x" / "results" / "results.csv")
    with pytest.raises(LowdoseInputError, match=r"results\.csv: missing column\(s\) psnr_db"):
        load_experiment(tmp_path / "x")


def test_cli_report_writes_to_out(report_run, tmp_path):
    result = typer.testing.CliRunner().invoke(
        lowdose.cli.app, ["report", str(report_run[0] / "ct18"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").is_file()
    bad = typer.testing.CliRunner().invoke(lowdose.cli.app, ["report", str(tmp_path / "none")])
    assert bad.exit_code == 1 and "not a folder" in " ".join(bad.output.split())


def test_html_is_self_contained(report_run):
    root, files = report_run
    page = files.html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == len(files.figures) == 6
    inlined = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert inlined == {p.read_bytes() for p in files.figures}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("chromium is not installed: run scripts/test-deps.sh (as root) and rerun the tests")


def _run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [_chromium(), *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_report_renders_in_headless_chromium(report_run, tmp_path):
    root, files = report_run
    url = files.html.resolve().as_uri()
    dom = _run_chromium(["--virtual-time-budget=5000", "--dump-dom", url], tmp_path / "p1")
    match = re.search(r'<pre id="render-check">([^<]*)</pre>', dom.stdout)
    assert match, f"no render check in DOM (rc {dom.returncode}): {dom.stderr[-500:]}"
    check = dict(item.split("=") for item in match.group(1).split())
    ok, total = (int(v) for v in check["images_ok"].split("/"))
    assert total == len(files.figures) and ok == total
    n_tables = files.html.read_text().count("<table>")
    assert int(check["tables"]) == n_tables > 5 and int(check["tables_empty"]) == 0
    assert int(check["rows"]) > 30
    shot = root / "report" / "screenshot.png"
    _run_chromium([f"--screenshot={shot}", "--window-size=1280,2000", url], tmp_path / "p2")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_ct_panels_shown_in_hu_from_the_panel_scale(report_run):
    text = report_run[1].markdown.read_text()
    ct24 = text[text.index("## Experiment ct24") : text.index("## Experiment ct18")]
    xray = text[text.index("## Experiment xray") : text.index("## Experiment ct24")]
    assert "Display: HU window [-160, 240] (W 400, L 40)" in ct24
    assert "Display: scaled units (data_range 1)" in xray


def test_sinogram_experiment_has_no_paper_column_and_one_scale_baseline(tmp_path):
    """ct24-sinogram names paper Table IV in its file, but its noise is not the paper's."""
    folder = tmp_path / "ct24-sinogram"
    (folder / "results").mkdir(parents=True)
    results = _results("ct24-sinogram", 20.0, rng=np.random.default_rng(3), ct=True)
    results.to_csv(folder / "results" / "results.csv", index=False)
    attrs = {
        "modality": "ct",
        "noise_model": "sinogram",
        "scaling_rule": "dataset_max",
        "raw_units": "hu",
        "scaling_offset": 1024.0,
        "target_psnr_db": 24.44,
        "target_scale": "hu_window",
        "achieved_psnr_hu_window_db": 24.43,
    }
    meta = {"name": "ct24-sinogram", "paper_table": "IV", "baseline_target_db": 24.44}
    (folder / "experiment.json").write_text(json.dumps({**meta, "dataset_attrs": attrs}))
    text = write_report(folder, out_dir=tmp_path / "out").markdown.read_text()
    assert "Ours − paper" not in text and "Paper [dB]" not in text
    assert "beyond the paper" in text
    noisy = results[results["method"] == "noisy"]["psnr_hu_window_db"].mean()
    unit = "HU window -1000..1000, data_range 2000"
    assert f"target 24.44 dB ({unit}), achieved {noisy:.2f} dB ({unit}, test set)" in text
    assert "| ct24-sinogram | — |" in text  # the overview names no paper table either


def test_results_without_clean_images_show_upsnr(tmp_path):
    folder = tmp_path / "mine"
    (folder / "results").mkdir(parents=True)
    results = _results("mine", 25.0, rng=np.random.default_rng(5), ct=False)
    results["psnr_db"] = np.nan  # users' own data: two acquisitions, no clean image
    results["ssim"] = np.nan
    results.to_csv(folder / "results" / "results.csv", index=False)
    text = write_report(folder, out_dir=tmp_path / "out").markdown.read_text()
    assert "Mean uPSNR (no clean images) per method" in text
    header = _row(text, "| Tool |")
    assert header[3] == "Mean uPSNR [dB] (± sd over seeds)" and header[4] == "95 % CI [dB]"
    cells = _row(text, "| Median filter · oracle |")
    assert cells[3] != "—" and cells[4].startswith("[")  # uPSNR with its bootstrap interval
    pairs = _row(text, "| Median filter · oracle | Noisy input (baseline) |")
    assert float(pairs[2]) == pytest.approx(4.8, abs=1.0)
