"""Run methods over a dataset's test split and write tidy results (docs/interfaces.md, Results).

Methods (:mod:`lowdose.evaluation.methods`): ``noisy`` (the first realisation, untouched), each
trained model (tiled inference; with ``tta=8`` also its self-ensemble, ``<mode>-<loss>-tta8``)
and each filter tuned ``oracle`` (per image against the clean image, the paper's protocol),
``blind`` (one setting chosen on the training split's noisy pairs) and/or ``blind-clean``
(chosen against the training split's clean images). A file without clean
images is scored clean-free (uPSNR from the test pairs); oracle tuning then cannot run. Metric
conventions are in :mod:`lowdose.evaluation.rows`, the files in :mod:`lowdose.evaluation.outputs`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from lowdose.baselines.filters import get_filter
from lowdose.baselines.tuning_kinds import parse_tunings
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.data.results import RESULT_COLUMNS
from lowdose.evaluation.methods import filter_methods, model_methods, noisy_method
from lowdose.evaluation.outputs import Panels, write_outputs
from lowdose.evaluation.rows import result_rows, row_context
from lowdose.evaluation.testset import read_test_set
from lowdose.inference.self_ensemble import checked_tta

DEFAULT_HU_WINDOW = (-1000.0, 1000.0)


def check_hu_window(window: tuple[float, float]) -> None:
    """Raise unless the HU window ``(low_hu, high_hu)`` has ``high > low``."""
    if not window[1] > window[0]:
        raise LowdoseInputError(f"HU window {window}: the upper bound must exceed the lower")


def evaluate(
    data_path,
    *,
    models: Sequence = (),
    filters: Sequence[str] = ("gaussian", "median", "bilateral"),
    tuning: str = "both",
    out_dir,
    hu_window: tuple[float, float] | None = None,
    workers: int = 1,
    grids: dict[str, dict] | None = None,
    device: str = "cpu",
    tta: int = 1,
    progress: Progress | None = None,
):
    """Evaluate noisy input, models and tuned filters on the test split; write the results.

    Parameters
    ----------
    data_path : path
        Dataset file (docs/interfaces.md) with a ``test`` split (and a ``train`` split for blind
        tuning), and ``clean`` images or N >= 2 realisations (both for the full table).
    models : sequence of paths
        Checkpoints (or run folders holding ``best.ckpt``); may be empty.
    filters : sequence of str
        Names from ``lowdose.baselines.filters.FILTERS``.
    tuning : str
        One of :data:`lowdose.baselines.tuning_kinds.TUNING_CHOICES` or a comma-separated list:
        ``oracle``, ``blind``, ``blind-clean``, ``blind-sigma``, the spectrum tunings of BM3D
        (``blind-psd``, ``blind-psd-image``, ``single-psd``, ``oracle-psd``:
        :mod:`lowdose.evaluation.spectrum_methods`), ``both`` = oracle + blind. Without clean
        test images the oracle kinds are skipped (a logged warning), and oracle alone raises.
    out_dir : path
        Receives ``results.csv``, ``results.parquet`` (with the ``parquet`` extra),
        ``summary.md`` and ``panels.npz``.
    hu_window : (low_hu, high_hu), optional
        HU window for CT datasets in HU (default -1000..1000); ignored otherwise.
    workers : int
        Processes for the oracle search.
    grids : dict filter name -> {parameter: values}, optional
        Search grids replacing the filters' defaults (``lowdose.baselines.filters.FILTERS``).
    device : str
        Torch device for the models (``"cpu"``, ``"cuda"``).
    tta : {1, 8}
        8: every model is evaluated twice, plain (``<mode>-<loss>``) and as the self-ensemble
        over the 8 dihedral transforms (``<mode>-<loss>-tta8``). Every model row's ``params``
        JSON holds ``tta`` and ``seconds_per_image`` (that run's inference wall time per test
        image), so the gain and its cost are in one table.
    progress : Progress, optional
        ``progress(stage, done, total)`` with ``done`` the images finished so far, one stage
        per model and per filter x tuning (:mod:`lowdose.core.progress`).

    Returns
    -------
    pandas.DataFrame
        One row per test image x method (x the file's one noise level), columns
        :data:`lowdose.data.results.RESULT_COLUMNS`; clean-referenced metrics NaN without clean.
    """
    import pandas as pd

    parse_tunings(tuning)  # an unknown kind fails before anything runs
    checked_tta(tta)
    for name in filters:
        get_filter(name)
    low, high = (float(v) for v in (hu_window or DEFAULT_HU_WINDOW))
    check_hu_window((low, high))
    test = read_test_set(Path(data_path))
    context = row_context(test, (low, high))
    methods = itertools.chain(
        [noisy_method(test)],
        model_methods(test, models, device, progress, tta=tta),
        filter_methods(
            test, filters, tuning, grids=grids or {}, workers=workers, progress=progress
        ),
    )
    rows, panels = [], Panels(test)
    for method in methods:  # one method's outputs in memory at a time
        rows += result_rows(test, method, context)
        panels.add(method)
    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    write_outputs(results, panels, test.attrs, Path(out_dir), clean_read=test.clean is not None)
    return results
