"""Experiments as validated YAML: one file per paper result, with quick / medium / paper scales.

An experiment file names the dataset to build, the models to train (mode and loss), the filters to
compare, the sweep to run, and per-scale overrides. ``scales.<name>`` is deep-merged over the base
before validation, so a typo in any key (base or scale) is an error naming the key.

``seeds`` is how many times each network is trained (training seeds ``train.seed + 0 .. seeds -
1``): 1 unless the file or ``lowdose reproduce --seeds K`` (default 3) says otherwise; ``lowdose
demo`` trains one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lowdose.baselines.tuning_kinds import parse_tunings
from lowdose.core.errors import LowdoseInputError
from lowdose.physics.noise_levels import NoiseLevel
from lowdose.simulate.ct_levels import NOISE_ALIASES

EXPERIMENTS_DIR = Path(__file__).parent / "experiments"
Scale = Literal["quick", "medium", "paper"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """How to build the experiment's HDF5 dataset (simulate xray | simulate ct)."""

    kind: Literal["xray", "ct"]
    # The paper's baseline PSNR; CT sinogram noise may give a physical dose instead
    # (photons_per_ray or dose_fraction), then no target is solved for.
    target_psnr_db: float | None = None
    realisations: int = Field(2, ge=2)
    size: int = Field(256, ge=32)
    seed: int = 0
    # X-ray projections
    phantoms: int = Field(100, ge=2)
    angles: int = Field(63, ge=1)
    geometry: Literal["parallel", "cone"] = "parallel"
    # CT slices
    source: str = "phantom"
    noise: Literal["awgn", "sinogram"] = "awgn"
    # Which PSNR the target refers to: the paper's data_range 1 scale, or the -1000..1000 HU window
    # (physically sensible photon counts for the sinogram model).
    target_scale: Literal["data_range_1", "hu_window"] = "data_range_1"
    # Dose-based CT sinogram noise (lowdose simulate ct --photons-per-ray / --dose-fraction)
    photons_per_ray: float | None = Field(None, gt=0)
    dose_fraction: float | None = Field(None, gt=0)
    electronic_noise_counts: float = Field(0.0, ge=0)
    kernel: Literal["hann", "ramp", "shepp-logan"] = "hann"
    # One scan split into K interleaved view subsets (Noise2Inverse) instead of K scans
    view_subsets: int | None = Field(None, ge=2)

    @field_validator("noise", mode="before")
    @classmethod
    def _noise_alias(cls, value: Any) -> Any:
        """``gaussian`` is ``awgn`` (the name datasets record), so both spell one spec."""
        return NOISE_ALIASES.get(value.strip().lower(), value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_noise_level(self) -> DatasetSpec:
        doses = [v for v in (self.photons_per_ray, self.dose_fraction) if v is not None]
        if len(doses) > 1:
            raise ValueError("give photons_per_ray or dose_fraction, not both")
        if doses and (self.kind != "ct" or self.noise != "sinogram"):
            raise ValueError("photons_per_ray / dose_fraction need kind ct with noise sinogram")
        if doses and self.target_psnr_db is not None:
            raise ValueError("target_psnr_db and a dose exclude each other: give one")
        if not doses and self.target_psnr_db is None:
            raise ValueError("give target_psnr_db (or, for CT sinogram noise, a dose)")
        if self.view_subsets is not None and not doses:
            raise ValueError("view_subsets needs a dose-based sinogram dataset")
        return self

    def noise_level(self) -> NoiseLevel:
        """The dataset's one noise level: its dose, else its target PSNR (the validator made sure
        exactly one is given)."""
        if self.photons_per_ray is not None:
            return NoiseLevel(photons_per_ray=self.photons_per_ray)
        if self.dose_fraction is not None:
            return NoiseLevel(dose_fraction=self.dose_fraction)
        return NoiseLevel(target_psnr_db=self.target_psnr_db)


class IqSpec(_Strict):
    """Image quality on the digital QA phantom at the experiment's dose (``lowdose iq``)."""

    enabled: bool = False
    realisations: int = Field(16, ge=2)
    size: int = Field(256, ge=64)
    filters: list[str] = ["nlm", "bm3d", "bm3d-psd"]


class ModelSpec(_Strict):
    """One network to train: the paper's table label is derived from mode and loss."""

    name: str
    mode: Literal["n2n", "n2c"]
    loss: Literal["mse", "mae"]


class EvaluateSpec(_Strict):
    filters: list[str] = ["gaussian", "median", "bilateral", "nlm", "bm3d"]
    # one of lowdose.baselines.tuning_kinds.TUNING_CHOICES or a comma-separated list of them
    tuning: str = "both"

    @field_validator("tuning")
    @classmethod
    def _known_tunings(cls, value: str) -> str:
        parse_tunings(value)
        return value

    # 8: every network also as its self-ensemble over the 8 dihedral transforms (<model>-tta8)
    tta: Literal[1, 8] = 1

    def cache_fields(self) -> dict:
        """The fields that key the evaluate stage (tta only when set: older caches stay valid)."""
        return self.model_dump(exclude={"tta"} if self.tta == 1 else set())


class ForeignModel(_Strict):
    """A model trained by another experiment of the same run (e.g. ct24's model in ct18's sweep)."""

    experiment: str
    model: str


class SweepSpec(_Strict):
    enabled: bool = True
    models: list[str] = []
    foreign_models: list[ForeignModel] = []
    psnr_range_db: tuple[float, float] = (4.0, 50.0)
    levels: int = Field(15, ge=2)
    images: int = Field(20, ge=1)
    filters: list[str] = ["gaussian", "median", "bilateral"]


class ExperimentConfig(_Strict):
    """A paper result: dataset, models, evaluation and sweep, resolved at one scale."""

    name: str
    paper_table: str = ""
    description: str = ""
    scale: Scale = "quick"
    dataset: DatasetSpec
    models: list[ModelSpec]
    # Keys of lowdose.training.config.TrainConfig (validated there), shared by all models of the
    # experiment.
    train: dict[str, Any] = {}
    # Trainings per model, seeds train.seed + 0 .. seeds - 1 (the report's mean ± sd over seeds).
    seeds: int = Field(1, ge=1)
    evaluate: EvaluateSpec = EvaluateSpec()
    sweep: SweepSpec = SweepSpec()
    iq: IqSpec = IqSpec()


def training_seeds(config: ExperimentConfig) -> list[int]:
    """The training seeds of every network: ``train.seed + 0 .. seeds - 1`` (train.seed default 0).

    >>> spec = {"name": "x", "dataset": {"kind": "xray", "target_psnr_db": 30.0}, "models": []}
    >>> training_seeds(ExperimentConfig(**spec, train={"seed": 5}, seeds=2))
    [5, 6]
    """
    base = int(config.train.get("seed", 0))
    return [base + k for k in range(config.seeds)]


def available_experiments() -> list[str]:
    """Names of the experiment files shipped with lowdose."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def load_experiment(
    name_or_path: str | Path, scale: Scale, *, seeds: int | None = None
) -> ExperimentConfig:
    """Read a one-arm experiment YAML (a shipped name such as ``xray`` or a path) at ``scale``.

    ``seeds`` (trainings per network), when given, wins over the file's ``seeds``. A file with
    ``arms`` is read with :func:`load_experiments`.
    """
    configs = load_experiments(name_or_path, scale, seeds=seeds)
    if len(configs) != 1:
        raise LowdoseInputError(
            f"experiment {name_or_path!r} has {len(configs)} arms; read it with load_experiments"
        )
    return configs[0]


def load_experiments(
    name_or_path: str | Path, scale: Scale, *, seeds: int | None = None
) -> list[ExperimentConfig]:
    """Read an experiment YAML at ``scale``: one config, or one per arm.

    ``arms`` (optional) maps an arm name to overrides deep-merged over the base before the scale
    (e.g. ``ct-dose``'s quarter and tenth dose, two scans or one split scan); arm ``A`` of
    experiment ``E`` runs as experiment ``E-A`` (its own folder, dataset and models).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = EXPERIMENTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise LowdoseInputError(
            f"experiment {name_or_path!r} not found; choose one of {available_experiments()} "
            "or give a YAML path"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise LowdoseInputError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    scales = raw.pop("scales", {}) or {}
    arms = raw.pop("arms", None) or {None: {}}
    if scale not in scales and scale != "quick":
        raise LowdoseInputError(f"{path}: no '{scale}' scale; it defines {sorted(scales)}")
    configs = []
    for arm, override in arms.items():
        merged = _deep_merge(_deep_merge(raw, override or {}), scales.get(scale, {}) or {})
        if arm is not None:
            merged["name"] = f"{raw.get('name', path.stem)}-{arm}"
        merged["scale"] = scale
        if seeds is not None:
            merged["seeds"] = seeds
        try:
            configs.append(ExperimentConfig.model_validate(merged))
        except ValidationError as exc:
            where = f"{path} (arm {arm})" if arm is not None else str(path)
            raise LowdoseInputError(f"{where}: {_first_error(exc)}") from None
    return configs


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key '{where}'; check the spelling against the documented keys"
    return f"{where}: {err['msg']}"
