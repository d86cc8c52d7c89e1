"""``lowdose fit``'s report from saved comparison files: units, the highlighted choice, panels.

Each test writes the files ``fit`` saves (``fit.json``, ``compare/{scores.csv, choice.json,
images.npz}``) for a small phantom, with any number of methods and score columns, and reads
the report back.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lowdose.report.fit_report import write_fit_report

DIVISOR = 2048.0
METHODS = ("noisy", "network", "network-tta", "builtin", "nlm-blind", "bm3d-blind", "bm3d-psd")


def _phantom_hu(rng: np.random.Generator) -> np.ndarray:
    """(2, 128, 128) CT slices in HU: a 40 HU disc with a bright insert, in air."""
    rows, cols = np.mgrid[0:128, 0:128]
    body = (rows - 64) ** 2 + (cols - 64) ** 2 < 50**2
    insert = (rows - 50) ** 2 + (cols - 70) ** 2 < 8**2
    clean = np.where(body, 40.0, -1000.0) + 200.0 * insert
    return np.stack([clean + rng.normal(0, 20.0, clean.shape) for _ in range(2)])


def write_fit_out(
    out: Path,
    *,
    ct: bool,
    preferred: str,
    sure_psnr_db: dict[str, float] | None = None,
    methods: tuple[str, ...] = METHODS,
) -> Path:
    """The files ``lowdose fit`` leaves in ``out``; returns ``out``."""
    rng = np.random.default_rng(0)
    noisy_hu = _phantom_hu(rng)
    noisy = ((noisy_hu + 1024.0) / DIVISOR if ct else noisy_hu / 1000.0).astype(np.float32)
    images = {"noisy": noisy}
    for k, name in enumerate(methods[1:]):  # outputs that keep 50 %, 40 %, ... of the noise
        images[name] = (noisy + (0.5 - 0.05 * k) * (noisy.mean() - noisy)).astype(np.float32)
    (out / "compare").mkdir(parents=True)
    np.savez_compressed(out / "compare" / "images.npz", **images)
    header = "method,flat_sigma,residual_lag1,upsnr_db" + (",sure_psnr_db" if sure_psnr_db else "")
    lines = [header]
    for k, name in enumerate(methods):
        line = f"{name},{0.01 / (k + 1):.6g},{'nan' if k == 0 else '0.01'},nan"
        if sure_psnr_db:
            line += f",{sure_psnr_db.get(name, float('nan')):.4f}"
        lines.append(line)
    (out / "compare" / "scores.csv").write_text("\n".join(lines) + "\n")
    choice = {
        "preferred": preferred,
        "reason": f"{preferred} leaves the least noise (sd 0.01)",
        "sigma_source": "single-image",
        "sigma": [0.01, 0.01],
        "psd_source": "single-psd",
        "object_id": ["P1", "P1"],
        "hu_divisor": [DIVISOR, DIVISOR] if ct else None,
        "flat_region": "body" if ct else None,
    }
    (out / "compare" / "choice.json").write_text(json.dumps(choice))
    record = {
        "plan": {"route": "single", "mode": "nb2nb", "reason": "one scan"},
        "options": {"budget": "00:01:00"},
        "inputs": ["scan"],
        "dataset": "d.h5",
        "run_dir": str(out / "train"),
        "denoised": [],
    }
    (out / "fit.json").write_text(json.dumps(record))
    return out


def _png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


def test_ct_report_is_in_hu_with_every_method_at_full_width(tmp_path):
    out = write_fit_out(tmp_path / "fit", ct=True, preferred="builtin")
    page = write_fit_report(out).read_text()
    markdown = (out / "report.md").read_text()
    assert "flat-region noise sd [HU]" in markdown and "inside the body" in markdown
    assert "| 20.5 |" in markdown  # the noisy input's 0.01 on the dataset scale x 2048
    assert "sd 20.5 HU" in markdown  # the reason's sd restated in HU
    assert "window -160..240 HU" in markdown and "[dataset scale]" not in markdown
    for name in METHODS:  # one full-width figure per method, unknown names too
        figure = out / "figures" / f"fit_{name}.png"
        assert f"figures/fit_{name}.png" in markdown and _png_width(figure) >= 1000
    assert page.count("<img") == len(METHODS)


def test_the_chosen_row_is_highlighted(tmp_path):
    out = write_fit_out(tmp_path / "fit", ct=True, preferred="builtin")
    page = write_fit_report(out).read_text()
    rows = re.findall(r"<tr( class=\"highlight\")?><td>([^<]*)</td>", page)
    highlighted = [html.unescape(text) for cls, text in rows if cls]
    assert highlighted == ["built-in model (no training) (lowdose's choice)"]
    assert "**lowdose would use: built-in model (no training)**" in (out / "report.md").read_text()


@pytest.mark.parametrize(("preferred", "disagrees"), [("bm3d-psd", True), ("builtin", False)])
def test_a_score_column_that_ranks_another_method_first_is_said(tmp_path, preferred, disagrees):
    sure = {"noisy": 40.0, "network": 41.0, "builtin": 43.5, "bm3d-psd": 42.0}
    out = write_fit_out(tmp_path / "fit", ct=True, preferred=preferred, sure_psnr_db=sure)
    write_fit_report(out)
    markdown = (out / "report.md").read_text()
    assert "SURE PSNR [dB]" in markdown and re.search(r"\| (\*\*)?43\.50(\*\*)? \|", markdown)
    line = (
        "**By SURE PSNR built-in model (no training) ranks first** (43.50 dB, 1.50 dB above "
        "BM3D (noise spectrum))"
    )
    assert (line in markdown) is disagrees


def test_xray_report_names_the_dataset_scale(tmp_path):
    out = write_fit_out(tmp_path / "fit", ct=False, preferred="network", methods=METHODS[:3])
    write_fit_report(out)
    markdown = (out / "report.md").read_text()
    assert "flat-region noise sd [dataset scale]" in markdown and "[HU]" not in markdown
    assert "dataset scale" in markdown.split("## Images")[1] and " HU" not in markdown
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "fit_network-tta.png",
        "fit_network.png",
        "fit_noisy.png",
    ]


def test_fit_report_renders_in_headless_chromium(tmp_path):
    out = write_fit_out(tmp_path / "fit", ct=True, preferred="builtin")
    url = write_fit_report(out).resolve().as_uri()
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if browser is None:
        pytest.fail("chromium is not installed: run scripts/test-deps.sh (as root) and rerun")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r'<pre id="render-check">([^<]*)</pre>', dom.stdout)
    assert match, f"no render check in DOM (rc {dom.returncode}): {dom.stderr[-500:]}"
    check = dict(item.split("=") for item in match.group(1).split())
    assert check["images_ok"] == f"{len(METHODS)}/{len(METHODS)}"
    assert check["tables"] == "1" and check["tables_empty"] == "0"
