"""Noise level and spectrum from ONE CT image: accuracy of the single-image estimator.

:func:`lowdose.physics.single_image_noise.single_image_noise_psd` (and ``single_image_noise_sd``)
against the truth on simulated sinogram-noise CT, and against hand-placed references on real
scans. Printed (nothing asserted):

1. **Simulated** (``lowdose.physics.ct_noise``: Poisson counts per bin and view at a dose
   fraction of ``lowdose.physics.ct_dose``'s full dose, post-log, FBP; one noisy sinogram per
   slice and dose, reconstructed with each kernel): ``--slices`` TCGA-LUAD slices (one per
   patient, every 7th patient) at ``--size``, and ``--phantom-slices`` torso phantoms at
   ``--phantom-size`` (their clean image is truly noise-free; the TCGA slices carry their own
   scanner noise). Per kernel x dose: the true noise sd, ``noisy - clean`` over the region the
   estimator reads (the body: :func:`body_mask_hu` of the noisy slice, opened by the 8 px patch,
   i.e. the body pixels that an 8 px patch inside the body covers); the estimate; their ratio
   (median and range over slices); the shape error (relative L2 distance of the radially
   averaged spectra, each normalised to sum 1, 32 rings to 0.5 cycle/pixel; truth: the
   periodogram of the true noise inside the body); the integral ratio (estimated / true noise
   variance); the white-noise estimator it replaces (Immerkaer,
   ``single_image_noise_sigma``); and the estimate on the clean image alone (what anatomy and
   the source's own noise read as noise: the floor).
2. **Real** scans: the pancreas-ct-philips series (3 mm contiguous slices, 1.07 mm pixels): the
   reference is the sd of the difference of adjacent slices in a uniform ROI, after removing a
   plane, over sqrt(2) (slices' noise independent; anatomy changes little over 3 mm inside an
   organ); the TCGA-LUAD single slices: the sd in a uniform ROI after removing a plane (an upper
   bound: texture counts too). ROIs are (rows, columns) in the 512^2 slices.

Run from the repository root (minutes on 2 cores, most of it the 384^2 phantoms; not timed)::

    .venv/bin/python benchmarks/noise_estimation.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from lowdose.io.images import read_ct
from lowdose.physics.ct_dose import photons_per_ray_for_dose
from lowdose.physics.ct_noise import angles_for, line_integrals, noisy_sinograms, reconstruct_hu
from lowdose.physics.field_of_view import field_of_view_mask
from lowdose.physics.noise_estimation import single_image_noise_sigma
from lowdose.physics.noise_spectrum import psd_noise_variance
from lowdose.physics.radon import FBP_FILTERS
from lowdose.physics.single_image_noise import (
    PATCH_PX,
    body_mask_hu,
    ct_noise_sd_hu,
    single_image_noise_psd,
    single_image_noise_sd,
)
from lowdose.simulate.ct_source import load_ct_source

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ct"
# (name, first slice, last slice, rows, columns): uniform regions of the pancreas series
PANCREAS_ROIS = (
    ("liver", 94, 99, (196, 228), (190, 222)),
    ("right psoas", 26, 35, (256, 276), (296, 312)),
    ("paraspinal muscle", 26, 35, (316, 340), (208, 232)),
)
# (file, rows, columns): uniform soft tissue in single TCGA-LUAD slices
TCGA_ROIS = (
    ("ID_0046_AGE_0072_CONTRAST_1_CT.dcm", (110, 142), (260, 292)),
    ("ID_0003_AGE_0075_CONTRAST_1_CT.dcm", (150, 182), (210, 242)),
    ("ID_0075_AGE_0080_CONTRAST_0_CT.dcm", (208, 232), (238, 262)),
)


def simulate(source, n_slices: int, size: int, doses, seed: int) -> dict:
    """Clean and noisy FBPs in HU: ``{kernel: clean (I, S, S)}``, ``{(kernel, dose): noisy}``."""
    if source == "phantom":
        src = load_ct_source(
            "phantom", size=size, seed=seed, n_phantoms=n_slices, slices_per_phantom=1
        )
        pick = np.arange(n_slices)
    else:
        src = load_ct_source(source, size=size)
        _, first = np.unique(src.patient_id, return_index=True)
        pick = np.sort(first)[::7][:n_slices]  # different patients, spread over the folder
    hu, pixel_mm = src.hu[pick], src.pixel_mm[pick]
    angles = angles_for(size)
    sinograms = line_integrals(hu, pixel_mm, angles)
    recon = {"size": size, "pixel_mm": pixel_mm, "angles_deg": angles}
    clean = {k: reconstruct_hu(sinograms, filter_name=k, **recon) for k in FBP_FILTERS}
    noisy = {}
    for index, dose in enumerate(doses):
        i0 = photons_per_ray_for_dose(dose, bin_mm=float(pixel_mm.mean()), views=len(angles))
        rngs = [np.random.default_rng([seed, index, int(i)]) for i in pick]
        counts = noisy_sinograms(sinograms, i0, rngs=rngs)
        for kernel in FBP_FILTERS:
            noisy[kernel, dose] = reconstruct_hu(counts, filter_name=kernel, **recon)
    return {"clean": clean, "noisy": noisy, "names": [str(p) for p in src.patient_id[pick]]}


def radial_profile(psd: np.ndarray, rings: int = 32) -> np.ndarray:
    """Mean of an (H, W) spectrum over rings of radial frequency to 0.5, normalised to sum 1."""
    fy, fx = np.meshgrid(np.fft.fftfreq(psd.shape[0]), np.fft.fftfreq(psd.shape[1]), indexing="ij")
    ring = np.minimum((np.hypot(fy, fx) / 0.5 * rings).astype(int), rings - 1)
    profile = np.bincount(ring.ravel(), psd.ravel()) / np.bincount(ring.ravel())
    return profile / profile.sum()


def slice_scores(noisy: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """True sd, estimate, shape error and the old estimate for one (H, W) slice in HU."""
    body = body_mask_hu(noisy)
    region = ndimage.binary_opening(body, structure=np.ones((PATCH_PX, PATCH_PX), bool))
    noise = (noisy - clean).astype(np.float64)
    inside = np.where(body, noise - noise[body].mean(), 0.0)
    truth = np.abs(np.fft.fft2(inside)) ** 2 / body.mean()  # the noise's periodogram in the body
    psd = single_image_noise_psd(noisy, inside=body)
    a, b = radial_profile(psd), radial_profile(truth)
    return {
        "true": float(noise[region].std()),
        "estimate": float(np.sqrt(psd_noise_variance(psd))),
        "shape": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
        "immerkaer": single_image_noise_sigma(noisy),
    }


def simulated_table(title: str, data: dict, doses) -> None:
    print(f"\n{title} (slices: {', '.join(data['names'])})")
    print(
        "| kernel | dose | true sd HU | estimate HU | ratio median [range] | shape error | "
        "integral ratio | Immerkaer HU | clean-only estimate HU |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for kernel in FBP_FILTERS:
        clean = data["clean"][kernel]
        floor = np.mean([single_image_noise_sd(c, inside=body_mask_hu(c)) for c in clean])
        for dose in doses:
            rows = [
                slice_scores(n, c) for n, c in zip(data["noisy"][kernel, dose], clean, strict=True)
            ]
            ratio = np.array([r["estimate"] / r["true"] for r in rows])
            print(
                f"| {kernel} | {dose:g} | {np.mean([r['true'] for r in rows]):.1f} | "
                f"{np.mean([r['estimate'] for r in rows]):.1f} | {np.median(ratio):.2f} "
                f"[{ratio.min():.2f}-{ratio.max():.2f}] | "
                f"{np.median([r['shape'] for r in rows]):.2f} | {np.median(ratio**2):.2f} | "
                f"{np.mean([r['immerkaer'] for r in rows]):.1f} | {floor:.1f} |"
            )


def plane_sd(values: np.ndarray) -> float:
    """Sd of a 2-D ROI after removing its least-squares plane (3 degrees of freedom)."""
    rows, cols = np.mgrid[0 : values.shape[0], 0 : values.shape[1]]
    design = np.stack([np.ones(values.size), rows.ravel(), cols.ravel()], axis=1)
    flat = values.ravel().astype(np.float64)
    residual = flat - design @ np.linalg.lstsq(design, flat, rcond=None)[0]
    return float(np.sqrt(np.sum(residual**2) / (flat.size - 3)))


def estimate_hu(hu: np.ndarray) -> float:
    """The estimator as the validity guard runs it: the body inside the field of view."""
    return ct_noise_sd_hu(hu, inside=field_of_view_mask(hu))


def real_tables(shared: Path) -> None:
    print("\nReal scans: pancreas-ct-philips (Philips, kernel B, iDose 3; 3 mm slices)")
    print(
        "| ROI (rows, columns), slices | reference: adjacent-slice difference / sqrt 2, HU | "
        "estimate (body) HU | ratio | Immerkaer HU |"
    )
    print("|---|---:|---:|---:|---:|")
    hu = read_ct(shared / "pancreas-ct-philips", skip_bad=True).hu  # skips Citations, LICENSE
    for name, first, last, (r0, r1), (c0, c1) in PANCREAS_ROIS:
        ks = range(first, last + 1)
        reference = np.mean(
            [plane_sd(hu[k, r0:r1, c0:c1] - hu[k + 1, r0:r1, c0:c1]) for k in ks]
        ) / np.sqrt(2.0)
        estimate = np.mean([estimate_hu(hu[k]) for k in ks])
        old = np.mean([single_image_noise_sigma(hu[k]) for k in ks])
        print(
            f"| {name} [{r0}:{r1}, {c0}:{c1}], {first}-{last} | {reference:.1f} | "
            f"{estimate:.1f} | {estimate / reference:.2f} | {old:.1f} |"
        )
    print("\nReal scans: TCGA-LUAD single slices")
    print(
        "| file, ROI (rows, columns) | reference: ROI sd after a plane, HU (upper bound) | "
        "estimate (body) HU | ratio | Immerkaer HU |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, (r0, r1), (c0, c1) in TCGA_ROIS:
        image = read_ct(shared / "tcga-luad" / name).hu[0]
        reference, estimate = plane_sd(image[r0:r1, c0:c1]), estimate_hu(image)
        print(
            f"| {name} [{r0}:{r1}, {c0}:{c1}] | {reference:.1f} | {estimate:.1f} | "
            f"{estimate / reference:.2f} | {single_image_noise_sigma(image):.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data/ct folder")
    parser.add_argument("--slices", type=int, default=6, help="TCGA slices (one per patient)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--phantom-slices", type=int, default=3, help="0: no phantom rows")
    parser.add_argument("--phantom-size", type=int, default=384)
    parser.add_argument("--doses", default="1,0.25,0.1", help="dose fractions of full dose")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    doses = [float(d) for d in args.doses.split(",")]
    tcga = simulate(args.shared / "tcga-luad", args.slices, args.size, doses, args.seed)
    simulated_table(f"Simulated: TCGA-LUAD at {args.size}^2, seed {args.seed}", tcga, doses)
    if args.phantom_slices:
        phantom = simulate("phantom", args.phantom_slices, args.phantom_size, doses, args.seed)
        simulated_table(
            f"Simulated: torso phantoms at {args.phantom_size}^2, seed {args.seed}", phantom, doses
        )
    real_tables(args.shared)


if __name__ == "__main__":
    main()
