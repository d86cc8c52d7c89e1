"""How ``lowdose fit`` treats the user's inputs: the route, the training mode, and why.

:func:`plan_fit` chooses from the inputs alone (see :mod:`lowdose.pipeline.fit` for the routes);
once the dataset exists, :func:`one_scan_plan` turns ``--mode auto`` on one CT scan in HU into
the blend, and :func:`projection_mode` turns nb2nb on view halves of fewer than 64 views into
n2v. :func:`patch_px` sizes the training patch to the images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lowdose.baselines.filters import bm3d_installed
from lowdose.core.errors import LowdoseInputError
from lowdose.data.dataset import read_info
from lowdose.owndata.projection_scan import ScanReading, is_instrument_scan

Route = Literal["repeats", "sinogram", "single", "projections"]


_SINOGRAM_SUFFIXES = (".npy", ".tif", ".tiff", ".h5", ".hdf5")


_ANGLES_ON_IMAGES = (
    "--angles is for sinograms (.npy/.tif/.h5) and projections (flat*.tif or --flat)"
)


@dataclass(frozen=True)
class FitPlan:
    """What ``fit`` does with the inputs, and why (one sentence for people)."""

    route: Route
    mode: str
    reason: str


@dataclass(frozen=True)
class FitOptions:
    """The user's choices. ``budget`` (``HH:MM:SS``) limits the training's wall time."""

    budget: str = "00:10:00"
    modality: Literal["ct", "xray"] | None = None
    angles: str | None = None
    mode: Literal["auto", "n2n", "nb2nb", "n2v", "blend"] = "auto"
    split_by: str = "auto"
    width: int = 16
    seed: int = 0
    threads: int | None = None
    skip_bad: bool = False
    dataset_key: str | None = None
    device: str = "auto"
    units: str | None = None
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    center: float | None = None
    flat: str | None = None
    dark: str | None = None
    domain: Literal["reconstruction", "projections"] = "reconstruction"
    backend: Literal["builtin", "astra"] = "builtin"


def plan_fit(inputs: list[Path], options: FitOptions) -> FitPlan:
    """Choose the route and training mode from the inputs (see the module docstring)."""
    if not inputs:
        raise LowdoseInputError("fit needs at least one input: a DICOM folder, image or stack")
    single_modes = ("nb2nb", "n2v")
    if options.mode == "blend" and (len(inputs) > 1 or options.angles is not None):
        raise LowdoseInputError(
            "--mode blend is for one CT scan; with repeats or a sinogram use --mode auto (n2n)"
        )
    scans = [is_instrument_scan(p) or (options.flat is not None and p.is_dir()) for p in inputs]
    if options.angles is not None or all(scans):
        suffixes = [p.suffix.lower() for p in inputs]
        if not all(s or x in _SINOGRAM_SUFFIXES for s, x in zip(scans, suffixes, strict=True)):
            raise LowdoseInputError(_ANGLES_ON_IMAGES)
        if options.domain == "projections":
            return _projection_plan(inputs, scans, options)
        mode = "n2n" if options.mode == "auto" else options.mode
        return FitPlan(
            "sinogram",
            mode,
            "projections or a sinogram: the two interleaved view "
            "halves reconstruct to images with independent noise (Noise2Inverse), so "
            f"{mode} trains on those pairs",
        )
    if options.domain == "projections":
        raise LowdoseInputError(_DOMAIN_ON_IMAGES)
    if len(inputs) >= 2:
        mode = "n2n" if options.mode == "auto" else options.mode
        return FitPlan(
            "repeats",
            mode,
            f"{len(inputs)} inputs: repeated acquisitions of the "
            "same object give independent noise realisations, so Noise2Noise "
            f"({mode}) trains on their pairs",
        )
    mode = "nb2nb" if options.mode == "auto" else options.mode
    if mode == "blend":
        return FitPlan("single", mode, ONE_SCAN_REASON)
    if mode not in single_modes:
        raise LowdoseInputError(
            f"--mode {mode} needs two acquisitions (or a sinogram with --angles); one input "
            "trains with --mode nb2nb or n2v"
        )
    name = "Neighbor2Neighbor" if mode == "nb2nb" else "Noise2Void"
    return FitPlan(
        "single",
        mode,
        f"one acquisition and no second realisation: {name} "
        f"({mode}) trains on the single noisy image, assuming pixel-independent "
        "noise",
    )


_DOMAIN_ON_IMAGES = (
    "--domain projections is for instrument scans (Data Exchange .h5, a TIFF-stack folder with "
    "flat*.tif or --flat, a .mat sinogram); images are denoised as reconstructions"
)


def _projection_plan(inputs: list[Path], scans: list[bool], options: FitOptions) -> FitPlan:
    """Instrument scans denoised before reconstruction: a single-acquisition mode on counts."""
    if not all(scans):
        raise LowdoseInputError(_DOMAIN_ON_IMAGES)
    mode = "nb2nb" if options.mode == "auto" else options.mode
    if mode not in ("nb2nb", "n2v"):
        raise LowdoseInputError(
            f"--domain projections trains on one scan's own noise: use --mode nb2nb or n2v, "
            f"not {mode}"
        )
    reason = (
        "projections: photon noise is independent from pixel to pixel before reconstruction, "
        f"so the sinograms' view halves train {mode} on the scan itself; each half is denoised "
        "alone, then reconstructed"
    )
    return FitPlan("projections", mode, reason)


NO_TRAINING = ("blend", "builtin")  # the one-scan CT modes: the built-in model, no training


ONE_SCAN_REASON = (
    "one CT scan in HU and no second realisation: its reconstruction noise is correlated, "
    "which Neighbor2Neighbor and Noise2Void assume away (+0.10 dB measured), so no training: "
    "the built-in model ct-sinogram averaged with BM3D given each slice's own noise spectrum"
)


def one_scan_plan(plan: FitPlan, dataset: Path, options: FitOptions, *, log) -> FitPlan:
    """``--mode auto`` on one CT scan in HU becomes the blend (see the module docstring)."""
    is_ct_hu = read_info(dataset).attrs.is_ct_hu
    if plan.mode == "blend" and not is_ct_hu:
        raise LowdoseInputError(
            f"--mode blend is for CT in HU, and {dataset} is not; use --mode nb2nb or n2v"
        )
    if plan.route != "single" or options.mode != "auto":
        return plan
    if not is_ct_hu:
        log(f"mode {plan.mode} — {plan.reason}")
        return plan
    if bm3d_installed():
        plan = FitPlan("single", "blend", ONE_SCAN_REASON)
    else:  # an optional extra: the built-in model alone, and say what the blend would need
        plan = FitPlan(
            "single",
            "builtin",
            ONE_SCAN_REASON.split(": the built-in")[0]
            + ": the built-in model ct-sinogram alone (the blend with spectrum BM3D, "
            "+0.76 dB at quarter dose, needs pip install lowdose[bm3d])",
        )
    log(f"mode {plan.mode} — {plan.reason}")
    return plan


NB2NB_MIN_PX = 64
"""Neighbor2Neighbor halves its patch and the U-Net needs multiples of 32: images >= 64 px."""


def patch_px(dataset: Path) -> int:
    """The training patch: 64 px, or 32 px for images narrower than 64 (a view half of few
    views); the U-Net's five poolings need a multiple of 32."""
    height, width = read_info(dataset).shape[2:]
    return 64 if min(height, width) >= 64 else 32


def projection_mode(plan: FitPlan, dataset: Path, options: FitOptions, *, log) -> FitPlan:
    """Projection halves narrower than 64 px train Noise2Void (nb2nb's patch cannot fit)."""
    if plan.route != "projections" or plan.mode != "nb2nb":
        return plan
    height, width = read_info(dataset).shape[2:]
    if min(height, width) >= NB2NB_MIN_PX:
        return plan
    if options.mode != "auto":
        raise LowdoseInputError(
            f"{dataset}: view halves of {height} x {width} px are too small for nb2nb (it needs "
            f">= {NB2NB_MIN_PX} px each way); use --mode n2v"
        )
    why = f" (n2v: halves of {height} views are too few for nb2nb's {NB2NB_MIN_PX} px)"
    plan = FitPlan("projections", "n2v", plan.reason.replace("nb2nb", "n2v") + why)
    log(f"mode {plan.mode} — {plan.reason}")
    return plan


def scan_reading(options: FitOptions) -> ScanReading:
    """How the options read, centre and reconstruct instrument scans (every stage alike)."""
    fields = [field.name for field in dataclasses.fields(ScanReading)]
    return ScanReading(**{name: getattr(options, name) for name in fields})
