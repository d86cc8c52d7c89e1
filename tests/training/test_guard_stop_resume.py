"""A run stopped by its ``max_time`` guard inside an epoch resumes and trains the missing steps."""

import lightning as L
import torch

import lowdose.training.run as training
from lowdose.training.config import make_train_config


class StopAtStep(L.Callback):
    """What Lightning's ``Timer`` does when ``max_time`` runs out: ask the loop to stop."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


def test_a_guard_stop_in_the_last_epoch_resumes_to_max_steps(
    make_tiny_dataset, tmp_path, monkeypatch
):
    data = make_tiny_dataset()
    tiny = {
        "data": data,
        "width": 8,
        "patch": 32,
        "batch_size": 4,
        "threads": 1,
        "seed": 3,
        "deterministic": True,
        "quiet": True,
        "accelerator": "cpu",
        "schedule": "cosine",
        "max_steps": 8,
        "validations": 2,
        "warmup_steps": 2,
    }
    reference = training.train(make_train_config({**tiny, "out": tmp_path / "ref"}))
    assert reference.global_step == 8

    make_trainer = training._trainer

    def guarded(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        trainer.callbacks.insert(0, StopAtStep(6))  # inside the second (last) epoch of 4 steps
        return trainer

    monkeypatch.setattr(training, "_trainer", guarded)
    cut = training.train(make_train_config({**tiny, "out": tmp_path / "cut"}))
    assert cut.global_step == 6
    monkeypatch.setattr(training, "_trainer", make_trainer)
    resumed = training.train(training.resume_config(tmp_path / "cut"), resume=True)
    assert resumed.global_step == 8  # the two missing steps were trained
    final = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    expected = torch.load(reference.last_checkpoint, weights_only=True)["state_dict"]
    for key in expected:
        torch.testing.assert_close(final[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
