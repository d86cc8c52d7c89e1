"""Noise levels: the one a dataset asks for, the one that meets a target PSNR, the PSNR reached.

:class:`NoiseLevel` is a requested level, exactly one of a target PSNR, photons per pixel (X-ray),
photons per ray (CT sinogram), a dose fraction (CT sinogram, :mod:`lowdose.physics.ct_dose`) or a
sigma (AWGN): made once where a user states it (command-line options, an experiment's dataset) and
handed to the builders. :func:`level_key` turns a level into the integer that keys its noise
stream. :func:`solve_photons_for_psnr` and :func:`solve_sigma_for_psnr` return the level whose
*expected mean of per-image PSNR* equals a target, in closed form (second-order exact: the Jensen
term of the log is included, ~1e-3 dB on 64x64 images), as a :class:`SolvedLevel`.
:func:`solve_level_numerically` searches any monotone noise model (e.g. sinogram Poisson + FBP)
with actual draws. :func:`achieved_psnr_db` measures what a built stack really reached. The noise
models themselves are in :mod:`lowdose.physics.noise`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import psnr
from lowdose.core.validation import checked_array, checked_level, checked_target
from lowdose.physics.ct_dose import photons_per_ray_for_dose

# dB per natural-log unit: PSNR = -DB_PER_NEPER * ln(MSE) + const.
_DB_PER_NEPER = 10.0 / np.log(10.0)


LevelKind = Literal[
    "target_psnr_db", "photons_per_pixel", "photons_per_ray", "dose_fraction", "sigma"
]


@dataclass(frozen=True)
class NoiseLevel:
    """The noise level a dataset is asked for: exactly one field is set, its unit in its name.

    Attributes
    ----------
    target_psnr_db : float, optional
        Mean per-image PSNR (dB) the builder solves its level for; finite.
    photons_per_pixel : float, optional
        X-ray Poisson dose, photons per detector pixel in the unattenuated beam; > 0.
    photons_per_ray : float, optional
        CT sinogram dose ``I0``, unattenuated photons per detector bin and view; > 0.
    dose_fraction : float, optional
        CT sinogram dose as a fraction of the full-dose convention of
        :mod:`lowdose.physics.ct_dose` (1 full, 0.25 quarter dose); > 0.
    sigma : float, optional
        White Gaussian noise SD on the dataset scale; > 0.

    Examples
    --------
    >>> level = NoiseLevel(dose_fraction=0.25)
    >>> level.kind, level.value, level.is_dose
    ('dose_fraction', 0.25, True)
    >>> level.photons_per_ray_at(bin_mm=1.0, views=1000)
    25000.0
    """

    target_psnr_db: float | None = None
    photons_per_pixel: float | None = None
    photons_per_ray: float | None = None
    dose_fraction: float | None = None
    sigma: float | None = None

    def __post_init__(self) -> None:
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        given = {name: value for name, value in given.items() if value is not None}
        if len(given) != 1:
            named = ", ".join(f"{name}={value!r}" for name, value in given.items()) or "none"
            raise LowdoseInputError(
                f"a noise level is exactly one of {', '.join(f.name for f in fields(self))}; "
                f"got {named}"
            )
        ((name, value),) = given.items()
        checked = checked_target(value) if name == "target_psnr_db" else checked_level(value, name)
        object.__setattr__(self, name, checked)

    @property
    def kind(self) -> LevelKind:
        """The name of the one field that is set."""
        return next(f.name for f in fields(self) if getattr(self, f.name) is not None)

    @property
    def value(self) -> float:
        """The value of the one field that is set, in its unit."""
        return getattr(self, self.kind)

    @property
    def is_target(self) -> bool:
        """True when the level is a target PSNR to solve for, not a level to draw at."""
        return self.target_psnr_db is not None

    @property
    def is_dose(self) -> bool:
        """True for a CT sinogram dose: photons per ray or a dose fraction."""
        return self.photons_per_ray is not None or self.dose_fraction is not None

    def photons_per_ray_at(self, *, bin_mm: float, views: int) -> float:
        """A CT dose as ``I0`` (photons per detector bin and view) at a geometry.

        ``photons_per_ray`` as given; ``dose_fraction`` by
        :func:`lowdose.physics.ct_dose.photons_per_ray_for_dose`. Any other kind raises.
        """
        if self.photons_per_ray is not None:
            return self.photons_per_ray
        if self.dose_fraction is not None:
            return photons_per_ray_for_dose(self.dose_fraction, bin_mm=bin_mm, views=views)
        raise LowdoseInputError(
            f"{self.describe()} is not a CT dose; give photons_per_ray or dose_fraction"
        )

    def describe(self) -> str:
        """``name=value``, e.g. ``dose_fraction=0.25``."""
        return f"{self.kind}={self.value:g}"

    def __repr__(self) -> str:
        return f"NoiseLevel({self.kind}={self.value!r})"


def level_key(level: float) -> int:
    """A stable non-negative integer for a noise level, to key its noise stream.

    The level rounded to 1/1000 of its unit (dB, photons), folded onto non-negative integers.

    >>> level_key(24.44), level_key(18.66), level_key(-1.0)
    (48880, 37320, 1999)
    """
    thousandths = int(round(float(level) * 1000))
    return 2 * thousandths if thousandths >= 0 else -2 * thousandths - 1


@dataclass(frozen=True)
class SolvedLevel:
    """A solved noise level and the mean per-image PSNR it is expected to give.

    Attributes
    ----------
    level : float
        photons_per_pixel (Poisson), sigma (Gaussian, data units) or I0 (sinogram), > 0.
    expected_psnr_db : float
        Expected mean over images of the per-image PSNR (dB) at this level.
    """

    level: float
    expected_psnr_db: float


def solve_photons_for_psnr(transmission, target_psnr_db) -> SolvedLevel:
    """Photons per pixel whose expected mean per-image PSNR equals the target (paper's scaling).

    Scaling (the paper's X-ray rule): each clean projection is divided by its own maximum
    ``m_i`` and its noisy copies by the same number; PSNR uses ``data_range = 1``. With
    ``P`` pixels, ``S_i = sum(t_i)`` and ``Q_i = sum(t_i**2)``, the expected MSE of image ``i`` is
    ``S_i / (P * photons * m_i**2)`` and the expected PSNR, to second order,
    ``-10 log10(E[MSE_i]) + 10/ln(10) * (1 / (photons * S_i) + 2 Q_i / S_i**2) / 2``. The mean
    over images is solved for ``photons`` by a few fixed-point steps (the second term is tiny).

    Parameters
    ----------
    transmission : array_like, shape (H, W) or (I, H, W)
        Clean transmission images, finite, >= 0, each with a positive maximum.
    target_psnr_db : float
        Target mean PSNR in dB (e.g. 29.91 for the paper's X-ray set), finite.

    Returns
    -------
    SolvedLevel
        ``level`` = photons_per_pixel.
    """
    t = checked_array(transmission, "transmission", nonnegative=True).astype(np.float64)
    t = t.reshape(-1, *t.shape[-2:]) if t.ndim >= 2 else t
    if t.ndim != 3:
        raise LowdoseInputError(f"transmission has shape {t.shape}; pass (H, W) or (I, H, W)")
    target = checked_target(target_psnr_db)
    peak = t.max(axis=(1, 2))
    if np.any(peak <= 0):
        raise LowdoseInputError("a transmission image is all zero; its max cannot scale it")
    sums = t.sum(axis=(1, 2))
    squares = (t * t).sum(axis=(1, 2))
    pixels = t.shape[1] * t.shape[2]

    def expected(photons: float) -> float:
        mse = sums / (pixels * photons * peak**2)
        spread = 1.0 / (photons * sums) + 2.0 * squares / sums**2
        return float(np.mean(-10.0 * np.log10(mse) + _DB_PER_NEPER * spread / 2.0))

    photons = 1.0
    for _ in range(6):  # PSNR is ~10 log10(photons) + const: converges in 2-3 steps
        photons *= 10.0 ** ((target - expected(photons)) / 10.0)
    return SolvedLevel(level=float(photons), expected_psnr_db=expected(photons))


def solve_sigma_for_psnr(clean, target_psnr_db, *, data_range) -> SolvedLevel:
    """AWGN sigma whose expected mean per-image PSNR equals the target (no clipping).

    The MSE of an image of ``P`` pixels is ``sigma**2 * chi2_P / P``, so the expected PSNR is
    ``10 log10(data_range**2 / sigma**2) + 10/ln(10) / P`` (second order), the same for every
    image; only the image size of ``clean`` matters.

    Parameters
    ----------
    clean : array_like, shape (H, W) or (I, H, W)
        Clean images on the scale the PSNR is measured on (CT: divided by the dataset max).
    target_psnr_db : float
        Target PSNR in dB (e.g. 24.44 or 18.66 for the paper's CT sets).
    data_range : float
        PSNR data range on that scale (1.0 on the paper's scaling), > 0.

    Returns
    -------
    SolvedLevel
        ``level`` = sigma in the units of ``clean``.
    """
    image = checked_array(clean, "clean", nonnegative=False)
    if image.ndim not in (2, 3):
        raise LowdoseInputError(f"clean has shape {image.shape}; pass (H, W) or (I, H, W)")
    target = checked_target(target_psnr_db)
    data_range = checked_level(data_range, "data_range")
    jensen_db = _DB_PER_NEPER / (image.shape[-1] * image.shape[-2])
    sigma = data_range * 10.0 ** (-(target - jensen_db) / 20.0)
    return SolvedLevel(level=float(sigma), expected_psnr_db=target)


def solve_level_numerically(
    psnr_at_level: Callable[[float], float],
    target_psnr_db: float,
    *,
    low: float,
    high: float,
    tol_db: float = 0.02,
    max_steps: int = 60,
) -> SolvedLevel:
    """Bisect (in log level) any monotone noise model for a target PSNR, using actual draws.

    For models without a closed form (sinogram Poisson followed by FBP). ``psnr_at_level`` must
    be deterministic (seed its own draws), and monotone over ``[low, high]``, increasing
    (photons, I0) or decreasing (sigma) with the level.

    Returns
    -------
    SolvedLevel
        The level and the PSNR measured there (within ``tol_db`` of the target).
    """
    target = checked_target(target_psnr_db)
    low, high = checked_level(low, "low"), checked_level(high, "high")
    at_low, at_high = psnr_at_level(low), psnr_at_level(high)
    if not min(at_low, at_high) <= target <= max(at_low, at_high):
        raise LowdoseInputError(
            f"target {target} dB is outside [{at_low:.2f}, {at_high:.2f}] dB reached between "
            f"levels {low} and {high}; widen the bracket"
        )
    rising = at_high > at_low
    best = SolvedLevel(low, at_low)
    for _ in range(max_steps):
        mid = float(np.sqrt(low * high))
        value = psnr_at_level(mid)
        best = SolvedLevel(mid, value)
        if abs(value - target) <= tol_db:
            break
        if (value < target) == rising:
            low = mid
        else:
            high = mid
    return best


def achieved_psnr_db(
    clean,
    noisy,
    *,
    data_range: float = 1.0,
    scaling: Literal["none", "per_image_max"] = "none",
) -> float:
    """Mean per-image PSNR (dB) of a noisy stack against its clean images.

    Parameters
    ----------
    clean : array_like, shape (H, W) or (I, H, W)
    noisy : array_like, shape of ``clean``, or (I, N, H, W) / (N, H, W) with realisations
    data_range : float
        PSNR data range on the measured scale.
    scaling : {"none", "per_image_max"}
        ``"per_image_max"`` first divides each clean image and its noisy copies by the clean
        image's maximum (the paper's X-ray rule), for raw transmission input.

    Returns
    -------
    float
        Mean over all images and realisations.
    """
    ref = np.asarray(clean, dtype=np.float64)
    est = np.asarray(noisy)
    if est.ndim == ref.ndim + 1:
        ref = ref[..., None, :, :]  # (..., 1, H, W): broadcast over realisations
    if scaling == "per_image_max":
        peak = ref.max(axis=(-2, -1), keepdims=True)
        if np.any(peak <= 0):
            raise LowdoseInputError("a clean image is all zero; its max cannot scale it")
        ref, est = ref / peak, est / peak
    elif scaling != "none":
        raise LowdoseInputError(f"scaling {scaling!r} is unknown; use 'none' or 'per_image_max'")
    try:
        ref = np.broadcast_to(ref, est.shape)
    except ValueError:
        raise LowdoseInputError(
            f"noisy shape {est.shape} does not match clean shape {np.shape(clean)}"
        ) from None
    values = psnr(
        ref.reshape(-1, *est.shape[-2:]), est.reshape(-1, *est.shape[-2:]), data_range=data_range
    )
    return float(np.mean(values))
