"""What ``lowdose iq`` measures on the QA phantom, all in HU, and the tables it fills.

:func:`read_phantom_data` reads a QA-phantom dataset into HU, :func:`measure_outputs` measures
one method's outputs and :func:`write_tables` writes ``iq.csv`` (columns :data:`IQ_COLUMNS`),
``iq_nps.csv``, ``iq_ttf.csv`` and ``iq.json``.

Every statistic is taken across the method's N outputs (one per noisy realisation) with
:mod:`lowdose.image_quality`; the reference is the noise-free FBP of the same geometry and kernel:

* ``sensitometry``: per rod, an interior ROI (radius :data:`ROI_RADIUS_FRACTION` of the rod's,
  never past it) gives the ensemble sigma, the HU bias against the reference and the CNR against a
  background annulus in water around the rod (clear of the rod's edge, of every other insert and
  of the cylinder's edge by :data:`EDGE_MARGIN_PX`); the circular-edge TTF of the rod on the
  ensemble mean (AAPM TG-233) gives f50 and f10.
* ``uniform``: square ROIs in water (the centre and four at half the cylinder radius, as large
  as fit inside, at most :data:`MAX_NPS_ROI_PX`): per ROI sigma and HU bias, and over all of them
  the NPS of the noise ``output - ensemble mean`` (plane-detrended, ICRU 87), its radial
  average, peak and mean frequency.
* ``low_contrast``: per disc, the measured CNR (as above) and the detectability index d' of the
  disc task at the disc's nominal contrast, non-prewhitening (NPW) and with an eye filter (NPWE),
  from the method's uniform-module NPS and the method's TTF of the lowest-contrast rod
  (polystyrene, -35 HU: TG-233 takes a low-contrast insert's TTF for low-contrast tasks).

A metric that does not apply to a row is NaN, and so is one that cannot be measured: an ROI too
small to hold a pixel, or a TTF whose edge holds too few distinct radii (small rods below about
96 px; 256 px is typical).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lowdose.core.atomic import atomic_write_text
from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split
from lowdose.data.scaling import scaled_to_hu
from lowdose.image_quality.detectability import (
    EYE_PEAK_CYCLES_PER_DEGREE,
    disc_task,
    dprime_npw,
    dprime_npwe,
    eye_filter,
    ttf_2d,
)
from lowdose.image_quality.nps import Nps2D, noise_rois, nps_2d, nps_summary, radial_nps
from lowdose.image_quality.roi import annulus_mask, contrast_to_noise, ensemble_sigma, hu_bias
from lowdose.image_quality.ttf import Ttf, circular_edge_ttf
from lowdose.phantoms.qa_phantom import Insert, QAPhantom

if TYPE_CHECKING:
    import pandas as pd

ROI_RADIUS_FRACTION = 0.6
EDGE_MARGIN_PX = 2.0
MAX_NPS_ROI_PX = 64
MIN_NPS_ROI_PX = 8
NPS_DETREND = "plane"
TTF_WINDOW = "hann"
EYE_SETTINGS = {
    "viewing_distance_mm": 500.0,
    "display_pixel_mm": 0.2,
    "zoom": 1.0,
    "n": 1.3,
    "rho_exponent": 2.0,
}
"""The eye filter's settings (:func:`lowdose.image_quality.detectability.eye_filter`'s defaults,
peak at :data:`EYE_PEAK_CYCLES_PER_DEGREE`), written to ``iq.json``."""
NPS_ROI_NAMES = ("roi-centre", "roi-top", "roi-right", "roi-bottom", "roi-left")
METRICS = (
    *("sigma_hu", "hu_bias", "cnr", "f50", "f10", "nps_peak", "nps_mean"),
    *("dprime_npw", "dprime_npwe"),
)
IQ_COLUMNS = (
    *("method", "model", "selection", "module", "insert", "nominal_hu", "diameter_mm"),
    *METRICS,
    *("n_realisations", "pixel_mm"),
)
NPS_COLUMNS = ("method", "frequency_per_mm", "nps_hu2mm2")
TTF_COLUMNS = ("method", "insert", "nominal_hu", "frequency_per_mm", "ttf")


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
        path,
        phantom,
        scaled_to_hu(split.noisy, divisor[:, None, None, None]),
        scaled_to_hu(split.clean, divisor[:, None, None]),
        divisor,
        split.attrs,
    )


@dataclass(frozen=True)
class PhantomLayout:
    """Where every ROI of the phantom lies on its (H, W) pixel grid.

    Attributes
    ----------
    phantom : QAPhantom
        The geometry (from the file's attributes).
    shape_hw : (int, int)
    water : ndarray (H, W) bool
        Inside the water cylinder, :data:`EDGE_MARGIN_PX` clear of its edge.
    nps_centres_rc : ndarray (5, 2) float
        Centres (row, col) of the uniform module's square ROIs, in :data:`NPS_ROI_NAMES` order.
    nps_roi_px : int
        Their side in pixels.
    dprime_insert : Insert
        The sensitometry rod whose TTF the d' use: the lowest |contrast| to the water.
    """

    phantom: QAPhantom
    shape_hw: tuple[int, int]
    water: np.ndarray
    nps_centres_rc: np.ndarray
    nps_roi_px: int
    dprime_insert: Insert


@dataclass(frozen=True, eq=False)
class MethodIq:
    """One method's measurements: ``rows`` (dicts of ``module, insert, nominal_hu,
    diameter_mm`` and :data:`METRICS`), its radial NPS (``nps_frequency_per_mm``,
    ``nps_hu2mm2``, (B,) each) and its TTF per sensitometry rod name (failed fits left out)."""

    rows: list[dict]
    nps_frequency_per_mm: np.ndarray
    nps_hu2mm2: np.ndarray
    ttfs: dict[str, Ttf]


def phantom_layout(phantom: QAPhantom, shape_hw: tuple[int, int]) -> PhantomLayout:
    """The ROI layout of ``phantom`` on ``shape_hw`` images; raises if no NPS ROI can fit."""
    height, width = shape_hw
    centre = (phantom.size - 1) / 2
    radius_px = phantom.cylinder_radius_mm / phantom.pixel_mm
    inner_px = radius_px - EDGE_MARGIN_PX
    rows, cols = np.mgrid[0:height, 0:width]
    water = np.hypot(rows - centre, cols - centre) <= inner_px
    offset = radius_px / 2
    # the square's far corners, (offset + a, a), must stay inside the cylinder minus the margin
    half = (-offset + np.sqrt(max(2 * inner_px**2 - offset**2, 0.0))) / 2
    # odd: the cut noise_rois makes about the rounded centre is symmetric and stays inside
    side = min(MAX_NPS_ROI_PX, int(2 * np.floor(half)) - 1)
    if side < MIN_NPS_ROI_PX:
        raise LowdoseInputError(
            f"the QA phantom at {phantom.size} px holds no {MIN_NPS_ROI_PX}-px NPS ROIs; "
            "rebuild it with a larger --size (256 is typical)"
        )
    steps = ((0, 0), (-1, 0), (0, 1), (1, 0), (0, -1))  # centre, top, right, bottom, left
    nps_centres = np.array([(centre + dr * offset, centre + dc * offset) for dr, dc in steps])
    sensitometry = phantom.inserts_in("sensitometry")
    lowest = min(sensitometry, key=lambda i: abs(i.nominal_hu - phantom.background_hu))
    return PhantomLayout(phantom, (int(height), int(width)), water, nps_centres, side, lowest)


def insert_masks(layout: PhantomLayout, insert: Insert) -> tuple[np.ndarray, np.ndarray]:
    """``(interior ROI, background annulus)`` (H, W) bool of one insert; either may be empty.

    The ROI has radius ``0.6 r`` (at least 0.75 px, so a pixel lies in it, but never past
    ``r``); the annulus spans ``r + max(r / 2, 2 px)`` to that plus ``max(r, 3 px)``, in water,
    clear of every other insert of the module.
    """
    phantom = layout.phantom
    centre, radius = phantom.centre_px(insert), phantom.radius_px(insert)
    roi_px = max(ROI_RADIUS_FRACTION * radius, min(radius, 0.75))
    rows, cols = np.mgrid[0 : layout.shape_hw[0], 0 : layout.shape_hw[1]]
    roi = np.hypot(rows - centre[0], cols - centre[1]) <= roi_px
    inner = radius + max(radius / 2, EDGE_MARGIN_PX)
    outer = inner + max(radius, 3.0)
    background = annulus_mask(layout.shape_hw, centre, inner, outer) & layout.water
    for other in phantom.inserts_in(insert.module):
        if other != insert:
            (r0, c0), r = phantom.centre_px(other), phantom.radius_px(other)
            background &= np.hypot(rows - r0, cols - c0) > r + EDGE_MARGIN_PX
    return roi, background


def measure_outputs(outputs_hu: np.ndarray, reference_hu: np.ndarray, layout: PhantomLayout):
    """:class:`MethodIq` of one method.

    Parameters
    ----------
    outputs_hu : ndarray (S, N, H, W) float32
        The method's outputs in HU, slices in ``layout.phantom.modules`` order, N >= 2.
    reference_hu : ndarray (S, H, W)
        The noise-free FBP in HU (the reference of the HU bias only).
    layout : PhantomLayout
    """
    slices = {m: layout.phantom.module_index(m) for m in layout.phantom.modules}
    ensemble = {m: np.asarray(outputs_hu[k], np.float64) for m, k in slices.items()}
    reference = {m: np.asarray(reference_hu[k], np.float64) for m, k in slices.items()}
    rows, ttfs = _sensitometry(ensemble["sensitometry"], reference["sensitometry"], layout)
    uniform_rows, nps, curve = _uniform(ensemble["uniform"], reference["uniform"], layout)
    rows += uniform_rows
    rows += _low_contrast(
        ensemble["low_contrast"], layout, nps, ttfs.get(layout.dprime_insert.name)
    )
    return MethodIq(rows, curve[0], curve[1], ttfs)


def _row(module: str, name: str, nominal_hu: float, diameter_mm: float, **metrics) -> dict:
    fixed = {
        "module": module,
        "insert": name,
        "nominal_hu": float(nominal_hu),
        "diameter_mm": float(diameter_mm),
    }
    return {**fixed, **dict.fromkeys(METRICS, np.nan), **metrics}


def _roi_metrics(stack, reference, roi, background) -> dict:
    """sigma, HU bias (with a reference) and CNR of one ROI; NaN where a mask is empty."""
    if not roi.any():
        return {}
    values = {"sigma_hu": ensemble_sigma(stack, roi)}
    if reference is not None:
        values["hu_bias"] = hu_bias(stack, reference, roi)
    if background.any():
        values["cnr"] = contrast_to_noise(stack, roi, background)
    return values


def _sensitometry(stack, reference, layout: PhantomLayout) -> tuple[list[dict], dict[str, Ttf]]:
    phantom, mean = layout.phantom, stack.mean(axis=0)  # (H, W) ensemble mean
    rows, ttfs = [], {}
    for insert in phantom.inserts_in("sensitometry"):
        roi, background = insert_masks(layout, insert)
        metrics = _roi_metrics(stack, reference, roi, background)
        try:
            ttf = circular_edge_ttf(
                mean,
                phantom.centre_px(insert),
                phantom.radius_px(insert),
                phantom.pixel_mm,
                window=TTF_WINDOW,
            )
        except LowdoseInputError:  # no contrast left across the edge: no TTF to report
            ttf = None
        if ttf is not None:
            ttfs[insert.name] = ttf
            metrics |= {"f50": ttf.f50, "f10": ttf.f10}
        rows.append(
            _row("sensitometry", insert.name, insert.nominal_hu, 2 * insert.radius_mm, **metrics)
        )
    return rows, ttfs


def _uniform(stack, reference, layout: PhantomLayout):
    """Rows per ROI and pooled, the 2-D NPS (or None) and the radial NPS curve."""
    rows, side = [], layout.nps_roi_px
    union = np.zeros(layout.shape_hw, bool)
    for name, (r0, c0) in zip(NPS_ROI_NAMES, layout.nps_centres_rc, strict=True):
        top, left = int(np.round(r0)) - side // 2, int(np.round(c0)) - side // 2
        square = np.zeros(layout.shape_hw, bool)
        square[top : top + side, left : left + side] = True  # the cut noise_rois makes
        union |= square
        metrics = _roi_metrics(stack, reference, square, np.zeros_like(square))
        rows.append(_row("uniform", name, layout.phantom.background_hu, np.nan, **metrics))
    rois = noise_rois(stack, layout.nps_centres_rc, side)  # (N * 5, side, side)
    nps = nps_2d(rois, layout.phantom.pixel_mm, detrend=NPS_DETREND)
    frequency, power = radial_nps(nps)
    pooled = {"sigma_hu": ensemble_sigma(stack, union), "hu_bias": hu_bias(stack, reference, union)}
    if np.isfinite(power).all() and power.sum() > 0:
        summary = nps_summary(frequency, power)
        pooled |= {"nps_peak": summary.peak_frequency, "nps_mean": summary.mean_frequency}
    else:  # outputs identical over realisations: no noise, no texture
        nps = None
    rows.append(_row("uniform", "nps", layout.phantom.background_hu, np.nan, **pooled))
    return rows, nps, (frequency, power)


def _low_contrast(stack, layout: PhantomLayout, nps: Nps2D | None, ttf: Ttf | None) -> list:
    phantom = layout.phantom
    eye = transfer = None
    if nps is not None:
        rho = np.hypot(nps.fx[None, :], nps.fy[:, None])  # (ny, nx) cycles/mm
        eye = eye_filter(rho, pixel_mm=phantom.pixel_mm, **EYE_SETTINGS)
        transfer = None if ttf is None else ttf_2d(ttf, nps.fx, nps.fy)
    rows = []
    for insert in phantom.inserts_in("low_contrast"):
        roi, background = insert_masks(layout, insert)
        metrics = _roi_metrics(stack, None, roi, background)
        metrics.pop("sigma_hu", None)  # sigma of a 2-pixel ROI says nothing; CNR is the measure
        if transfer is not None:
            contrast_hu = insert.nominal_hu - phantom.background_hu
            task = disc_task(2 * insert.radius_mm, contrast_hu, nps.fx, nps.fy)
            metrics |= {
                "dprime_npw": dprime_npw(task, transfer, nps),
                "dprime_npwe": dprime_npwe(task, transfer, nps, eye),
            }
        rows.append(
            _row("low_contrast", insert.name, insert.nominal_hu, 2 * insert.radius_mm, **metrics)
        )
    return rows


def layout_conventions(layout: PhantomLayout) -> dict:
    """The ROI sizes and positions, TTF and d' conventions, for ``iq.json``."""
    return {
        "insert_roi": f"disc of radius {ROI_RADIUS_FRACTION} r (at least 0.75 px, at most r)",
        "background": f"annulus r + max(r/2, {EDGE_MARGIN_PX:g} px) .. + max(r, 3 px) in water, "
        f"{EDGE_MARGIN_PX:g} px clear of other inserts and of the cylinder edge",
        "nps_rois": {
            "names": list(NPS_ROI_NAMES),
            "side_px": layout.nps_roi_px,
            "centres_rc": layout.nps_centres_rc.round(3).tolist(),
            "noise": "output - ensemble mean, x sqrt(N / (N - 1))",
            "detrend": NPS_DETREND,
        },
        "ttf": {
            "method": "circular edge on the ensemble mean (TG-233)",
            "window": TTF_WINDOW,
            "half_width": "insert radius",
            "units": "cycles/mm",
        },
        "dprime": {
            "task": "disc of the nominal diameter and contrast (insert - water)",
            "ttf_insert": layout.dprime_insert.name,
            "ttf_nominal_hu": layout.dprime_insert.nominal_hu,
            "nps": "the method's uniform-module NPS",
            "eye_filter": {**EYE_SETTINGS, "peak_cycles_per_degree": EYE_PEAK_CYCLES_PER_DEGREE},
            "internal_noise": 0.0,
        },
    }


@dataclass(frozen=True, eq=False)
class IqTables:
    """What ``lowdose iq`` wrote: ``iq``, ``nps``, ``ttf`` (pandas frames of ``iq.csv``,
    ``iq_nps.csv``, ``iq_ttf.csv``) and ``conventions`` (the dict of ``iq.json``)."""

    iq: pd.DataFrame
    nps: pd.DataFrame
    ttf: pd.DataFrame
    conventions: dict


def ttf_rows(name: str, measured: MethodIq, phantom: QAPhantom) -> list[tuple]:
    """``iq_ttf.csv`` rows of one method: every sensitometry rod's TTF, point by point."""
    nominal = {insert.name: insert.nominal_hu for insert in phantom.inserts}
    return [
        (name, insert, nominal[insert], float(f), float(t))
        for insert, ttf in measured.ttfs.items()
        for f, t in zip(ttf.frequencies, ttf.ttf, strict=True)
    ]


def write_tables(tables: IqTables, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``iq.csv``, ``iq_nps.csv``, ``iq_ttf.csv`` and ``iq.json`` atomically; their paths."""
    out = Path(out_dir)
    written = []
    for name, frame in (
        ("iq.csv", tables.iq),
        ("iq_nps.csv", tables.nps),
        ("iq_ttf.csv", tables.ttf),
    ):
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, float_format="%.6g")
        atomic_write_text(out / name, buffer.getvalue())
        written.append(out / name)
    atomic_write_text(out / "iq.json", json.dumps(tables.conventions, indent=2) + "\n")
    return [*written, out / "iq.json"]
