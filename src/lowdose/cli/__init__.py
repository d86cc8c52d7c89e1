"""Command-line interface: ``lowdose <command>``. The only package that prints for people or exits.

Each command lives in a small module of this package and registers itself on the shared ``app``
when imported here; heavy libraries are imported inside the command functions so that
``lowdose --help`` stays fast.
"""

from lowdose.cli import (
    dataset_cmd,
    denoise_cmd,
    evaluate_cmd,
    experiments_cmd,
    fit_cmd,
    iq_cmd,
    models_cmd,
    report_cmd,
    simulate_ct_cmd,
    simulate_xray_cmd,
    train_cmd,
    version_cmd,
)
from lowdose.cli._app import app

__all__ = [
    "app",
    "dataset_cmd",
    "denoise_cmd",
    "evaluate_cmd",
    "experiments_cmd",
    "fit_cmd",
    "iq_cmd",
    "models_cmd",
    "report_cmd",
    "simulate_ct_cmd",
    "simulate_xray_cmd",
    "train_cmd",
    "version_cmd",
]
