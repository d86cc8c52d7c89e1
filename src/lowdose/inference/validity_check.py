"""Is a user's input inside the model's validity range? Every slice, reported per series.

``lowdose denoise`` calls :func:`validity_warnings` for each input before denoising. The range
(:class:`lowdose.models.validity_range.ValidityRange`) is put in the input's physical units
(:func:`~lowdose.models.validity_range.in_input_units`: HU of noise sd for CT, the network's
transmission scale for X-ray), and each image's noise is estimated alone, by the estimator the
range was measured with (:func:`input_noise_levels`): for CT ranges measured in HU
(``scale="hu"``) the correlated-noise estimator in the body
(:func:`lowdose.physics.single_image_noise.ct_noise_sd_hu`), for older ones (network scale,
converted by the divisor) Immerkaer's white-noise estimator on the same HU (the range was read
that way, so the comparison is fair, and the line says that estimator reads FBP noise low).

Images are grouped by DICOM series (``SeriesInstanceUID``), else one group per file; a group
with images outside the range gets one line: how many are noisier and how many cleaner than
the range, their levels, and the likely cause with an action that exists for this model (see
:func:`advice`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lowdose.data.scaling import NetworkScaling, scale_to_network
from lowdose.models.validity_range import (
    CORRELATED_NOISE_ESTIMATOR,
    UNITS_TEXT,
    ValidityRange,
    in_input_units,
    range_text,
)
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.physics.single_image_noise import ct_noise_sd_hu

AIR_BELOW_HU = -500.0  # a CT slice in HU has air (~-1000 HU) around the body: pixels below this
RETRAIN = "lowdose dataset from-repeats or from-sinogram, then lowdose train"


def input_noise_levels(
    images, scaling: NetworkScaling, validity: ValidityRange, *, inside=None
) -> np.ndarray:
    """Each image's noise level, in the units and by the estimator of ``validity``.

    Parameters
    ----------
    images : ndarray (H, W) or (B, H, W)
        The input in its own units (HU for CT).
    scaling : NetworkScaling
        The checkpoint's scaling (puts X-ray images on the network's transmission scale).
    validity : ValidityRange
        The range as stored; :func:`in_input_units` decides the units.
    inside : ndarray of bool, shape of ``images``, optional
        The CT field of view (padding outside it carries no noise).

    Returns
    -------
    ndarray (B,) float64
        Noise sd per image (HU for CT ranges); NaN where it cannot be estimated (an image
        smaller than 3x3, or with too few uniform patches).
    """
    stack = np.asarray(images)
    stack = stack[None] if stack.ndim == 2 else stack  # (B, H, W), a view
    masks = [None] * len(stack) if inside is None else np.reshape(inside, stack.shape)
    if min(stack.shape[-2:]) < 3:
        return np.full(len(stack), np.nan)
    if in_input_units(validity, scaling).scale != "hu":  # X-ray: on the network's scale
        return np.array(
            [single_image_noise_sigma(scale_to_network(image, scaling)[0]) for image in stack]
        )
    if validity.estimator == CORRELATED_NOISE_ESTIMATOR:
        return np.array(
            [ct_noise_sd_hu(image, inside=mask) for image, mask in zip(stack, masks, strict=True)]
        )
    return np.array([single_image_noise_sigma(image) for image in stack])  # padding: constant


def validity_warnings(
    path: Path,
    images,
    scaling: NetworkScaling,
    validity: ValidityRange,
    *,
    file_meta: Mapping | None = None,
    inside=None,
) -> list[str]:
    """One warning line per series of ``path`` that has images outside ``validity``.

    ``file_meta`` is what :func:`lowdose.io.images.read_image_stack` returned: its ``slices``
    group DICOM images by series and its ``headers`` name the reconstruction kernel.
    """
    stack = np.asarray(images)
    stack = stack[None] if stack.ndim == 2 else stack  # (B, H, W)
    physical = in_input_units(validity, scaling)
    levels = input_noise_levels(stack, scaling, validity, inside=inside)
    lines = []
    for name, index in _series(path, len(stack), file_meta or {}).items():
        line = series_warning(
            name, stack[index], levels[index], physical, kernels=_kernels(file_meta or {}, index)
        )
        if line is not None:
            lines.append(line)
    return lines


def series_warning(
    name: str,
    images: np.ndarray,
    levels: np.ndarray,
    validity: ValidityRange,
    *,
    kernels: Sequence[str] = (),
) -> str | None:
    """The line for one series: images (B, H, W), their noise ``levels`` (B,) in the units of
    ``validity`` (already :func:`in_input_units`); None when every estimate is inside or NaN."""
    low, high = validity.sigma_low, validity.sigma_high
    units = UNITS_TEXT.get(validity.scale, validity.scale)
    known = levels[np.isfinite(levels)]
    if not high > 0:
        if known.size == 0:
            return None
        return (
            f"{name}: the model showed no gain on its own validation data "
            f"({range_text(validity)}): retrain it"
        )
    noisier, cleaner = int(np.sum(known > high)), int(np.sum(known < low))
    if noisier + cleaner == 0:
        return None
    spread = f"{np.min(known):.3g}..{np.max(known):.3g} {units}, median {np.median(known):.3g}"
    return (
        f"{name}: {noisier + cleaner} of {len(levels)} image(s) outside the model's validity "
        f"range ({range_text(validity)}): {noisier} noisier, {cleaner} cleaner (noise sd "
        f"{spread}); {advice(validity, images, np.median(known), noisier >= cleaner, kernels)}"
    )


def advice(
    validity: ValidityRange,
    images: np.ndarray,
    level: float,
    noisier: bool,
    kernels: Sequence[str] = (),
) -> str:
    """Likely cause (units, dose, reconstruction kernel) and an action this model allows."""
    if validity.scale == "hu" and not (np.asarray(images) < AIR_BELOW_HU).any():
        return (
            f"likely cause: units (no pixel below {AIR_BELOW_HU:g} HU, no air: are these HU?);"
            " pass HU (DICOM with its rescale, NIfTI or TIFF in HU)"
        )
    kernel = f" ({', '.join(sorted(set(kernels)))})" if kernels else ""
    if not noisier:
        return (
            f"likely cause: a higher dose or a smoother reconstruction kernel{kernel} than "
            "the training data; the model may over-smooth it: train one on data like it "
            f"({RETRAIN})"
        )
    if validity.renoised and level > 0:  # Poisson or AWGN: re-noising reaches this dose
        fraction = (validity.trained_sigma / level) ** 2  # noise sd ~ 1 / sqrt(dose)
        return (
            f"likely cause: a lower dose than the training data (about {fraction:.2g} of it); "
            f"retrain with lowdose train --dose-range {_floor_2g(fraction)}:1"
        )
    # sinogram or measured noise cannot be re-noised: --dose-range does not apply to this model
    source = "a sharper reconstruction kernel" + kernel + " or a lower dose"
    return (
        f"likely cause: {source} than the training data; denoise images reconstructed like "
        f"its training data, or train a model on data like these ({RETRAIN})"
    )


def _series(path: Path, count: int, file_meta: Mapping) -> dict[str, np.ndarray]:
    """``{name: image indices}``: DICOM series by UID (in order of appearance), else the file."""
    slices = tuple(file_meta.get("slices") or ())
    uids = [s.series_uid for s in slices] if len(slices) == count else []
    if len(set(uids)) <= 1:
        return {str(path): np.arange(count)}
    order = list(dict.fromkeys(uids))
    return {f"{path} series {uid}": np.flatnonzero(np.array(uids) == uid) for uid in order}


def _kernels(file_meta: Mapping, index: np.ndarray) -> list[str]:
    """DICOM ConvolutionKernel of the images ``index`` (a string or a list in the tag)."""
    headers = tuple(file_meta.get("headers") or ())
    names = []
    for k in index:
        value = getattr(headers[k], "ConvolutionKernel", None) if k < len(headers) else None
        values = [value] if isinstance(value, str) else list(value or ())
        names += [str(v).strip() for v in values if str(v).strip()]
    return names


def _floor_2g(value: float) -> str:
    """``value`` rounded down to 2 significant digits (a dose range must reach it)."""
    digits = 1 - int(np.floor(np.log10(value)))
    return f"{np.floor(value * 10**digits) / 10**digits:g}"
