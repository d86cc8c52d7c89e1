"""Keep third-party libraries quiet: Lightning's banners and tips, their deprecation warnings.

Every Lightning fit announces the hardware ("GPU available: False, used: False", "TPU
available: ...", "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]"), advertises cloud services ("💡 Tip:
... litlogger"), and each checkpoint save logs "`weights_only` was not set"; torch and Lightning
also warn about each other's APIs (``FutureWarning``/``DeprecationWarning`` such as
"``isinstance(treespec, LeafSpec)`` is deprecated"). None of it is something a lowdose user can
act on, and at 80 columns it buries the lines that matter.

:func:`quiet_libraries` mutes exactly that while its block runs and restores everything
after it. It is a choice of the command line (``lowdose.cli._app.user_errors`` wraps every
command in it), not of the library: lowdose's functions called from Python stay as chatty as the
libraries they use. Lowdose's own log records and warnings, warnings raised from user code, and
third-party warnings that are not about deprecation (a ``UserWarning`` that something looks
wrong) all still show.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

CHATTY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",  # GPU/TPU/HPU banners, tips, "fit stopped" notes
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
    "lightning.pytorch.accelerators.cuda",  # "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]"
    "lightning.pytorch.trainer.connectors.checkpoint_connector",  # "`weights_only` was not set"
)
"""Loggers whose INFO records are announcements; their warnings and errors still show."""

THIRD_PARTY = (
    *("torch", "torchvision", "torchmetrics", "lightning", "lightning_fabric"),
    *("lightning_utilities", "pytorch_lightning", "numpy", "scipy", "skimage", "cv2", "h5py"),
    *("pydicom", "pylibjpeg", "tifffile", "nibabel", "pandas", "pyarrow", "matplotlib", "PIL"),
    *("onnx", "onnxruntime", "onnxscript", "bm3d", "pydantic", "yaml", "typer", "click", "rich"),
)
"""Top-level packages whose deprecation warnings are muted (the warning's own module, which
``warnings`` takes from the frame its ``stacklevel`` points at: a deprecated call made *by*
lowdose code is attributed to lowdose and still shows)."""

DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)

_THIRD_PARTY_MODULE = rf"(?:{'|'.join(map(re.escape, THIRD_PARTY))})(?:\.|$)"


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Mute third-party announcements and deprecation warnings while the block runs.

    Sets the :data:`CHATTY_LOGGERS` to ``WARNING`` and ignores :data:`DEPRECATIONS` raised from
    the :data:`THIRD_PARTY` packages; on exit the loggers' levels and the warning filters are
    what they were before (``warnings.catch_warnings``), also when the block raises.

    Examples
    --------
    >>> import logging, warnings
    >>> cuda = logging.getLogger("lightning.pytorch.accelerators.cuda")
    >>> with quiet_libraries():
    ...     logging.getLevelName(cuda.level)
    'WARNING'
    >>> logging.getLevelName(cuda.level)
    'NOTSET'
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with quiet_libraries():
    ...         warnings.warn_explicit("old", FutureWarning, "s.py", 1, module="torch.nn")
    ...         warnings.warn_explicit("ours", FutureWarning, "f.py", 1, module="lowdose.io")
    >>> [str(w.message) for w in seen]
    ['ours']
    """
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for category in DEPRECATIONS:
            warnings.filterwarnings("ignore", category=category, module=_THIRD_PARTY_MODULE)
        for logger in loggers:
            logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
