"""A model scored below its noisy input says so: the scores, their storage, and `denoise`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lowdose.core.errors import LowdoseInputError
from lowdose.models.checkpoint import load_model, store_meta
from lowdose.models.validation_scores import ValidationScores

# the user-reported budget run on quarter-dose CT: output 4.91 dB, its input 46.40 dB
DIVERGED = ValidationScores(monitor="val_upsnr_db", model_db=4.91, identity_db=46.40)


def test_a_model_below_its_input_gets_one_line_naming_it_both_scores_and_the_fix():
    line = DIVERGED.warning("runs/ct-budget")
    assert line is not None and "\n" not in line
    assert line.startswith("runs/ct-budget: ")
    assert "4.91 dB (val_upsnr_db)" in line and "46.40 dB of its noisy input" in line
    assert "--lr" in line and "keep the input" in line


@pytest.mark.parametrize(
    ("model_db", "identity_db"),
    [(40.0, 30.0), (30.0, 30.0), (math.nan, 30.0), (20.0, math.nan), (-math.inf, math.nan)],
)
def test_no_warning_unless_both_scores_are_known_and_the_model_is_below(model_db, identity_db):
    scores = ValidationScores("val_upsnr_db", model_db, identity_db)
    assert scores.warning("run") is None and not scores.worse_than_identity


def test_a_model_that_never_gave_finite_outputs_is_below_any_input():
    diverged = ValidationScores("val_upsnr_db", -math.inf, 30.0)  # non-finite outputs: -inf dB
    assert diverged.worse_than_identity and "-inf dB" in diverged.warning("run")
    assert ValidationScores.from_dict(diverged.to_dict()) == diverged


def test_the_stored_form_is_plain_json_and_round_trips():
    assert ValidationScores.from_dict(DIVERGED.to_dict()) == DIVERGED
    unknown = ValidationScores("val_self_db", 21.5, math.nan)  # n2v: no identity score
    assert unknown.to_dict() == {"monitor": "val_self_db", "model_db": 21.5, "identity_db": None}
    assert math.isnan(ValidationScores.from_dict(unknown.to_dict()).identity_db)


def test_store_meta_adds_scores_and_keeps_the_rest_and_old_checkpoints_load(tiny_checkpoint):
    _, before = load_model(tiny_checkpoint)
    assert before.scores is None  # a checkpoint written before the identity was scored
    store_meta(tiny_checkpoint, scores=DIVERGED.to_dict())
    model, after = load_model(tiny_checkpoint)
    assert after.scores == DIVERGED
    assert after == type(before)(**{**before.__dict__, "scores": DIVERGED})
    saved = torch.load(tiny_checkpoint, weights_only=True)  # still plain values only
    assert saved["hyper_parameters"]["meta"]["scores"]["identity_db"] == pytest.approx(46.40)


def test_malformed_scores_and_missing_files_are_one_line_errors(tiny_checkpoint, tmp_path):
    store_meta(tiny_checkpoint, scores={"monitor": "val_upsnr_db", "model_db": "high"})
    with pytest.raises(LowdoseInputError, match="meta.scores is malformed") as error:
        load_model(tiny_checkpoint)
    assert str(tiny_checkpoint) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(LowdoseInputError, match="not found"):
        store_meta(tmp_path / "none.ckpt", scores=DIVERGED.to_dict())


@pytest.mark.parametrize(("scores", "warns"), [(DIVERGED, True), (None, False)])
def test_denoise_warns_in_one_line_for_a_model_worse_than_its_input(
    tiny_checkpoint, tmp_path, invoke_cli, scores, warns
):
    if scores is not None:
        store_meta(tiny_checkpoint, scores=scores.to_dict())
    image = tmp_path / "scan.npy"
    np.save(image, np.random.default_rng(0).random((32, 32)).astype(np.float32))
    result = invoke_cli(
        ["denoise", str(image), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    if warns:
        assert len(lines) == 1 and str(tiny_checkpoint) in lines[0]
        assert "4.91 dB" in lines[0] and "46.40 dB" in lines[0]
    else:
        assert lines == []
    assert (tmp_path / "out" / "scan.npy").is_file()  # it still denoises: a warning, no error


@pytest.mark.parametrize("trained_db", [4.91, -math.inf])
def test_a_fall_back_to_the_identity_keeps_the_trained_score_and_says_so(trained_db):
    below = ValidationScores("val_upsnr_db", trained_db, 46.40)
    kept = below.with_identity_fallback()
    assert kept.fell_back_to_identity and not below.fell_back_to_identity
    assert kept.model_db == kept.identity_db == 46.40 and not kept.worse_than_identity
    line = kept.warning("runs/ct")
    assert line is not None and "\n" not in line and "identity" in line
    assert f"{trained_db:.2f} dB at best" in line and "46.40 dB" in line
    assert ValidationScores.from_dict(kept.to_dict()) == kept
    # files written before the fall-back existed have no trained_db: no fall-back read
    assert not ValidationScores.from_dict(DIVERGED.to_dict()).fell_back_to_identity
