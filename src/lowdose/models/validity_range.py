"""Where a model helps: the input noise levels over which its clean-free gain is positive.

Measured when training ends (:func:`lowdose.training.validity.measure_validity`), stored in the
checkpoint's ``hyper_parameters["meta"]["validity"]`` and read back by
:func:`lowdose.models.checkpoint.load_model` (which this module's :class:`ValidityRange` was
part of, and which still exports it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
        What the sigmas are measured on: ``"network"`` (the checkpoint's ``scaling``).
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
