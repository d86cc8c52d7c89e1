"""The simulated X-ray projection dataset (paper section II-A): phantoms -> projections -> noise.

For each random torso phantom (:func:`lowdose.phantoms.torso.torso_phantom`) the clean transmission
``t = exp(-line integral)`` is computed at ``angles`` views (:func:`view_angles`), then
``realisations`` independent Poisson copies at ``photons_per_pixel``. Parallel views span
[0, 180) degrees: the parallel view at ``theta + 180`` is the mirror image of the one at
``theta``, so an even count over 360 degrees puts mirror pairs (duplicates) in one test set;
over [0, 180) no two views are mirror images for any count. Cone-beam views span [0, 360)
(opposite cone views are not mirror images). The image the network sees is the transmission
itself (pre-log), scaled as in the paper: each clean projection is divided by its own maximum
``scale[i]`` (~1, the unattenuated air around the body) and its noisy copies by the **same**
number, so noisy values may exceed 1; PSNR uses ``data_range = 1``.

The level is a :class:`lowdose.physics.noise_levels.NoiseLevel`: ``photons_per_pixel``, or a
``target_psnr_db`` that the dose is solved for, so that the mean per-image PSNR of the noisy set
hits it:
each phantom's projections give a photon count that hits the target on that phantom alone
(:func:`lowdose.physics.noise_levels.solve_photons_for_psnr`); since the expected PSNR is
``10 log10(photons) + c_i`` per image, the geometric mean of those counts hits it on the whole
set (exact up to a ~1e-6 dB second-order term). The achieved baseline is measured and stored.

Two passes run in a process pool over phantoms: (1) phantom + projection, clean transmissions
into a temporary memory-mapped file beside the output; (2) noise. Every phantom draws from its
own child of ``numpy.random.SeedSequence(seed)`` (anatomy and noise streams apart), so a seed
gives the same file whatever the worker count. The noise stream is also keyed by the requested
level (the target PSNR, or the dose when it is given), so datasets at two levels never share
Poisson draws while the same (seed, level) gives the same file bit for bit.
"""

from __future__ import annotations

import concurrent.futures
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.progress import Progress
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.build import DatasetSummary, planned_writer, summarise_dataset
from lowdose.data.split_plan import plan_split
from lowdose.phantoms.torso import torso_phantom
from lowdose.physics.cone_beam import cone_projection
from lowdose.physics.noise import add_poisson_transmission
from lowdose.physics.noise_levels import NoiseLevel, level_key, solve_photons_for_psnr
from lowdose.physics.projection import parallel_projection, projection_angles

FIELD_OF_VIEW_MM = 512.0  # the phantom torso spans this in z and fits it in-plane
PAPER_FRACTIONS = (0.8 * 0.9, 0.8 * 0.1, 0.2)
"""(train, val, test) phantoms: 20 % test, 10 % of the rest for validation (paper: 80 train)."""
VIEW_SPAN_DEG = {"parallel": 180.0, "cone": 360.0}
"""Angular span of the views per geometry: parallel over 180 (no mirror pairs), cone over 360."""
PAPER_XRAY_LEVEL = NoiseLevel(target_psnr_db=29.91)
"""The paper's X-ray baseline PSNR (Table III)."""


@dataclass(frozen=True)
class XrayDetails:
    """What an X-ray build knows beyond the attributes: the ordered Noise2Noise pairs of its
    training images (also ``attrs.extra["n_train_pairs_n2n"]``)."""

    n_train_pairs_n2n: int


def view_angles(n_views: int, geometry: str = "parallel") -> np.ndarray:
    """(n_views,) float64 view angles in degrees: ``span * k / n_views``, ``k = 0 .. n_views - 1``.

    ``span`` is :data:`VIEW_SPAN_DEG` of the geometry: 180 for ``"parallel"`` (no view is the
    mirror image of another; views at ``theta`` and ``theta + 180`` would be), 360 for ``"cone"``.

    >>> view_angles(4).tolist(), view_angles(4, "cone").tolist()
    ([0.0, 45.0, 90.0, 135.0], [0.0, 90.0, 180.0, 270.0])
    """
    if geometry == "cone":
        return projection_angles(n_views)
    return projection_angles(n_views) / 2.0  # 360 k / n halved: 180 k / n


@dataclass(frozen=True)
class _Job:
    index: int
    anatomy_seed: np.random.SeedSequence
    noise_seed: np.random.SeedSequence
    size: int
    angles_deg: np.ndarray
    geometry: str
    clean_path: str
    target_psnr_db: float | None


def simulate_phantom_projections(
    size: int, angles_deg, *, rng: np.random.Generator, geometry: str = "parallel"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One phantom and its clean transmissions.

    Returns
    -------
    mu : (size, size, size) float32, 1/mm
    labels : (size, size, size) uint8 organ ids
    transmission : (A, size, size) float32 in (0, 1], ``exp(-line integral)``
    """

    voxel_mm = FIELD_OF_VIEW_MM / size
    mu, labels = torso_phantom((size, size, size), rng=rng, voxel_mm=voxel_mm)
    project = parallel_projection if geometry == "parallel" else cone_projection
    line = project(mu, angles_deg, voxel_mm=voxel_mm)
    return mu, labels, np.exp(-line).astype(np.float32)


def _project_job(job: _Job) -> tuple[int, float, np.ndarray]:

    rng = np.random.default_rng(job.anatomy_seed)
    _, _, t = simulate_phantom_projections(job.size, job.angles_deg, rng=rng, geometry=job.geometry)
    clean = np.load(job.clean_path, mmap_mode="r+")
    rows = slice(job.index * len(t), (job.index + 1) * len(t))
    clean[rows] = t
    clean.flush()
    scale = t.max(axis=(1, 2))  # the paper's per-image divisor
    if job.target_psnr_db is None:
        return job.index, float("nan"), scale
    return job.index, solve_photons_for_psnr(t, job.target_psnr_db).level, scale


def _noise_job(args) -> tuple[int, np.ndarray, np.ndarray]:

    job, photons, n_realisations, stream = args
    rng = _noise_rng(job.noise_seed, stream)
    clean = np.load(job.clean_path, mmap_mode="r")
    n_views = len(job.angles_deg)
    t = np.array(clean[job.index * n_views : (job.index + 1) * n_views])
    noisy = np.stack(
        [add_poisson_transmission(t, photons, rng=rng) for _ in range(n_realisations)], 1
    )
    scale = t.max(axis=(1, 2))
    return job.index, t / scale[:, None, None], noisy / scale[:, None, None, None]


def _noise_rng(noise_seed: np.random.SeedSequence, level: tuple[int, int]) -> np.random.Generator:
    """The phantom's noise stream at one requested level ``(kind, level_key)``.

    A child of the phantom's noise seed: two levels never share draws, one (seed, level) repeats.
    """
    key = (*noise_seed.spawn_key, *level)
    return np.random.default_rng(np.random.SeedSequence(noise_seed.entropy, spawn_key=key))


def build_xray_dataset(
    out: str | os.PathLike,
    *,
    phantoms: int = 100,
    angles: int = 63,
    size: int = 256,
    realisations: int = 2,
    level: NoiseLevel = PAPER_XRAY_LEVEL,
    geometry: str = "parallel",
    seed: int = 0,
    workers: int = 1,
    fractions: tuple[float, ...] = PAPER_FRACTIONS,
    split_by: str = "auto",
    progress: Progress | None = None,
) -> DatasetSummary[XrayDetails]:
    """Simulate the X-ray projection dataset and write it (HDF5, docs/interfaces.md).

    Parameters
    ----------
    out
        Destination ``.h5`` (written atomically).
    phantoms, angles, size, realisations
        Phantoms, views per phantom (:func:`view_angles`: over [0, 180) degrees for parallel
        beam, so no two views are mirror images; over [0, 360) for cone beam), image side in
        pixels (also the phantom volume side; voxel = 512 mm / size), noisy copies per image.
        Paper: 100, 63, -, 2.
    level
        ``target_psnr_db``, the target mean baseline PSNR (dose solved; the paper's 29.91 dB by
        default), or ``photons_per_pixel``, the dose itself.
    geometry
        ``"parallel"`` or ``"cone"`` (flat-panel C-arm, SID 750 mm, SDD 1200 mm).
    seed
        Root seed; per-phantom children of ``numpy.random.SeedSequence(seed)``. The noise is
        also keyed by the requested level.
    workers
        Processes (1 runs inline); the output does not depend on it.
    fractions, split_by
        Fractions of phantoms (views, tiles) for (train, val, test) or (train, test), and the
        method (:func:`lowdose.data.split_plan.plan_split`: ``patient`` = the phantom).
    progress
        ``progress(stage, done, total)`` with stage ``"phantoms"`` or ``"noise"`` and ``done``
        the phantoms finished so far (:mod:`lowdose.core.progress`).

    Returns
    -------
    DatasetSummary[XrayDetails]
        ``noise_level`` is the dose in photons per pixel.
    """
    check_args(phantoms, angles, size, realisations, level, geometry)
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    children = np.random.SeedSequence(seed).spawn(phantoms + 1)
    ids = np.repeat([f"phantom-{i:04d}" for i in range(phantoms)], angles)
    plan = plan_split(
        ids,
        image_shape=(size, size),
        rng=np.random.default_rng(children[-1]),
        method=split_by,
        fractions=fractions,
    )
    # the noise stream's level: (0, target dB) or (1, photons) when the dose is given
    stream = (0 if level.is_target else 1, level_key(level.value))
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        clean_path = os.path.join(tmp, "clean.npy")  # clean transmissions between the passes
        np.lib.format.open_memmap(clean_path, "w+", np.float32, (phantoms * angles, size, size))
        jobs = []
        for i, child in enumerate(children[:-1]):
            anatomy_seed, noise_seed = child.spawn(2)
            jobs.append(
                _Job(
                    i,
                    anatomy_seed,
                    noise_seed,
                    size,
                    view_angles(angles, geometry),
                    geometry,
                    clean_path,
                    level.target_psnr_db,
                )
            )
        with _pool(workers) as pool:
            solved, scales = np.empty(phantoms), np.empty((phantoms, angles), np.float32)
            for index, photons, scale in _stage(pool, _project_job, jobs, "phantoms", progress):
                solved[index], scales[index] = photons, scale
            dose = level.photons_per_pixel or float(np.exp(np.mean(np.log(solved))))
            attrs = _attrs(
                phantoms,
                angles,
                size,
                realisations,
                dose,
                level.target_psnr_db,
                geometry,
                seed,
                plan,
            )
            with planned_writer(
                out,
                plan,
                scale=scales.ravel(),
                n_realisations=realisations,
                image_shape=(size, size),
                has_clean=True,
                attrs=attrs,
            ) as writer:
                tasks = [(job, dose, realisations, stream) for job in jobs]
                for index, clean, noisy in _stage(pool, _noise_job, tasks, "noise", progress):
                    writer.write(index * angles, noisy=noisy, clean=clean)
    details = XrayDetails(n_train_pairs_n2n=attrs.extra["n_train_pairs_n2n"])
    return summarise_dataset(out, started_s=started, details=details)


class _Inline:
    """Stands in for a process pool when ``workers == 1`` (no start-up cost, easy to debug)."""

    def submit(self, fn, *args):
        future = concurrent.futures.Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _pool(workers: int):
    if workers <= 1:
        return _Inline()
    return concurrent.futures.ProcessPoolExecutor(workers)


def _stage(pool, fn, items, stage: str, progress: Progress | None, window: int = 4):
    """``map`` in submission order, at most ``window`` results in flight (bounded memory)."""
    if progress:
        progress(stage, 0, len(items))
    pending, done = [], 0
    for item in [*items, None]:
        if item is not None:
            pending.append(pool.submit(fn, item))
        while pending and (len(pending) >= window or item is None):
            yield pending.pop(0).result()
            done += 1
            if progress:
                progress(stage, done, len(items))


def check_args(phantoms, angles, size, realisations, level: NoiseLevel, geometry) -> None:
    """Raise unless the counts, the level (a target or photons per pixel) and the geometry are
    usable."""
    if min(phantoms, angles, realisations) < 1 or size < 16:
        raise LowdoseInputError(
            f"phantoms={phantoms}, angles={angles}, realisations={realisations}, size={size}: "
            "need at least 1 phantom, angle and realisation and size >= 16"
        )
    if not (level.is_target or level.photons_per_pixel is not None):
        raise LowdoseInputError(
            f"{level.describe()}: an X-ray dataset takes a target PSNR "
            "(--target-psnr) or photons per pixel (--photons)"
        )
    if geometry not in ("parallel", "cone"):
        raise LowdoseInputError(f"geometry={geometry!r}: use 'parallel' or 'cone'")


def _attrs(
    phantoms, angles, size, realisations, dose, target, geometry, seed, plan
) -> DatasetAttrs:
    n_train, n_val, n_test = (int(np.sum(plan.split == s)) for s in ("train", "val", "test"))
    return DatasetAttrs(
        modality="xray",
        noise_model="poisson",
        scaling_rule="per_image_max",
        noise_level=float(dose),
        target_psnr_db=float("nan") if target is None else float(target),
        psnr_data_range=1.0,
        scaling_offset=0.0,
        raw_units="transmission",
        seed=int(seed),
        description=(
            f"lowdose torso phantoms, {phantoms} phantoms x {angles} views over "
            f"[0, {VIEW_SPAN_DEG[geometry]:.0f}) deg, "
            f"{geometry} beam, Poisson at {dose:.1f} photons/pixel on t = exp(-line integral); "
            "each image divided by its clean maximum (scale). "
            f"Split by {plan.method}: {n_train} train, {n_val} val, {n_test} test images; "
            f"train+val = {n_train + n_val} (paper: 80 phantoms x 63 = 5,040 train, x 2 ordered "
            "N2N pairs = 10,080)."
        ),
    ).with_extra(
        geometry=geometry,
        n_phantoms=int(phantoms),
        n_angles=int(angles),
        view_span_deg=VIEW_SPAN_DEG[geometry],
        view_angles_rule=f"{VIEW_SPAN_DEG[geometry]:.0f} * k / n_angles, k = 0 .. n_angles - 1",
        voxel_mm=FIELD_OF_VIEW_MM / size,
        effective_energy_kev=65.0,
        n_train_images=n_train,
        n_val_images=n_val,
        n_test_images=n_test,
        n_train_pairs_n2n=n_train * realisations * (realisations - 1),
    )
