"""``benchmarks/builtin_models.py --smoke --models ct-sinogram``: multi-dose data, plain
Noise2Noise, per-dose tests on the single-dose files, a packed model with its card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lowdose.data.dataset import read_info

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "builtin_models.py"
DOSES = ("1", "0.5", "0.25", "0.1")


@pytest.mark.slow
def test_smoke_builds_trains_tests_per_dose_and_packs_ct_sinogram(tmp_path):
    work, pack = tmp_path / "work", tmp_path / "pack"
    command = [
        sys.executable,
        str(SCRIPT),
        "--smoke",
        "--models",
        "ct-sinogram",
        "--ct-source",
        "phantom",
        "--max-steps",
        "3",
        "--threads",
        "1",
        "--out",
        str(work),
        "--into",
        str(pack),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in pack.iterdir()) == [
        "ct-sinogram.json",
        "ct-sinogram.md",
        "ct-sinogram.safetensors",
    ]

    run = work / "runs" / "ct-sinogram-smoke-seed0-steps3"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["dose_range"] is None  # plain N2N
    data = work / "data"
    photons = []
    for dose in DOSES:  # each dose scored on its own single-dose file, at that file's I0
        level = read_info(data / f"ct-sinogram-smoke-seed0-dose{dose}.h5").attrs.noise_level
        results = pd.read_csv(run / f"test-dose{dose}" / "results.csv")
        assert set(results["method"]) == {"noisy", "n2n-mse"}
        assert (results["noise_level"] == level).all()
        photons.append(level)
    assert photons == sorted(photons, reverse=True)  # I0 falls with the dose

    card = json.loads((pack / "ct-sinogram.json").read_text())["card"]
    assert "photons per ray" in card["doses"] and "full-dose convention" in card["doses"]
    assert card["data_licence"].startswith("CC BY 3.0")
    assert all(f"output, {d} x full dose" in " ".join(card["test_metrics"]) for d in DOSES)
    assert "1x full in->out dB" in done.stdout
