"""A subpackage's public names, imported on first use (PEP 562 module ``__getattr__``).

The ``__init__`` of a torch-bound subpackage (training, inference, evaluation, pipeline) hands
its main names to users without importing the modules that define them: importing one light
module of the subpackage (``lowdose.training.config``) must not import torch and Lightning.
No lowdose module imports through a face (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``, whose names live in the modules ``homes`` gives.

    Parameters
    ----------
    package
        The subpackage's ``__name__``.
    homes
        Public name -> the module of ``package`` that defines it (``{"train": "run"}``).

    Examples
    --------
    >>> getattr_, names = lazy_exports("lowdose.core", {"psnr": "metrics"})
    >>> names, getattr_("psnr").__module__
    (['psnr'], 'lowdose.core.metrics')
    """

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(import_module(f"{package}.{homes[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(homes)
