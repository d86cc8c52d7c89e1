"""Training engine: a real short training, config validation, kill-and-resume, DDP on gloo."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
import yaml
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

import lowdose.cli.train_cmd  # noqa: F401  (registers `lowdose train`)
from lowdose.cli._app import app
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr
from lowdose.data.dataset import dataset_sha256, load_split
from lowdose.data.writer import write_dataset
from lowdose.models.checkpoint import load_model
from lowdose.training.config import TrainConfig, load_train_config, make_train_config
from lowdose.training.run import train

PHOTONS_PER_PIXEL = 800.0  # ~31 dB on images spanning 0.3..0.9


def _smooth_poisson_dataset(path, *, n_images=24, size=64, with_clean=True, seed=0):
    """Smooth random 'projections' with Poisson noise, N = 2, split 18/3/3 by object."""
    rng = np.random.default_rng(seed)
    clean = np.stack([gaussian_filter(rng.random((size, size)), 4) for _ in range(n_images)])
    low, span = clean.min(axis=(1, 2), keepdims=True), np.ptp(clean, axis=(1, 2), keepdims=True)
    clean = ((clean - low) / span * 0.6 + 0.3).astype(np.float32)  # (I, H, W) in 0.3..0.9
    counts = rng.poisson(PHOTONS_PER_PIXEL * np.repeat(clean[:, None], 2, axis=1))
    noisy = (counts / PHOTONS_PER_PIXEL).astype(np.float32)  # (I, 2, H, W)
    split = ["train"] * (n_images - 6) + ["val"] * 3 + ["test"] * 3
    attrs = {"modality": "xray", "noise_model": "poisson", "scaling_rule": "per_image_max"}
    write_dataset(
        path,
        clean=clean if with_clean else None,
        noisy=noisy,
        object_id=[f"phantom{i}" for i in range(n_images)],
        split=split,
        attrs=attrs,
    )
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _smooth_poisson_dataset(tmp_path_factory.mktemp("data") / "xray.h5")


@pytest.fixture(scope="module")
def dataset_no_clean(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "measured.h5"
    return _smooth_poisson_dataset(path, with_clean=False, seed=1)


# Small settings shared by the resume and DDP comparisons (width 8: fast, still the real network).
TINY = dict(
    width=8,
    patch=32,
    batch_size=4,
    samples_per_epoch=40,
    epochs=3,
    threads=1,
    deterministic=True,
    quiet=True,
    seed=3,
    accelerator="cpu",
)


def test_config_typo_names_the_key_and_the_valid_ones(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("data: d.h5\nout: runs/x\nepochz: 3\n")
    with pytest.raises(LowdoseInputError, match="unknown key 'epochz'; valid keys: mode, loss, "):
        load_train_config(config_file)
    with pytest.raises(LowdoseInputError, match="patch: .*multiple of 32"):
        make_train_config({"data": "d.h5", "out": "o", "patch": 48})
    with pytest.raises(LowdoseInputError, match="mode"):
        make_train_config({"data": "d.h5", "out": "o", "mode": "n2x"})


def test_flags_override_yaml_and_the_resolved_config_round_trips(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("data: d.h5\nout: o\nepochs: 3\nwidth: 16\n")
    config = load_train_config(config_file, {"epochs": 7})
    assert (config.schedule.epochs, config.model.width) == (7, 16)
    assert (config.optimisation.lr, config.model.mode) == (1e-3, "n2n")
    saved = yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json")))
    assert TrainConfig(**saved) == config


def test_short_cpu_training_raises_test_psnr_by_3_db(dataset, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(dataset),
        "--mode",
        "n2n",
        "--loss",
        "mse",
        "--out",
        str(run_dir),
        "--width",
        "16",
        "--residual",
        "--patch",
        "32",
        "--batch-size",
        "8",
        "--samples-per-epoch",
        "160",
        "--epochs",
        "4",
        "--threads",
        "2",
        "--quiet",
        "--max-time",
        "00:02:00",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.yaml",
        "manifest.json",
        "metrics.csv",
        "best.ckpt",
        "last.ckpt",
    }
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    rows = np.genfromtxt(run_dir / "metrics.csv", delimiter=",", names=True)
    assert rows.dtype.names == (
        "epoch",
        "step",
        "train_loss",
        "val_psnr_db",
        "val_upsnr_db",
        "lr",
        "elapsed_s",
        "val_self_db",
        "val_identity_db",
        "val_pair_db",
    )
    assert np.all(np.isfinite(rows["val_upsnr_db"]))  # n2n selects on the clean-free score
    assert np.all(np.isnan(rows["val_self_db"]))  # the nb2nb/n2v score: not measured for n2n
    assert list(rows["step"]) == [20, 40, 60, 80]

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["dataset_sha256"] == dataset_sha256(dataset)
    # n2n validates clean-free although the file has clean images
    assert manifest["metrics"]["val_reference"] == "realisation"
    assert manifest["metrics"]["monitor"] == "val_upsnr_db"
    assert manifest["metrics"]["data_range"] == 1.0
    assert manifest["model"] == "unet-w16-res"
    # a model that denoises scores above its noisy input, and nothing warns
    scores = manifest["validation_scores"]
    assert scores["model_db"] == pytest.approx(np.max(rows["val_upsnr_db"]))  # best, not last
    assert scores["identity_db"] == pytest.approx(rows["val_identity_db"][-1])
    assert scores["model_db"] > scores["identity_db"] and "warning:" not in result.output

    model, meta = load_model(run_dir / "best.ckpt")
    assert (meta.mode, meta.loss, meta.model.width) == ("n2n", "mse", 16)
    assert meta.scaling.scaling_rule == "per_image_max"
    test = load_split(dataset, "test")
    with torch.no_grad():
        denoised = model(torch.from_numpy(test.noisy[:, :1])).numpy()[:, 0]  # (3, 64, 64)
    noisy_db = np.mean(psnr(test.clean, test.noisy[:, 0], data_range=1.0))
    denoised_db = np.mean(psnr(test.clean, denoised, data_range=1.0))
    assert denoised_db - noisy_db >= 3.0, (noisy_db, denoised_db)


def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(dataset, tmp_path):
    (tmp_path / "last.ckpt").write_bytes(b"x")
    with pytest.raises(LowdoseInputError, match="already holds a run"):
        train(make_train_config({"data": dataset, "out": tmp_path}))
    with pytest.raises(LowdoseInputError, match="nothing to resume"):
        train(make_train_config({"data": dataset, "out": tmp_path / "new"}), resume=True)


_SCRIPT = """
import sys, time
import lightning as L
import lowdose.training.run as training
from lowdose.training.config import make_train_config

class Slow(L.Callback):  # widens the window in which the test can kill mid-epoch
    def on_train_batch_end(self, *args):
        time.sleep({sleep_s})

make_trainer = training._trainer
def slowed(*args, **kwargs):
    trainer = make_trainer(*args, **kwargs)
    trainer.callbacks.insert(0, Slow())
    return trainer
training._trainer = slowed
config = make_train_config({{**{tiny}, "data": {data!r}, "out": {out!r}, **{extra}}})
training.train(config, resume={resume})
"""


def _run_script(tmp_path, name, *, data, out, sleep_s=0.0, resume=False, extra=None):
    script = tmp_path / f"{name}.py"
    script.write_text(
        textwrap.dedent(
            _SCRIPT.format(
                sleep_s=sleep_s,
                tiny=TINY,
                data=str(data),
                out=str(out),
                extra=extra or {},
                resume=resume,
            )
        )
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _weights(checkpoint):
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(dataset, tmp_path):
    reference = train(make_train_config({**TINY, "data": dataset, "out": tmp_path / "ref"}))
    killed_dir = tmp_path / "killed"
    process = _run_script(
        tmp_path,
        "killed",
        data=dataset,
        out=killed_dir,
        sleep_s=0.25,
        extra={"checkpoint_every_n_steps": 3},
    )
    deadline = time.monotonic() + 60
    while not (killed_dir / "last.ckpt").exists() and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    time.sleep(0.5)  # a couple more steps past the checkpoint: they are lost and redone
    process.send_signal(signal.SIGKILL)
    process.wait()
    step_at_kill = torch.load(killed_dir / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < step_at_kill < reference.global_step

    resumed = _run_script(tmp_path, "resume", data=dataset, out=killed_dir, resume=True)
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read().decode()[-2000:]
    final, expected = _weights(killed_dir / "last.ckpt"), _weights(reference.last_checkpoint)
    assert final.keys() == expected.keys()
    for key in expected:  # deterministic CPU: bit-identical, not merely close
        assert torch.equal(final[key], expected[key]), key
    assert (killed_dir / "metrics.csv").read_text().count("\n") == 1 + TINY["epochs"]


def test_ddp_two_processes_on_gloo_matches_single_process(dataset_no_clean, tmp_path):
    single = train(make_train_config({**TINY, "data": dataset_no_clean, "out": tmp_path / "one"}))
    process = _run_script(
        tmp_path,
        "ddp",
        data=dataset_no_clean,
        out=tmp_path / "two",
        extra={"devices": 2, "strategy": "ddp"},
    )
    assert process.wait(timeout=180) == 0, process.stderr.read().decode()[-3000:]
    one, two = _weights(single.last_checkpoint), _weights(tmp_path / "two" / "last.ckpt")
    # Same global batch (2 ranks x 2 = 4), same samples in the same steps: gloo's average of the
    # two half-batch gradients equals the single-process mean up to float summation order
    # (~1e-7 relative). Measured here: max |dw| = 6e-8 after 30 Adam steps. The bound 1e-4 leaves
    # room for that to grow through Adam's normalised steps yet is 10x below one step (lr 1e-3),
    # so a different batch split or a missed all-reduce fails it.
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-4, worst
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["metrics"]["val_reference"] == "realisation"
    rows_one = np.genfromtxt(tmp_path / "one" / "metrics.csv", delimiter=",", names=True)
    rows_two = np.genfromtxt(tmp_path / "two" / "metrics.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(rows_one["step"], rows_two["step"])
    np.testing.assert_allclose(rows_one["val_psnr_db"], rows_two["val_psnr_db"], atol=0.01)
    np.testing.assert_allclose(rows_one["val_upsnr_db"], rows_two["val_upsnr_db"], atol=0.01)


def test_max_time_stops_mid_epoch_and_leaves_usable_checkpoints(dataset, tmp_path):
    config = make_train_config(
        {
            **TINY,
            "data": dataset,
            "out": tmp_path / "timed",
            "samples_per_epoch": 40_000,
            "max_time": "00:00:02",
        }
    )
    result = train(config)
    assert 0 < result.global_step < 10_000 // 4  # stopped inside the first epoch
    model, meta = load_model(result.best_checkpoint)
    assert meta.global_step == result.global_step
    last = torch.load(result.last_checkpoint, weights_only=True)
    assert last["global_step"] == result.global_step
    assert last["PairDataModule"]["batches_done"] > 0  # a resume continues inside the epoch
