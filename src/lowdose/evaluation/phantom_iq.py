"""``lowdose iq``: every method measured on the digital QA phantom, as a CT physicist measures it.

Reads a QA-phantom dataset (``lowdose simulate ct --source qa-phantom ...``: three slices, one per
module of :mod:`lowdose.phantoms.qa_phantom`, N noisy FBP realisations each, the noise-free FBP
as ``clean``, the geometry in the attributes), runs every method over all realisations of all
slices, measures noise, HU bias, CNR, NPS, TTF and d' in HU
(:mod:`lowdose.evaluation.phantom_metrics`) and writes, each atomically, into ``out_dir``:

* ``iq.csv``: one row per method x module x insert or ROI, columns
  :data:`lowdose.evaluation.phantom_metrics.IQ_COLUMNS` (NaN where a metric does not apply);
  ``f50``, ``f10``, ``nps_peak``, ``nps_mean`` in cycles/mm;
* ``iq_nps.csv``: ``method, frequency_per_mm, nps_hu2mm2`` (radial NPS of the uniform module);
* ``iq_ttf.csv``: ``method, insert, nominal_hu, frequency_per_mm, ttf`` (every sensitometry rod);
* ``iq.json``: the conventions (pixel size, realisations, the file's dose attributes, ROI sizes
  and positions, the TTF the d' used, the eye filter's constants, each method's settings).

A method maps the phantom's noisy FBP ensemble, ``(S, N, H, W)`` float32 HU (S module slices,
N realisations), to an ensemble of the same shape in HU:

* ``noisy``: the FBP realisations as they are (the reference every method is compared with).
* a trained network per checkpoint (``<mode>-<loss>``): HU go to the network's own scale with the
  checkpoint's :class:`lowdose.data.scaling.NetworkScaling` (the divisor of the data it was
  trained on, not the phantom file's ``data_max``), through
  :func:`lowdose.inference.predict.denoise`, and back to HU.
* blind filters (``nlm-blind``, ``bm3d-blind``), run as a user without clean data runs them
  (as ``lowdose fit`` does, :mod:`lowdose.evaluation.fit_compare`): on the dataset scale, with
  the noise sd of each slice from its realisations 0 and 1 (``sqrt(Var(y0 - y1) / 2)`` inside
  the water cylinder, :func:`lowdose.core.metrics.pair_noise_variance_all_pixels`) and the
  settings of :func:`lowdose.baselines.sigma_rule.params_from_sigma` (NLM ``h = 0.8 sigma``,
  BM3D ``sigma_psd = sigma``).
* ``bm3d-psd-blind``: BM3D given the noise power spectrum (the strongest classical method for
  FBP's correlated noise): the spectrum of the realisation-pair differences inside the cylinder
  (:func:`lowdose.physics.noise_spectrum.pair_noise_psd`, pairs (0, 1), (2, 3), ... of every
  slice) as the shape, each slice's pair variance as its level, the strength chosen by the pair
  uMSE of slice 0's realisations 0 and 1
  (:func:`lowdose.baselines.spectrum_tuning.tune_psd_scale_pairs`, as ``evaluate``'s
  ``blind-psd``).

No clean image selects or tunes anything: the clean (noise-free FBP) is only the reference of the
HU bias.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lowdose.baselines.filters import denoise_bm3d, denoise_nlm
from lowdose.baselines.sigma_rule import SIGMA_RULE_FILTERS, params_from_sigma
from lowdose.baselines.spectrum_tuning import tune_psd_scale_pairs
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels
from lowdose.core.progress import Progress, StageCounter
from lowdose.data.scaling import NetworkScaling, hu_to_scaled, scaled_to_hu
from lowdose.evaluation.phantom_metrics import (
    IQ_COLUMNS,
    NPS_COLUMNS,
    TTF_COLUMNS,
    IqTables,
    MethodIq,
    PhantomData,
    PhantomLayout,
    layout_conventions,
    measure_outputs,
    phantom_layout,
    read_phantom_data,
    ttf_rows,
    write_tables,
)
from lowdose.inference.predict import checked_device, denoise
from lowdose.models.checkpoint import load_model
from lowdose.models.validity_range import is_hu_scaling
from lowdose.physics.noise_spectrum import pair_noise_psd, unit_spectrum

MEASURE_STAGE = "methods measured"
FILTER_CHOICES = (*SIGMA_RULE_FILTERS, "bm3d-psd")
_FILTER_FUNCTIONS = {"nlm": denoise_nlm, "bm3d": denoise_bm3d}

Runner = Callable[[np.ndarray, "Progress | None"], np.ndarray]


@dataclass(frozen=True)
class IqMethod:
    """One method measured on the phantom.

    Attributes
    ----------
    name : str
        Row label: ``noisy``, ``<mode>-<loss>`` (``<mode>-<loss>:<run folder>`` when two
        checkpoints share it) or ``<filter>-blind``.
    model : str
        The network's name (``unet-w16-res``); empty for filters and ``noisy``.
    selection : str
        ``clean-free`` / ``clean-selected`` for networks (how the checkpoint was chosen),
        ``blind`` for filters, ``none`` for ``noisy``.
    run : callable
        ``run(hu, progress) -> hu``: (S, N, H, W) float32 HU in, the same shape out;
        ``progress(name, done, S * N)`` as images finish.
    params : dict
        JSON-serialisable settings for ``iq.json`` (checkpoint path, filter constants ...).
    """

    name: str
    model: str
    selection: str
    run: Runner
    params: dict = field(default_factory=dict)


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
        nps += [
            (method.name, f, p)
            for f, p in zip(measured.nps_frequency_per_mm, measured.nps_hu2mm2, strict=True)
        ]
        ttf += ttf_rows(method.name, measured, data.phantom)
        counter.advance()
    return IqTables(
        iq=pd.DataFrame(rows, columns=list(IQ_COLUMNS)),
        nps=pd.DataFrame(nps, columns=list(NPS_COLUMNS)),
        ttf=pd.DataFrame(ttf, columns=list(TTF_COLUMNS)),
        conventions=conventions(data, methods, layout),
    )


def _method_rows(method: IqMethod, measured: MethodIq, data: PhantomData) -> list[dict]:
    fixed = {
        "method": method.name,
        "model": method.model,
        "selection": method.selection,
        "n_realisations": int(data.noisy_hu.shape[1]),
        "pixel_mm": float(data.phantom.pixel_mm),
    }
    return [{**fixed, **row} for row in measured.rows]


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
        "data": str(data.path),
        "size_px": data.phantom.size,
        "pixel_mm": data.phantom.pixel_mm,
        "n_realisations": int(data.noisy_hu.shape[1]),
        "modules": list(data.phantom.modules),
        "reference": "the file's clean: the noise-free FBP (same geometry and kernel); used only "
        "as the reference of the HU bias",
        "units": {"sigma_hu": "HU", "hu_bias": "HU", "f50": "cycles/mm", "nps": "HU^2 mm^2"},
        "dataset_attrs": dose,
        **layout_conventions(layout),
        "methods": {
            m.name: {"model": m.model, "selection": m.selection, **m.params} for m in methods
        },
    }
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


def noisy_method() -> IqMethod:
    """The FBP realisations, unchanged."""
    return IqMethod("noisy", "", "none", lambda hu, _progress: np.array(hu, np.float32))


def checked_filters(filters: Sequence[str]) -> tuple[str, ...]:
    """``filters`` as a tuple of known names, or LowdoseInputError naming the option and choices.

    The ``bm3d`` package is checked here, before any method runs, so a missing optional extra
    fails at once rather than after the networks ran.
    """
    names = tuple(filters)
    for name in names:
        if name not in FILTER_CHOICES:
            raise LowdoseInputError(
                f"--filters {name!r} is unknown for lowdose iq; use {','.join(FILTER_CHOICES)} "
                "(comma-separated) or '' for none"
            )
    if {"bm3d", "bm3d-psd"} & set(names):
        try:
            import bm3d  # noqa: F401  (only whether it is installed)
        except ImportError:
            raise LowdoseInputError(
                "--filters bm3d needs the bm3d package: pip install lowdose[bm3d] (or pass "
                "--filters nlm)"
            ) from None
    return names


def model_methods(checkpoints: Sequence[str | os.PathLike], *, device: str) -> list[IqMethod]:
    """One method per checkpoint (or run folder), all loaded and checked before any runs."""
    if checkpoints:
        checked_device(device)  # an unknown or absent device fails before any work
    methods: list[IqMethod] = []
    for checkpoint in checkpoints:
        model, meta = load_model(checkpoint)
        check_hu_scaling(meta.scaling, checkpoint)
        name = _unique_name(f"{meta.mode}-{meta.loss}", checkpoint, {m.name for m in methods})
        methods.append(
            IqMethod(
                name,
                meta.model.name,
                meta.selection or "unknown",
                _network_runner(model, meta.scaling, name, device),
                {
                    "checkpoint": str(checkpoint),
                    "global_step": meta.global_step,
                    "seed": meta.seed,
                    "scaling": asdict(meta.scaling),
                },
            )
        )
    return methods


def _unique_name(label: str, checkpoint, taken: set[str]) -> str:
    """``label``, or ``label:<run>`` when another checkpoint has it (two Noise2Noise runs),
    ``<run>`` being the run folder (``train/<model>/seed<s>/best.ckpt`` gives ``<model>``)."""
    if label not in taken:
        return label
    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    if folder.name.startswith("seed") and folder.name[4:].isdigit():
        folder = folder.parent
    candidate, k = f"{label}:{folder.name}", 2
    while candidate in taken:
        candidate, k = f"{label}:{folder.name}-{k}", k + 1
    return candidate


def check_hu_scaling(scaling: NetworkScaling, checkpoint) -> None:
    """Raise unless the checkpoint was trained on CT in HU (its ``raw_units``, or the CT offset
    of 1024 for checkpoints without units: :func:`lowdose.models.validity_range.is_hu_scaling`)."""
    if is_hu_scaling(scaling):
        return
    units = scaling.raw_units.strip().lower()
    raise LowdoseInputError(
        f"{checkpoint}: the model was trained on {units or 'unitless'} images, not CT in HU; "
        "pass a model trained on a CT dataset"
    )


def _network_runner(model, scaling: NetworkScaling, name: str, device: str) -> Runner:
    def run(hu: np.ndarray, progress: Progress | None) -> np.ndarray:
        stack = hu.reshape(-1, *hu.shape[-2:])  # (S * N, H, W)
        report = None if progress is None else (lambda _s, d, t: progress(name, d, t))
        if report is not None:
            report(name, 0, len(stack))
        out = denoise(model, stack, scaling=scaling, device=device, progress=report)
        return out.reshape(hu.shape).astype(np.float32)

    return run


def blind_filter_methods(
    filters: Sequence[str], *, divisor: np.ndarray, inside: np.ndarray
) -> list[IqMethod]:
    """One ``<filter>-blind`` method per name of :func:`checked_filters`.

    Parameters
    ----------
    filters : sequence of str
    divisor : ndarray (S,) float64
        Each slice's dataset divisor: the filters see ``(HU + 1024) / divisor`` like ``fit``.
    inside : ndarray (H, W) bool
        The water cylinder, where the pair variance is measured (air outside carries little
        noise and would lower sigma).
    """
    rule = "lowdose.baselines.sigma_rule.params_from_sigma on the dataset scale"
    sigma_from = "sqrt(Var(y0 - y1) / 2) of each slice's realisations 0 and 1 inside the cylinder"
    psd_rule = {
        "psd_from": "shape of the realisation-pair differences x each slice's pair variance",
        "tuned_by": "pair uMSE of slice 0's realisations 0 and 1",
    }
    return [
        IqMethod(f"{name}-blind", "", "blind", _spectrum_runner(divisor, inside), psd_rule)
        if name == "bm3d-psd"
        else IqMethod(
            f"{name}-blind",
            "",
            "blind",
            _filter_runner(name, divisor, inside),
            {"rule": rule, "sigma_from": sigma_from},
        )
        for name in checked_filters(filters)
    ]


def blind_sigma(scaled: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Noise sd of each slice from its realisations 0 and 1 inside the cylinder.

    Parameters
    ----------
    scaled : ndarray (S, N, H, W), N >= 2
    inside : ndarray (H, W) bool

    Returns
    -------
    ndarray (S,) float64
        Same units as ``scaled``.
    """
    mask = np.broadcast_to(inside, scaled[:, 0].shape)
    return np.sqrt(pair_noise_variance_all_pixels(scaled[:, 0], scaled[:, 1], inside=mask))


def _filter_runner(name: str, divisor: np.ndarray, inside: np.ndarray) -> Runner:
    def run(hu: np.ndarray, progress: Progress | None) -> np.ndarray:
        factor = np.asarray(divisor, np.float64)[:, None, None, None]  # (S, 1, 1, 1)
        scaled = hu_to_scaled(hu, factor)  # (S, N, H, W), not clipped: noisy data
        sigma = blind_sigma(scaled, inside)
        counter = StageCounter(progress, f"{name}-blind", scaled.shape[0] * scaled.shape[1])
        out = np.empty_like(scaled)
        for s, n in np.ndindex(*scaled.shape[:2]):
            params = params_from_sigma(name, float(sigma[s]))
            out[s, n] = _FILTER_FUNCTIONS[name](scaled[s, n], **params)
            counter.advance()
        return scaled_to_hu(out, factor)

    return run


def _spectrum_runner(divisor: np.ndarray, inside: np.ndarray) -> Runner:
    def run(hu: np.ndarray, progress: Progress | None) -> np.ndarray:
        factor = np.asarray(divisor, np.float64)[:, None, None, None]  # (S, 1, 1, 1)
        scaled = hu_to_scaled(hu, factor)  # (S, N, H, W)
        counter = StageCounter(progress, "bm3d-psd-blind", scaled.shape[0] * scaled.shape[1])
        # one spectrum shape for the phantom (one protocol), each slice at its own pair level,
        # the strength tuned on slice 0's first pair (as evaluate's blind-psd)
        pairs = 2 * (scaled.shape[1] // 2)
        first = scaled[:, 0:pairs:2].reshape(-1, *scaled.shape[-2:])
        second = scaled[:, 1:pairs:2].reshape(-1, *scaled.shape[-2:])
        mask = np.broadcast_to(inside, first.shape)
        shape = unit_spectrum(pair_noise_psd(first, second, inside=mask))
        levels = blind_sigma(scaled, inside) ** 2  # (S,)
        scale = tune_psd_scale_pairs(
            scaled[:1, 0], scaled[:1, 1], shape * levels[0], inside=mask[:1]
        ).psd_scale
        out = np.empty_like(scaled)
        for s, n in np.ndindex(*scaled.shape[:2]):
            out[s, n] = denoise_bm3d(scaled[s, n], psd=shape * levels[s], psd_scale=scale)
            counter.advance()
        return scaled_to_hu(out, factor)

    return run
