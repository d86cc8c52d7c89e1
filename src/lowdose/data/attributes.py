"""The typed attributes of a dataset file: what every builder writes and every reader reads.

A dataset file (:mod:`lowdose.data.dataset`) carries its provenance as HDF5 attributes. The keys
that other modules rely on are the fields of :class:`DatasetAttrs` (docs/interfaces.md lists them
with their meaning); anything a builder records only for people (the CT simulator's HU window
note, the X-ray geometry, a split-sinogram's view count, ...) goes to :attr:`DatasetAttrs.extra`,
which is written beside them and read back unchanged.

Values are plain Python scalars and str, as HDF5 stores them; a NaN float means "not known"
(e.g. ``achieved_psnr_db`` of a dataset without clean images).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from lowdose.core.errors import LowdoseInputError

Modality = Literal["xray", "ct"]
NoiseModel = Literal["poisson", "gaussian", "sinogram", "measured"]
ScalingRule = Literal["per_image_max", "dataset_max", "none"]

MODALITIES: tuple[str, ...] = ("xray", "ct")
NOISE_MODELS: tuple[str, ...] = ("poisson", "gaussian", "sinogram", "measured")
SCALING_RULES: tuple[str, ...] = ("per_image_max", "dataset_max", "none")
REQUIRED_KEYS: tuple[str, ...] = ("modality", "noise_model", "scaling_rule")
"""Keys a builder must state (the writer raises without them)."""

READ_FALLBACKS: dict[str, str] = {
    "modality": "xray",
    "noise_model": "measured",
    "scaling_rule": "none",
}
"""What a hand-written file without a required key reads as: plain images, no simulated level,
no scaling (no HU conversion, no HU-window metrics)."""

_CHOICES = {"modality": MODALITIES, "noise_model": NOISE_MODELS, "scaling_rule": SCALING_RULES}


@dataclass(frozen=True)
class DatasetAttrs:
    """Provenance and scaling of one dataset file.

    Attributes
    ----------
    modality : {"xray", "ct"}
    noise_model : {"poisson", "gaussian", "sinogram", "measured"}
        ``measured``: the user's own noisy data (no clean image, no simulated level).
    scaling_rule : {"per_image_max", "dataset_max", "none"}
    noise_level : float
        photons_per_pixel (poisson), sigma on the dataset scale (gaussian), I0 photons per ray
        (sinogram); NaN for measured data.
    target_psnr_db, achieved_psnr_db : float
        Requested and measured PSNR of the noisy realisations against clean (dB, data_range
        ``psnr_data_range`` on the dataset scale); NaN when not targeted / no clean images.
        The writer measures ``achieved_psnr_db`` when it is NaN and the file has clean images.
    psnr_data_range : float
        The PSNR data range on the dataset scale (> 0; 1.0 for every builder of lowdose).
    scaling_offset : float
        Raw units added before dividing: ``scaled = (raw + scaling_offset) / scale[i]`` (1024 for
        HU, 0 otherwise; see :mod:`lowdose.data.scaling`).
    raw_units : str
        Units of the raw values (``transmission``, ``hu``, ``line_integral``, ``unknown``...).
    seed : int
        Seed of the builder's random generator (-1 when none was used).
    n_realisations : int
        N, the second axis of ``noisy`` (set by the writer).
    description : str
    generator, created : str
        ``lowdose <version>`` and an ISO-8601 UTC time, set by the writer.
    extra : Mapping[str, str | int | float | bool]
        Builder-specific provenance for people (read back unchanged, never relied on by code
        outside the builder that wrote it), and two records every builder writes: how it split
        (``split_by``, ``split_gap``, ``split_gap_unit``, ``split_tile_px``, ``split_note``;
        written by :meth:`lowdose.data.splits.SplitPlan.to_attrs`) and the noise's lag-1
        correlation (``noise_corr_*``; read back by
        :meth:`lowdose.core.noise_correlation.NoiseCorrelation.from_attrs`).

    Examples
    --------
    >>> attrs = DatasetAttrs(modality="ct", noise_model="gaussian", scaling_rule="dataset_max")
    >>> DatasetAttrs.from_hdf5(attrs.with_extra(views=90).to_hdf5()).extra
    {'views': 90}
    """

    modality: Modality
    noise_model: NoiseModel
    scaling_rule: ScalingRule
    noise_level: float = math.nan
    target_psnr_db: float = math.nan
    achieved_psnr_db: float = math.nan
    psnr_data_range: float = 1.0
    scaling_offset: float = 0.0
    raw_units: str = "unknown"
    seed: int = -1
    n_realisations: int = 0
    description: str = ""
    generator: str = ""
    created: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_hdf5(cls, attrs: Mapping[str, Any], *, where: str = "dataset") -> DatasetAttrs:
        """Read the attributes of an open file (``handle.attrs``) or a mapping of them.

        Files written by every version of lowdose carry the same keys; a key a hand-written file
        lacks takes the default above (:data:`READ_FALLBACKS` for the required three). A known
        key with a value of the wrong kind, or not one of its choices, raises.

        Raises
        ------
        LowdoseInputError
            Naming ``where`` (the file), the attribute and its value.
        """
        values = {key: _plain(value) for key, value in attrs.items()}
        known = {f.name for f in fields(cls)} - {"extra"}
        typed = {key: _as_field_type(key, values[key], where) for key in known if key in values}
        extra = {key: value for key, value in values.items() if key not in known}
        result = cls(**{**READ_FALLBACKS, **typed}, extra=extra)
        check_dataset_attrs(result, where)
        return result

    def to_hdf5(self) -> dict[str, Any]:
        """All attributes as one flat dict of str, int, float and bool, ready for ``attrs``."""
        flat = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**dict(self.extra), **flat}

    def with_extra(self, **extra: Any) -> DatasetAttrs:
        """A copy with more builder-specific provenance in :attr:`extra`."""
        return replace(self, extra={**dict(self.extra), **extra})

    @property
    def is_ct_hu(self) -> bool:
        """True for CT data whose raw units are HU (HU-window metrics apply)."""
        return self.modality == "ct" and self.raw_units.lower() == "hu"

    @property
    def is_view_split(self) -> bool:
        """True when the realisations are reconstructions from disjoint view subsets of one scan.

        Their differences then hold the subsets' complementary streaks as well as the noise,
        so ``Var(y_i - y_j) / 2`` over-reads the noise variance (Noise2Inverse pairs). Datasets
        built from a sinogram or instrument scans say ``split_views``; simulated ones
        (``simulate ct --view-subsets``) say ``realisations_are = "view_subsets"``.
        """
        simulated = self.extra.get("realisations_are") == "view_subsets"
        return "split_views" in self.extra or simulated


def check_dataset_attrs(attrs: DatasetAttrs, where: str) -> None:
    """Raise unless the choices are known and ``psnr_data_range`` is finite and > 0."""
    for key, choices in _CHOICES.items():
        value = getattr(attrs, key)
        if value not in choices:
            raise LowdoseInputError(f"{where}: attribute {key}={value!r}; use {choices}")
    data_range = attrs.psnr_data_range
    if not (math.isfinite(data_range) and data_range > 0):
        raise LowdoseInputError(
            f"{where}: attribute psnr_data_range={data_range!r}; use a value > 0"
        )


_FLOAT_FIELDS = (
    "noise_level",
    "target_psnr_db",
    "achieved_psnr_db",
    "psnr_data_range",
    "scaling_offset",
)
_INT_FIELDS = ("seed", "n_realisations")


def _as_field_type(key: str, value: Any, where: str) -> Any:
    kind = float if key in _FLOAT_FIELDS else int if key in _INT_FIELDS else str
    if kind is not str and isinstance(value, str | bool):
        raise LowdoseInputError(f"{where}: attribute {key}={value!r}; use a number")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise LowdoseInputError(f"{where}: attribute {key}={value!r}; use a number") from None


def _plain(value: Any) -> Any:
    """HDF5 attribute value -> Python scalar or str."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
