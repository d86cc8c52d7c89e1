"""Quiet, readable output at 80 columns: no library chatter, one-line bars with true counts."""

from __future__ import annotations

import doctest
import io
import logging
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from rich.console import Console

import lowdose.cli._app as cli_app
from conftest import write_tiny_dataset
from lowdose.cli.experiments_cmd import _report_sentence
from lowdose.core import quiet_libraries as quiet_libraries_module
from lowdose.core.quiet_libraries import CHATTY_LOGGERS, quiet_libraries
from lowdose.report.build import ReportFiles

LOWDOSE = Path(sys.executable).with_name("lowdose")
COUNT = re.compile(r"(?<![\d:])(\d+)/(\d+)(?![\d:])")


# --- library chatter -----------------------------------------------------------------------


def test_the_chatty_loggers_are_quiet_inside_and_restored_after():
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    loggers[0].setLevel(logging.DEBUG)  # a level someone chose is put back, not NOTSET
    before = [logger.level for logger in loggers]
    try:
        with pytest.raises(KeyError), quiet_libraries():
            assert not any(logger.isEnabledFor(logging.INFO) for logger in loggers)
            assert all(logger.isEnabledFor(logging.WARNING) for logger in loggers)
            raise KeyError("the block fails")
        assert [logger.level for logger in loggers] == before
    finally:
        loggers[0].setLevel(logging.NOTSET)


def _warn_from(module: str, category: type[Warning]) -> None:
    warnings.warn_explicit("message", category, f"{module}.py", 1, module=module)


@pytest.mark.parametrize(
    ("module", "category", "shown"),
    [
        ("torch.serialization", FutureWarning, False),
        ("lightning.pytorch.utilities._pytree", FutureWarning, False),
        ("lightning_fabric.utilities", DeprecationWarning, False),
        ("numpy.core", PendingDeprecationWarning, False),
        ("lowdose.training.run", FutureWarning, True),  # ours: it is ours to fix
        ("lowdose.io.formats", UserWarning, True),
        ("__main__", DeprecationWarning, True),  # the user's own code
        ("my_analysis", FutureWarning, True),
        ("lightning.pytorch.trainer", UserWarning, True),  # not a deprecation: may matter
        ("torchvision_extras", FutureWarning, True),  # a name that only starts like torch
    ],
)
def test_only_third_party_deprecations_are_muted(module, category, shown):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_libraries():
            _warn_from(module, category)
        _warn_from(module, category)  # after the block: shown again
    assert len(seen) == 1 + shown


def test_the_module_examples_hold():
    assert doctest.testmod(quiet_libraries_module).failed == 0
    assert doctest.testmod(cli_app).failed == 0


CHATTER = (
    "GPU available",
    "TPU available",
    "Tip:",
    "litlogger",
    "LeafSpec",
    "weights_only",
    "Warning:",
    "site-packages",
    "`Trainer.fit` stopped",
)


@pytest.mark.slow  # a subprocess: ~8 s of importing torch and Lightning on 2 busy cores
def test_a_training_command_prints_no_banners_tips_or_deprecations(tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny.h5")
    args = [
        LOWDOSE,
        "train",
        "--data",
        data,
        "--out",
        tmp_path / "run",
        "--epochs",
        1,
        "--width",
        4,
        "--patch",
        32,
        "--batch-size",
        2,
        "--samples-per-epoch",
        4,
        "--threads",
        1,
    ]
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "done unet-w4" in output  # lowdose's own lines still come
    for chatter in CHATTER:
        assert chatter not in output, chatter


# --- the training progress bar ---------------------------------------------------------------


@pytest.fixture
def rich_global_console():
    """Lightning draws on rich's global console (``console_kwargs`` reconfigure it): restore it."""
    import rich

    saved = dict(rich.get_console().__dict__)
    yield
    rich.get_console().__dict__.update(saved)


def _tiny_fit(bar, *, epochs: int) -> None:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        monitor = "val_upsnr_db"

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            loss = self.linear(batch[0]).pow(2).mean()
            self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
            self.log("samples_s", 1234.5, on_step=True, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            # the widest scores: a negative PSNR, and the unmonitored one too
            self.log("val_upsnr_db", -12.345 + self.current_epoch, prog_bar=True)
            self.log("val_psnr_db", 123.456, prog_bar=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = DataLoader(TensorDataset(torch.randn(12, 4)), batch_size=2)
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    with quiet_libraries():
        trainer.fit(Tiny(), data, data)


@pytest.mark.parametrize("width", [80, 60])
def test_each_epoch_is_one_line_with_its_metrics_beside_the_bar(rich_global_console, width):
    from lowdose.training.progress_bar import EpochProgressBar

    screen = io.StringIO()
    bar = EpochProgressBar(console_kwargs={"file": screen, "width": width, "force_terminal": False})
    _tiny_fit(bar, epochs=3)
    lines = [line for line in screen.getvalue().splitlines() if line.strip()]
    epochs = [line for line in lines if line.startswith("Epoch")]
    assert len(epochs) == 3, lines
    assert all(len(line) <= width for line in lines), lines
    assert all(not line.startswith(" ") for line in lines), lines  # nothing wrapped below a bar
    if width == 80:
        for epoch, line in enumerate(epochs):
            assert re.search(rf"6/6 .*loss \S+  uPSNR {-12.345 + epoch:.2f} dB", line), line
            assert "samples_s" not in line and "val_psnr_db" not in line


def test_the_bar_summary_shows_loss_and_the_monitored_score():
    from lowdose.training import progress_bar

    assert doctest.testmod(progress_bar).failed == 0
    summary = progress_bar.metrics_summary
    logged = {"train_loss_step": 0.5, "val_psnr_db": 30.0, "val_upsnr_db": 29.0}
    assert summary(logged, monitor="val_psnr_db") == "loss 0.5  PSNR 30.00 dB"
    assert summary({"val_self_db": 3.0}, monitor="val_self_db") == "self 3.00 dB"
    assert summary({"train_loss": 0.25, "val_upsnr_db": 29.0}, monitor=None) == (
        "loss 0.25  uPSNR 29.00 dB"
    )


# --- the stage progress bars -----------------------------------------------------------------


@pytest.fixture
def screen(monkeypatch):
    """The command line's console, printing into a string at 80 columns."""
    text = io.StringIO()
    monkeypatch.setattr(cli_app, "console", Console(file=text, width=80, force_terminal=False))
    return text


def _counts(text: str) -> list[tuple[int, int]]:
    return [(int(done), int(total)) for done, total in COUNT.findall(text)]


def test_stage_bars_fit_80_columns_at_their_widest(screen):
    with cli_app.stage_progress("phantoms") as progress:
        progress("a label of exactly 22c", 0, 12345)
        progress("a label of exactly 22c", 12345, 12345)
        progress("a label longer than twenty-two characters", 3, 7)
    lines = screen.getvalue().splitlines()
    assert len([line for line in lines if line.strip()]) == 2
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].startswith("a label of exactly 22c ") and "12345/12345" in lines[0]
    assert lines[1].startswith("a label longer than tw ") and "3/7" in lines[1]
    assert "eta" in lines[1]  # unfinished: time left; finished: time taken


def test_a_count_never_exceeds_its_total_when_a_label_starts_again(screen):
    # evaluate labels a model's bar by mode-loss: every training seed's model restarts it
    with cli_app.stage_progress() as progress:
        for _seed in range(3):
            for done in range(9):
                progress("n2n-mse", done, 8)
                progress("n2n-mse", done, 8)  # a repeated call is harmless
    lines = [line for line in screen.getvalue().splitlines() if line.strip()]
    assert [line.split("  ")[0] for line in lines] == ["n2n-mse", "n2n-mse (2)", "n2n-mse (3)"]
    assert _counts(screen.getvalue()) == [(8, 8)] * 3


def test_nothing_is_drawn_when_nothing_is_reported(screen):
    with cli_app.stage_progress():
        pass
    assert screen.getvalue() == ""


# --- the last line of a run ------------------------------------------------------------------


def test_a_run_ends_with_a_sentence_naming_the_report():
    report = Path("runs/demo/report")
    files = ReportFiles(report / "report.md", report / "report.html", (report / "figures/a.png",))
    sentence = _report_sentence(files)
    assert sentence == (
        "report written to runs/demo/report/report.html (also report.md and 1 figure in "
        "runs/demo/report/figures)"
    )
