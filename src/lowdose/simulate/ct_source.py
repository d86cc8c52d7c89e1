"""Clean CT slices in HU for the CT builder: real CT, torso phantoms or the QA phantom.

Sources: a folder or file readable by :func:`lowdose.io.images.read_ct` (slices resized to ``size``
with ``skimage.transform.resize``, anti-aliased, when they differ, e.g. 512 -> 256; the pixel size
grows accordingly), ``"phantom"``: axial slices of :func:`lowdose.phantoms.torso.torso_phantom`
converted to HU with the phantom's own water attenuation, so the pipeline runs with no data, or
``"qa-phantom"``: the three modules of :func:`lowdose.phantoms.qa_phantom.qa_phantom` (one
object, all in the test split: nobody trains on the QA phantom; its geometry in the attributes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.io.images import read_ct
from lowdose.phantoms.materials import MU_PER_MM
from lowdose.phantoms.qa_phantom import MODULES, qa_phantom
from lowdose.phantoms.torso import torso_phantom
from lowdose.physics.ct_noise import DEFAULT_PIXEL_MM


@dataclass(frozen=True)
class CTSource:
    """Clean slices ready for noise: HU (I, size, size) float32, who they belong to; ``test_only``
    (all to test) and ``attrs`` (more file attributes) for the QA phantom."""

    hu: np.ndarray
    patient_id: np.ndarray
    volume_id: np.ndarray
    pixel_mm: np.ndarray
    description: str
    skipped: tuple = ()
    test_only: bool = False
    attrs: Mapping = field(default_factory=dict)


def load_ct_source(
    source: str | os.PathLike,
    *,
    size: int,
    seed: int = 0,
    skip_bad: bool = False,
    n_phantoms: int = 5,
    slices_per_phantom: int = 8,
) -> CTSource:
    """Clean slices in HU at ``size`` x ``size`` from a folder/file or ``"phantom"``.

    Parameters
    ----------
    source : str or PathLike
        Anything :func:`lowdose.io.images.read_ct` reads, ``"phantom"`` or ``"qa-phantom"``.
    size : int
        Output edge in pixels (slices are resized, anti-aliased, when they differ).
    n_phantoms, slices_per_phantom : int
        Phantom source only: phantoms drawn (one object each) and axial slices taken from each.
    """
    if size < 32:
        raise LowdoseInputError(f"size={size}: use at least 32 pixels (256 or 512 typically)")
    if str(source) == "phantom":
        return _phantom_source(size, seed, n_phantoms, slices_per_phantom)
    if str(source) == "qa-phantom":
        qa, n = qa_phantom(size), len(MODULES)
        return CTSource(
            qa.hu,
            np.full(n, "qa-phantom"),
            np.array(qa.modules),
            np.full(n, qa.pixel_mm),
            f"QA phantom ({qa.pixel_mm:.3g} mm pixels)",
            test_only=True,
            attrs=qa.to_attrs(),
        )

    stack = read_ct(source, skip_bad=skip_bad)
    spacing = np.array([np.mean(s.pixel_spacing_mm or DEFAULT_PIXEL_MM) for s in stack.slices])
    hu, note = _resized(stack.hu, size)
    pixel_mm = spacing * stack.hu.shape[1] / size
    return CTSource(
        hu=hu,
        patient_id=np.array([s.patient_id for s in stack.slices]),
        volume_id=np.array([s.series_uid for s in stack.slices]),
        pixel_mm=pixel_mm,
        description=f"{source} ({stack.kind}, {stack.units_note}{note})",
        skipped=stack.skipped,
    )


def _resized(hu: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    if hu.shape[1:] == (size, size):
        return hu, ""
    from skimage.transform import resize

    out = resize(hu, (hu.shape[0], size, size), order=1, anti_aliasing=True, preserve_range=True)
    return out.astype(np.float32), f"; resized {hu.shape[1]}x{hu.shape[2]} -> {size}x{size}"


def _phantom_source(size: int, seed: int, n_phantoms: int, per_phantom: int) -> CTSource:

    voxel_mm = 512.0 / size  # the phantom's own rule: 512 / size fits the whole torso
    depth = max(16, per_phantom)
    take = np.linspace(0, depth - 1, per_phantom).round().astype(int)
    slices = []
    for index in range(n_phantoms):
        mu, _ = torso_phantom(
            (depth, size, size), rng=np.random.default_rng([seed, 2, index]), voxel_mm=voxel_mm
        )
        slices.append(1000.0 * (mu[take] / MU_PER_MM["water"] - 1.0))
    ids = np.repeat([f"phantom-{k:03d}" for k in range(n_phantoms)], per_phantom)
    return CTSource(
        hu=np.concatenate(slices).astype(np.float32),
        patient_id=ids,
        volume_id=ids,
        pixel_mm=np.full(len(ids), voxel_mm),
        description=f"torso phantoms ({n_phantoms} x {per_phantom} axial slices, {voxel_mm} mm)",
    )
