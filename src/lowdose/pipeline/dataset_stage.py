"""The dataset stage of an experiment: build (or reuse) its HDF5 file, keyed by the spec's hash.

Real CT data: an experiment's ``dataset.source`` names a DICOM folder
(``../shared/data/ct/tcga-luad`` in the paper's CT files). It is looked up, in order:
``LOWDOSE_CT_SOURCE=DIR`` (overrides the file); the source path itself (absolute, or relative to
the working folder); ``LOWDOSE_CT_DATA=/path/to/tcga-luad`` (the folder that ``source`` names,
for runs outside the repository checkout or from an installed wheel). Otherwise the run stops
with one line saying to set it. Phantom experiments (``source: phantom``, as ``lowdose demo``
runs) need neither.
"""

from __future__ import annotations

import os
from pathlib import Path

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Log, ProgressScope, no_progress
from lowdose.pipeline.cache import stage_key
from lowdose.pipeline.config import DatasetSpec
from lowdose.simulate.ct import build_ct_dataset
from lowdose.simulate.xray import build_xray_dataset

CT_SOURCE_ENV = "LOWDOSE_CT_SOURCE"
CT_DATA_ENV = "LOWDOSE_CT_DATA"


def workers() -> int:
    # Oracle search processes: one per core, at most 8 (the search is embarrassingly parallel).
    return max(1, min(8, len(os.sched_getaffinity(0))))


def build_dataset(
    spec: DatasetSpec, out_dir: Path, log: Log, bars: ProgressScope = no_progress
) -> tuple[Path, str]:
    """Build (or reuse) the dataset ``spec`` under ``out_dir/data``; return its path and key."""
    key = dataset_key(spec)
    path = out_dir / "data" / f"{spec.kind}-{key}.h5"
    if path.is_file():
        log(f"dataset: cached {path.name}")
        return path, key
    log(f"dataset: building {path.name}" + (" (QA phantom)" if spec.source == "qa-phantom" else ""))
    # one scan split into view subsets: its K subsets are the realisations
    scans = 1 if spec.view_subsets else spec.realisations
    common = {
        "realisations": scans,
        "size": spec.size,
        "seed": spec.seed,
        "level": spec.noise_level(),
    }
    with bars() as progress:
        if spec.kind == "xray":
            build_xray_dataset(
                path,
                phantoms=spec.phantoms,
                angles=spec.angles,
                geometry=spec.geometry,
                workers=workers(),  # same file for any worker count (seeded per phantom)
                progress=progress,
                **common,
            )
        else:
            build_ct_dataset(path, **ct_build_options(spec), progress=progress, **common)
    return path, key


_DOSE_DEFAULTS = {
    "photons_per_ray": None,
    "dose_fraction": None,
    "electronic_noise_counts": 0.0,
    "kernel": "hann",
    "view_subsets": None,
}


def dataset_key(spec: DatasetSpec) -> str:
    """The dataset stage key: v2 (X-ray views over [0, 180), noise streams keyed by level);
    sinogram noise v3 (its clean reference is always the noise-free FBP). Dose fields at their
    defaults are left out, so AWGN and X-ray datasets keep their v2 keys."""
    fields = {
        k: v
        for k, v in spec.model_dump().items()
        if k not in _DOSE_DEFAULTS or _DOSE_DEFAULTS[k] != v
    }
    if spec.target_psnr_db is None:
        fields.pop("target_psnr_db", None)
    version = "dataset-v3" if spec.noise == "sinogram" and spec.kind == "ct" else "dataset-v2"
    return stage_key(version, fields)


def ct_build_options(spec: DatasetSpec) -> dict:
    """Keywords of :func:`lowdose.simulate.ct.build_ct_dataset` for a CT dataset spec (the
    level, realisations, size and seed are passed with the X-ray ones); electronic noise and view
    subsets only with a dose, as the builder takes them."""
    options = {
        "source": resolve_ct_source(spec.source),
        "noise": spec.noise,
        "target_scale": spec.target_scale,
        "filter_name": spec.kernel,
    }
    if spec.noise_level().is_dose:
        options.update(
            electronic_noise_counts=spec.electronic_noise_counts, view_subsets=spec.view_subsets
        )
    return options


def resolve_ct_source(source: str) -> str | Path:
    """``phantom``, or the DICOM folder to read (see the module docstring for the order)."""
    if source in ("phantom", "qa-phantom"):
        return source
    override = os.environ.get(CT_SOURCE_ENV)
    if override:
        return Path(override)
    path = Path(source)
    if path.is_absolute() or path.exists():
        return path
    data = os.environ.get(CT_DATA_ENV)
    if data:
        return Path(data)
    raise LowdoseInputError(
        f"CT source folder {source} not found from {Path.cwd()}: set {CT_DATA_ENV}="
        "/path/to/tcga-luad (or dataset.source in the experiment YAML), or run the phantom "
        "experiments (lowdose demo)"
    )
