"""BM3D given the noise power spectrum: the strongest classical baseline for correlated noise.

FBP correlates CT noise; BM3D told "white noise of sd sigma" (``blind-sigma``) under-smooths it.
Given the noise spectrum (:mod:`lowdose.physics.noise_spectrum`) BM3D models the correlation.
The tunings, each a row of the results table (filter ``bm3d``):

``blind-psd``
    Clean-free, two acquisitions: the spectrum's **shape** from the pair difference of the
    **training** pairs, ``mean |FFT((y1 - y2) / sqrt(2))|^2`` scaled to unit variance, times each
    test image's **own** noise variance from its pair (``Var(y1 - y2) / 2``: FBP noise varies
    2-3x between slices with the patient's attenuation, its shape does not); one multiplier
    ``psd_scale`` for the dataset chosen by the pair uMSE of the training pairs, each given its
    own variance the same way (serves MSE).
``blind-psd-image``
    As ``blind-psd``, but the multiplier chosen per test image by the uMSE of its own pair (a
    user with two scans of that slice has them).
``single-psd``
    Clean-free, **one** acquisition: the spectrum of each test image estimated from that image
    alone (:func:`lowdose.physics.single_image_noise.single_image_noise_psd`; CT in HU: in the body,
    :func:`~lowdose.physics.single_image_noise.ct_noise_psd`), multiplier 1 (one scan offers no
    clean-free score to tune a strength on).
``oracle-psd``
    Upper bound: the spectrum of the true test noise ``mean |FFT(y1 - clean)|^2`` and the
    multiplier tuned per image against its clean image.

For view subsets (Noise2Inverse files) the input is the mean of K subsets, whose noise spectrum
is that of one subset divided by K; strengths are tuned on subset pairs and carried over.
Every row's ``params`` hold the multiplier, where the spectrum came from, the noise sd it
implies (data units, and ``noise_sd_hu`` for CT in HU) and ``seconds_per_image`` (BM3D on the
test inputs; tuning not included).
"""

from __future__ import annotations

import time

import numpy as np

from lowdose.baselines.filters import denoise_bm3d
from lowdose.baselines.spectrum_tuning import tune_psd_scale_oracle, tune_psd_scale_pairs
from lowdose.baselines.tuning_kinds import PSD_TUNINGS
from lowdose.core.errors import LowdoseInputError
from lowdose.core.metrics import pair_noise_variance_all_pixels
from lowdose.core.progress import Progress, StageCounter
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.dataset import load_split
from lowdose.evaluation.testset import TestSet
from lowdose.physics.noise_spectrum import (
    noise_psd,
    pair_noise_psd,
    psd_noise_variance,
    unit_spectrum,
)
from lowdose.physics.single_image_noise import ct_noise_psd, single_image_noise_psd

#: filters that take a noise power spectrum
PSD_FILTERS = ("bm3d",)


def spectrum_outputs(
    test: TestSet, tuning: str, progress: Progress | None
) -> tuple[np.ndarray, list[dict]]:
    """BM3D outputs on the test inputs under one spectrum tuning, and the params per image.

    Parameters
    ----------
    test : TestSet
    tuning : one of :data:`PSD_TUNINGS`
    progress : Progress, optional
        One stage ``"bm3d <tuning>"``, counted in test images.

    Returns
    -------
    outputs : ndarray (I, H, W) float32
    params : list of dict
        One per test image, JSON-serialisable.
    """
    counter = StageCounter(progress, f"bm3d {tuning}", len(test.inputs))
    counter.advance(0)  # the stage shows while its spectrum and strength are found
    psds, scales, shown = _spectra_and_strengths(test, tuning)
    outputs, params = [], []
    for i, image in enumerate(test.inputs):
        started = time.perf_counter()
        outputs.append(denoise_bm3d(image, psd=psds[i], psd_scale=scales[i]))
        seconds = time.perf_counter() - started
        sd = float(np.sqrt(psd_noise_variance(psds[i]) * scales[i]))
        shown_sd = {"noise_sd": round(sd, 8)}  # data units; CT in HU also in HU
        if test.attrs.is_ct_hu:
            shown_sd["noise_sd_hu"] = round(sd * float(test.scale[i]), 3)
        params.append(
            {**shown, "psd_scale": scales[i], **shown_sd, "seconds_per_image": round(seconds, 4)}
        )
        counter.advance(1)
    return np.stack(outputs).astype(np.float32), params


def _spectra_and_strengths(test: TestSet, tuning: str):
    """Per test image: the spectrum (H, W), the multiplier, and what the params say of them."""
    n = len(test.inputs)
    k = test.view_subsets
    if tuning in ("blind-psd", "blind-psd-image"):
        first, second, inside = _training_pairs(test)
        levels = _test_pair_variances(test, tuning)  # (I,), for the input (a subset / K)
        shape = unit_spectrum(pair_noise_psd(first, second, inside=inside))
        psds = [shape * level for level in levels]
        if tuning == "blind-psd":
            tuned = tune_blind_psd(first, second, shape, inside=inside)
            scales = [tuned.psd_scale] * n
            shown = {
                "psd_from": "train-pair shape x this image's pair variance",
                "tuned_by": "pair uMSE (train)",
                "n_train": tuned.n_images,
            }
        else:
            scales = [_own_pair_scale(test, i, psds[i] * k) for i in range(n)]
            shown = {
                "psd_from": "train-pair shape x this image's pair variance",
                "tuned_by": "pair uMSE (this image's pair)",
            }
        return psds, scales, shown
    if tuning == "single-psd":
        fov = [None] * n if test.fov is None else list(test.fov)
        psds = [
            single_scan_psd(test.inputs[i], test.scale[i], test.attrs, fov[i]) for i in range(n)
        ]
        return psds, [1.0] * n, {"psd_from": "this image alone", "tuned_by": "none (x1)"}
    if tuning == "oracle-psd":
        if test.clean is None:
            raise LowdoseInputError(
                f"{test.path}: oracle-psd needs clean test images, which the file lacks; "
                "use blind-psd or single-psd"
            )
        psd = noise_psd(test.inputs.astype(np.float64) - test.clean)  # the true test noise
        tuned = tune_psd_scale_oracle(test.inputs, test.clean, psd, data_range=test.data_range)
        shown = {"psd_from": "true test noise (oracle)", "tuned_by": "PSNR vs clean (oracle)"}
        return [psd] * n, [t.psd_scale for t in tuned], shown
    raise LowdoseInputError(f"unknown spectrum tuning {tuning!r}; choose from {PSD_TUNINGS}")


def tune_blind_psd(first, second, shape, *, inside=None, max_images: int | None = 8):
    """``blind-psd``'s multiplier from training pairs, clean-free.

    Each pair's spectrum is ``shape`` (the training pairs' :func:`pair_noise_psd` scaled to unit
    variance by :func:`unit_spectrum`: FBP noise varies 2-3x between slices with the patient's
    attenuation, its shape does not) times that pair's own variance ``Var(y1 - y2) / 2``, as
    every test image gets its own; the multiplier minimises their pair uMSE
    (:func:`lowdose.baselines.spectrum_tuning.tune_psd_scale_pairs`).

    Parameters
    ----------
    first, second : ndarray (I, H, W) float
        Two noisy acquisitions of the training images; never clean images, never test images.
    shape : ndarray (H, W) float
        The unit-variance spectrum of these pairs.
    inside : ndarray (I, H, W) bool, optional
        Pixels that carry noise.
    max_images : int or None
        Pairs the search filters (BM3D costs seconds per image).

    Returns
    -------
    SpectrumTuning
    """
    levels = pair_noise_variance_all_pixels(first, second, inside=inside)  # (I,)
    psds = shape[None] * levels[:, None, None]  # (I, H, W)
    return tune_psd_scale_pairs(first, second, psds, inside=inside, max_images=max_images)


def single_scan_psd(image, scale: float, attrs: DatasetAttrs, inside=None) -> np.ndarray:
    """One dataset image's noise spectrum from itself (no second scan, no clean image).

    Parameters
    ----------
    image : ndarray (H, W) float
        On the dataset's scale.
    scale : float
        Its divisor (``scaled = (raw + attrs.scaling_offset) / scale``).
    attrs : DatasetAttrs
        CT in HU is measured in the body (:func:`lowdose.physics.single_image_noise.ct_noise_psd`),
        anything else over ``inside``
        (:func:`~lowdose.physics.single_image_noise.single_image_noise_psd`).
    inside : ndarray (H, W) bool, optional
        The field of view.

    Returns
    -------
    ndarray (H, W) float64
        On the dataset's scale squared, in the convention of :mod:`lowdose.physics.noise_spectrum`.
    """
    if not attrs.is_ct_hu:
        return single_image_noise_psd(image, inside=inside)
    hu = np.asarray(image, np.float64) * float(scale) - attrs.scaling_offset
    return ct_noise_psd(image, hu, inside=inside)


def _training_pairs(test: TestSet):
    """First and second noisy acquisitions of the training split (never clean), and its fov."""
    train = load_split(test.path, "train", with_clean=False)
    if train.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{test.path}: blind-psd needs N >= 2 noisy acquisitions of the training images; "
            "use --tuning single-psd (one scan)"
        )
    inside = None if train.fov is None else np.asarray(train.fov, bool)
    return train.noisy[:, 0], train.noisy[:, 1], inside


def _test_pair_variances(test: TestSet, tuning: str) -> np.ndarray:
    """(I,) each test input's noise variance from its own pair (clean-free; / K for subsets)."""
    if test.noisy.shape[1] < 2:
        raise LowdoseInputError(
            f"{test.path}: {tuning} needs two acquisitions of each test image (the noise level "
            "of each from its pair); use --tuning single-psd (one scan)"
        )
    return test.pair_noise_variance()


def _own_pair_scale(test: TestSet, i: int, psd: np.ndarray) -> float:
    """The multiplier chosen by test image ``i``'s own pair uMSE (a subset pair for K > 1;
    ``psd`` is one acquisition's, i.e. one subset's)."""
    inside = None if test.fov is None else test.fov[i : i + 1]
    pair = test.noisy[i : i + 1, 0], test.noisy[i : i + 1, 1]
    return tune_psd_scale_pairs(*pair, psd, inside=inside, max_images=None).psd_scale
