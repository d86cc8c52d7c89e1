"""Where a model helps: the input noise levels over which its clean-free gain is positive.

Measured when training ends (:func:`lowdose.training.validity.measure_validity`), stored in the
checkpoint's ``hyper_parameters["meta"]["validity"]`` and read back by
:func:`lowdose.models.checkpoint.load_model` (which this module's :class:`ValidityRange` was
part of, and which still exports it).

Units: a range is shown and compared in the input's physical units (:func:`in_input_units`):
HU of noise sd for CT (new CT ranges are measured and stored so, ``scale="hu"``, with the
correlated-noise estimator ``single_image_noise_sd``; older CT ranges, on the network scale,
are converted by the dataset divisor, which a standard deviation scales with, and keep their
white-noise estimator ``single_image_noise_sigma``, which reads FBP noise 2.6-6x low, so an
input is compared with them by that estimator); X-ray ranges stay on the transmission scale the
network sees (each projection divided by its own maximum: no single raw divisor exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from lowdose.data.scaling import HU_OFFSET, NetworkScaling

WHITE_NOISE_ESTIMATOR = "single_image_noise_sigma"
"""Immerkaer's white-noise estimator (:mod:`lowdose.physics.noise_estimation`)."""
CORRELATED_NOISE_ESTIMATOR = "single_image_noise_sd"
"""The noise-spectrum estimator (:mod:`lowdose.physics.noise_spectrum`), HU sd in the body."""
UNITS_TEXT = {"hu": "HU", "network": "on the network scale", "per_image_max": "transmission/max"}
"""Units of each ``scale`` for people; ``transmission/max``: each projection over its maximum."""


@dataclass(frozen=True)
class ValidityRange:
    """The input noise levels where a model helps, measured clean-free on its validation data.

    Stored in ``hyper_parameters["meta"]["validity"]`` as the dict :meth:`to_dict` writes.

    Attributes
    ----------
    sigma_low, sigma_high : float
        The range of input noise standard deviations (on the network's scale, ``scale``) over
        which the model's uPSNR gain was positive; ``sigma_low <= sigma_high``.
    trained_sigma : float
        The noise standard deviation of the training data, same scale.
    estimator : str
        How a noise level is estimated from one image (``"single_image_noise_sigma"``), so that
        a user's input is compared with the range on the same footing.
    levels : tuple of (dose_fraction, sigma, gain_db)
        The sweep behind the range: dose fraction of the acquired data (<= 1), the estimated
        noise sigma at it and the model's clean-free gain in dB.
    scale : str
        What the sigmas are measured in: ``"hu"`` (CT noise sd in HU) or ``"network"`` (the
        checkpoint's ``scaling``; X-ray: transmission over each projection's maximum).
    method : str
        How the sweep made its levels (binomial thinning, added Gaussian noise ...), free text.
    """

    sigma_low: float
    sigma_high: float
    trained_sigma: float
    estimator: str
    levels: tuple[tuple[float, float, float], ...] = ()
    scale: str = "network"
    method: str = ""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ValidityRange:
        """Read the stored dict form; ``KeyError``/``TypeError``/``ValueError`` if malformed.

        Examples
        --------
        >>> ValidityRange.from_dict({"estimator": "single_image_noise_sigma", "scale": "network",
        ...     "sigma_low": 0.01, "sigma_high": 0.1, "trained_sigma": 0.05, "method": "thinning",
        ...     "levels": [{"dose_fraction": 0.5, "sigma": 0.07, "gain_db": 4.0}]}).levels
        ((0.5, 0.07, 4.0),)
        """
        levels = tuple(
            (float(level["dose_fraction"]), float(level["sigma"]), float(level["gain_db"]))
            for level in values.get("levels") or ()
        )
        validity = cls(
            sigma_low=float(values["sigma_low"]),
            sigma_high=float(values["sigma_high"]),
            trained_sigma=float(values["trained_sigma"]),
            estimator=str(values["estimator"]),
            levels=levels,
            scale=str(values.get("scale", "network")),
            method=str(values.get("method", "")),
        )
        if not validity.sigma_low <= validity.sigma_high:
            raise ValueError(f"sigma_low {validity.sigma_low} > sigma_high {validity.sigma_high}")
        return validity

    @property
    def renoised(self) -> bool:
        """True when the sweep re-noised the data below the acquired dose (X-ray Poisson, CT
        AWGN): such a model can be retrained for lower doses with ``--dose-range``."""
        return any(dose < 1.0 for dose, _, _ in self.levels)

    def to_dict(self) -> dict[str, Any]:
        """The stored dict form (inverse of :meth:`from_dict`), plain JSON values."""
        return {
            "estimator": self.estimator,
            "scale": self.scale,
            "sigma_low": self.sigma_low,
            "sigma_high": self.sigma_high,
            "trained_sigma": self.trained_sigma,
            "levels": [
                {"dose_fraction": dose, "sigma": sigma, "gain_db": gain}
                for dose, sigma, gain in self.levels
            ],
            "method": self.method,
        }


def is_hu_scaling(scaling: NetworkScaling) -> bool:
    """A CT model in HU: ``raw_units`` ``hu``, or none recorded but the CT offset of 1024."""
    units = scaling.raw_units.strip().lower()
    return units == "hu" or (not units and scaling.scaling_offset == HU_OFFSET)


def in_input_units(validity: ValidityRange, scaling: NetworkScaling) -> ValidityRange:
    """``validity`` in the input's physical units (see the module docstring).

    A CT range on the network scale under ``dataset_max`` is multiplied by the divisor (an
    offset does not change a standard deviation) and becomes ``scale="hu"``; under
    ``per_image_max`` (X-ray) the values stay, relative to each image's maximum
    (``scale="per_image_max"``); any other range is returned as stored.

    >>> old = ValidityRange(0.001, 0.002, 0.0015, "single_image_noise_sigma", ((1.0, 0.0015, 3.0),))
    >>> ct = NetworkScaling("dataset_max", 1024.0, "hu", 4000.0)
    >>> hu = in_input_units(old, ct)
    >>> hu.scale, hu.sigma_low, hu.sigma_high, hu.levels, hu.estimator
    ('hu', 4.0, 8.0, ((1.0, 6.0, 3.0),), 'single_image_noise_sigma')
    """
    divisor = scaling.divisor
    if validity.scale == "network" and scaling.scaling_rule == "per_image_max":
        return replace(validity, scale="per_image_max")
    if validity.scale != "network" or scaling.scaling_rule != "dataset_max" or not divisor:
        return validity
    if not is_hu_scaling(scaling):
        return validity
    return replace(
        validity,
        sigma_low=validity.sigma_low * divisor,
        sigma_high=validity.sigma_high * divisor,
        trained_sigma=validity.trained_sigma * divisor,
        levels=tuple((dose, sigma * divisor, gain) for dose, sigma, gain in validity.levels),
        scale="hu",
    )


def range_text(validity: ValidityRange) -> str:
    """``"noise sd 1.42..6.24 HU (white-noise estimator)"``: a range for people, in its units.

    >>> range_text(ValidityRange(8.0, 26.0, 8.1, "single_image_noise_sd", scale="hu"))
    'noise sd 8..26 HU'
    """
    units = UNITS_TEXT.get(validity.scale, validity.scale)
    text = f"noise sd {validity.sigma_low:.3g}..{validity.sigma_high:.3g} {units}"
    if validity.scale == "hu" and validity.estimator == WHITE_NOISE_ESTIMATOR:
        text += " (Immerkaer's white-noise estimator: it reads FBP noise 2.6-6x low)"
    return text
