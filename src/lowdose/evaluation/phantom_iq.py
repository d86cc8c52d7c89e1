"""``lowdose iq``: every method measured on the digital QA phantom, as a CT physicist measures it.

Reads a QA-phantom dataset (``lowdose simulate ct --source qa-phantom ...``: three slices, one per
module of :mod:`lowdose.phantoms.qa_phantom`, N noisy FBP realisations each, the noise-free FBP
as ``clean``, the geometry in the attributes), runs every method over all realisations of all
slices (:mod:`lowdose.evaluation.phantom_iq_methods`: ``noisy``, networks, blind filters), measures
noise, HU bias, CNR, NPS, TTF and d' in HU (:mod:`lowdose.evaluation.phantom_iq_measure`) and
writes, each atomically, into ``out_dir``:

* ``iq.csv``: one row per method x module x insert or ROI, columns :data:`IQ_COLUMNS` (NaN where a
  metric does not apply); ``f50``, ``f10``, ``nps_peak``, ``nps_mean`` in cycles/mm;
* ``iq_nps.csv``: ``method, frequency_per_mm, nps_hu2mm2`` (radial NPS of the uniform module);
* ``iq_ttf.csv``: ``method, insert, nominal_hu, frequency_per_mm, ttf`` (every sensitometry rod);
* ``iq.json``: the conventions (pixel size, realisations, the file's dose attributes, ROI sizes
  and positions, the TTF the d' used, the eye filter's constants, each method's settings).

No clean image selects or tunes anything: the clean (noise-free FBP) is only the reference of the
HU bias.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lowdose.core.atomic import atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress, StageCounter
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split
from lowdose.data.scaling import scaled_to_hu
from lowdose.evaluation.phantom_iq_measure import (
    MethodIq,
    PhantomLayout,
    layout_conventions,
    measure_outputs,
    phantom_layout,
)
from lowdose.evaluation.phantom_iq_methods import (
    IqMethod,
    blind_filter_methods,
    blind_sigma,
    checked_filters,
    model_methods,
    noisy_method,
)
from lowdose.phantoms.qa_phantom import QAPhantom

if TYPE_CHECKING:
    import pandas as pd

IQ_COLUMNS = ("method", "model", "selection", "module", "insert", "nominal_hu", "diameter_mm",
              "sigma_hu", "hu_bias", "cnr", "f50", "f10", "nps_peak", "nps_mean", "dprime_npw",
              "dprime_npwe", "n_realisations", "pixel_mm")  # fmt: skip
NPS_COLUMNS = ("method", "frequency_per_mm", "nps_hu2mm2")
TTF_COLUMNS = ("method", "insert", "nominal_hu", "frequency_per_mm", "ttf")
MEASURE_STAGE = "methods measured"


@dataclass(frozen=True, eq=False)
class IqTables:
    """What ``lowdose iq`` wrote: ``iq``, ``nps``, ``ttf`` (pandas frames of ``iq.csv``,
    ``iq_nps.csv``, ``iq_ttf.csv``) and ``conventions`` (the dict of ``iq.json``)."""

    iq: pd.DataFrame
    nps: pd.DataFrame
    ttf: pd.DataFrame
    conventions: dict


@dataclass(frozen=True, eq=False)
class PhantomData:
    """A QA-phantom dataset read into HU.

    Attributes
    ----------
    path : Path
    phantom : QAPhantom
        The geometry (no image).
    noisy_hu : ndarray (S, N, H, W) float32
        The noisy FBP realisations, slices in ``phantom.modules`` order.
    reference_hu : ndarray (S, H, W) float32
        The noise-free FBP.
    divisor : ndarray (S,) float64
        The file's ``scale``: ``HU = scaled * divisor - 1024``.
    attrs : DatasetAttrs
    """

    path: Path
    phantom: QAPhantom
    noisy_hu: np.ndarray
    reference_hu: np.ndarray
    divisor: np.ndarray
    attrs: DatasetAttrs


def read_phantom_data(path: str | os.PathLike) -> PhantomData:
    """Read a QA-phantom dataset; LowdoseInputError (naming the file and the fix) otherwise."""
    path = Path(path)
    fix = "make it with `lowdose simulate ct --source qa-phantom --realisations 8 ...`"
    split = load_split(path, "test")
    try:
        phantom = QAPhantom.geometry_from_attrs(split.attrs.extra)
    except LowdoseInputError:
        raise LowdoseInputError(f"{path}: not a QA-phantom dataset (no geometry); {fix}") from None
    n_slices, n_real, height, width = split.noisy.shape
    if n_slices != len(phantom.modules) or (height, width) != (phantom.size, phantom.size):
        raise LowdoseInputError(
            f"{path}: {n_slices} test images of {height}x{width} for a {len(phantom.modules)}-"
            f"module phantom of {phantom.size} px; {fix}"
        )
    if n_real < 2:
        raise LowdoseInputError(
            f"{path}: {n_real} realisation; ensemble noise, NPS and the blind filters need >= 2 "
            f"(8 or more for stable numbers); {fix}"
        )
    if split.clean is None or not split.attrs.is_ct_hu:
        raise LowdoseInputError(f"{path}: needs CT in HU with its noise-free FBP as clean; {fix}")
    divisor = np.asarray(split.scale, np.float64)
    return PhantomData(
        path, phantom, scaled_to_hu(split.noisy, divisor[:, None, None, None]),
        scaled_to_hu(split.clean, divisor[:, None, None]), divisor, split.attrs,
    )  # fmt: skip


def measure_image_quality(
    data_path: str | os.PathLike,
    *,
    models: Sequence[str | os.PathLike] = (),
    filters: Sequence[str] = ("nlm", "bm3d", "bm3d-psd"),
    out_dir: str | os.PathLike,
    device: str = "cpu",
    progress: Progress | None = None,
) -> IqTables:
    """Measure the noisy FBP, every model and every blind filter on the QA phantom; write tables.

    Parameters
    ----------
    data_path : path
        A QA-phantom dataset (module docstring), N >= 2 realisations.
    models : sequence of path
        Checkpoints or run folders of networks trained on CT in HU.
    filters : sequence of {"nlm", "bm3d", "bm3d-psd"}
        Blind filters (noise level from the realisation pairs).
    out_dir : path
        Folder for ``iq.csv``, ``iq_nps.csv``, ``iq_ttf.csv``, ``iq.json`` (created).
    device : str
        Torch device for the networks.
    progress : Progress, optional
        One stage per method (``progress(name, done, S * N)``), then ``"measure"`` over methods.

    Returns
    -------
    IqTables
    """
    data = read_phantom_data(data_path)
    names = checked_filters(filters)
    layout = phantom_layout(data.phantom, data.noisy_hu.shape[-2:])
    methods = [noisy_method(), *model_methods(models, device=device)]
    methods += blind_filter_methods(names, divisor=data.divisor, inside=layout.water)
    tables = measure_methods(data, methods, layout=layout, progress=progress)
    write_tables(tables, out_dir)
    return tables


def measure_methods(
    data: PhantomData,
    methods: Sequence[IqMethod],
    *,
    layout: PhantomLayout | None = None,
    progress: Progress | None = None,
) -> IqTables:
    """Run each method over ``data`` and measure it (nothing written); any :class:`IqMethod`."""
    import pandas as pd

    layout = layout or phantom_layout(data.phantom, data.noisy_hu.shape[-2:])
    rows, nps, ttf = [], [], []
    counter = StageCounter(progress, MEASURE_STAGE, len(methods))
    for method in methods:
        outputs = method.run(data.noisy_hu, progress)
        if outputs.shape != data.noisy_hu.shape or not np.isfinite(outputs).all():
            raise LowdoseInputError(
                f"method {method.name} returned {outputs.shape} images (or NaN); expected "
                f"finite {data.noisy_hu.shape}"
            )
        measured = measure_outputs(outputs, data.reference_hu, layout)
        rows += _method_rows(method, measured, data)
        nps += [(method.name, f, p) for f, p in
                zip(measured.nps_frequency_per_mm, measured.nps_hu2mm2, strict=True)]  # fmt: skip
        ttf += _ttf_rows(method.name, measured, data.phantom)
        counter.advance()
    return IqTables(
        iq=pd.DataFrame(rows, columns=list(IQ_COLUMNS)),
        nps=pd.DataFrame(nps, columns=list(NPS_COLUMNS)),
        ttf=pd.DataFrame(ttf, columns=list(TTF_COLUMNS)),
        conventions=conventions(data, methods, layout),
    )


def _method_rows(method: IqMethod, measured: MethodIq, data: PhantomData) -> list[dict]:
    fixed = {"method": method.name, "model": method.model, "selection": method.selection,
             "n_realisations": int(data.noisy_hu.shape[1]),
             "pixel_mm": float(data.phantom.pixel_mm)}  # fmt: skip
    return [{**fixed, **row} for row in measured.rows]


def _ttf_rows(name: str, measured: MethodIq, phantom: QAPhantom) -> list[tuple]:
    nominal = {insert.name: insert.nominal_hu for insert in phantom.inserts}
    return [
        (name, insert, nominal[insert], float(f), float(t))
        for insert, ttf in measured.ttfs.items()
        for f, t in zip(ttf.frequencies, ttf.ttf, strict=True)
    ]


def conventions(data: PhantomData, methods: Sequence[IqMethod], layout: PhantomLayout) -> dict:
    """The dict of ``iq.json``: what was measured, on what, and how."""
    extra = {k: v for k, v in data.attrs.extra.items() if not str(k).startswith("qa_")}
    dose = {
        "modality": data.attrs.modality,
        "noise_model": data.attrs.noise_model,
        "noise_level": data.attrs.noise_level,
        "description": data.attrs.description,
        **extra,
    }
    result = {
        "data": str(data.path), "size_px": data.phantom.size,
        "pixel_mm": data.phantom.pixel_mm, "n_realisations": int(data.noisy_hu.shape[1]),
        "modules": list(data.phantom.modules),
        "reference": "the file's clean: the noise-free FBP (same geometry and kernel); used only "
                     "as the reference of the HU bias",
        "units": {"sigma_hu": "HU", "hu_bias": "HU", "f50": "cycles/mm", "nps": "HU^2 mm^2"},
        "dataset_attrs": dose,
        **layout_conventions(layout),
        "methods": {m.name: {"model": m.model, "selection": m.selection, **m.params}
                    for m in methods},
    }  # fmt: skip
    if any(m.selection == "blind" for m in methods):
        sigma = blind_sigma(data.noisy_hu, layout.water)  # the filters' sigma, in HU
        result["blind_sigma_hu"] = dict(zip(data.phantom.modules, sigma.tolist(), strict=True))
    return _json_safe(result)


def _json_safe(value):
    """NaN/inf become None and numpy scalars plain numbers, so ``iq.json`` is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_tables(tables: IqTables, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``iq.csv``, ``iq_nps.csv``, ``iq_ttf.csv`` and ``iq.json`` atomically; their paths."""
    out = Path(out_dir)
    written = []
    for name, frame in (("iq.csv", tables.iq), ("iq_nps.csv", tables.nps),
                        ("iq_ttf.csv", tables.ttf)):  # fmt: skip
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, float_format="%.6g")
        atomic_write_text(out / name, buffer.getvalue())
        written.append(out / name)
    atomic_write_text(out / "iq.json", json.dumps(tables.conventions, indent=2) + "\n")
    return [*written, out / "iq.json"]
