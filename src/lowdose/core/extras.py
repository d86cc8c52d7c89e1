"""Optional extras of the package: whether one is installed, and the one line when it is not.

``lowdose[onnx]`` (onnx, onnxruntime, onnxscript: ``lowdose export --format onnx``),
``lowdose[parquet]`` (pyarrow: ``results.parquet`` beside ``results.csv``), ``lowdose[bm3d]``
(:mod:`lowdose.baselines.filters`) and ``lowdose[astra]`` (the ASTRA toolbox: ``--backend
astra``, :mod:`lowdose.physics.astra_fbp`) are not hard requirements; where one is missing the
user gets one line naming the extra and the command that installs it.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from lowdose.core.errors import LowdoseInputError

EXTRA_MODULES = {"onnx": "onnx", "parquet": "pyarrow", "bm3d": "bm3d", "astra": "astra"}
"""Extra -> the package whose import says it is installed."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'lowdose[extra]'`` (quoted for shells).

    Examples
    --------
    >>> install_hint("onnx")
    "pip install 'lowdose[onnx]'"
    """
    return f"pip install 'lowdose[{extra}]'"


def extra_installed(extra: str) -> bool:
    """Whether the package of ``extra`` (a key of :data:`EXTRA_MODULES`) can be imported."""
    try:
        import_module(EXTRA_MODULES[extra])
    except ImportError:
        return False
    return True


def require_extra(extra: str, what: str) -> ModuleType:
    """The package of ``extra``, imported, or one line: ``"<what> needs the <extra> extra: ..."``.

    Parameters
    ----------
    extra : str
        A key of :data:`EXTRA_MODULES` (``"onnx"``, ``"parquet"``, ``"bm3d"``).
    what : str
        What needs it, as the user asked for it (``"lowdose export --format onnx"``).

    Raises
    ------
    LowdoseInputError
        When the package cannot be imported.

    Examples
    --------
    >>> import sys
    >>> sys.modules["pyarrow"], saved = None, sys.modules.get("pyarrow")  # as if not installed
    >>> require_extra("parquet", "reading results.parquet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lowdose.core.errors.LowdoseInputError: reading ... needs the parquet extra: pip install ...
    >>> _ = sys.modules.pop("pyarrow") if saved is None else sys.modules.update(pyarrow=saved)
    """
    try:
        return import_module(EXTRA_MODULES[extra])
    except ImportError:
        raise LowdoseInputError(f"{what} needs the {extra} extra: {install_hint(extra)}") from None
