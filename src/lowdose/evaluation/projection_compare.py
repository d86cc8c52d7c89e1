"""The comparison ``lowdose fit --domain projections`` runs: denoised projections, reconstructed.

No clean image exists. Each scored detector row's sinogram is cut into its two interleaved view
halves (:func:`lowdose.owndata.projection_domain.view_halves`); every method makes an estimate
from the even half alone and is scored against the odd half's noisy FBP
(:func:`lowdose.evaluation.fit_scores.score_method`: flat-region noise, residual whiteness,
pair PSNR, uPSNR where defined, edge width):

* ``noisy``: FBP of the even views;
* ``network-projections``: FBP of the even views denoised by the network (it saw only the even
  views' noise, so its error is independent of the odd half's);
* ``nlm-blind`` and ``bm3d-blind``: the filters of :mod:`lowdose.evaluation.fit_compare` on the
  even half's FBP, ``sigma`` from the pair of halves (``sqrt(Var(A - B) / 2)``).

The halves differ by their complementary undersampling streaks as well as by noise, so the pair
PSNR, not the uPSNR, is the score that ranks (``fit_scores``). Scored rows: up to ``max_rows``
evenly spaced among the dataset's ``test_rows`` (never trained on); with none (one sinogram,
split into tiles) among all rows, which the self-supervised network then trained on, and the
comparison says so. The reconstruction scale is FBP line integral per pixel over the largest
smoothed value of the scored rows' mean reconstruction (data_range 1), as in the
reconstruction route's datasets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowdose.baselines.filters import bm3d_installed, denoise_bm3d, denoise_nlm
from lowdose.baselines.sigma_rule import params_from_sigma
from lowdose.core.metrics import pair_noise_variance_all_pixels
from lowdose.core.progress import Progress, StageCounter
from lowdose.data.dataset import read_info
from lowdose.data.scaling import estimate_clean_max
from lowdose.evaluation.fit_compare import FitComparison
from lowdose.evaluation.fit_scores import preferred_method, score_method
from lowdose.inference.predict import denoise
from lowdose.inference.view_split import reconstruction_size
from lowdose.models.checkpoint import load_model
from lowdose.owndata.projection_domain import view_halves
from lowdose.owndata.projection_scan import ScanReading
from lowdose.physics.radon import fbp_2d

NETWORK = "network-projections"


def scored_rows(test_rows: str, n_rows: Sequence[int], max_rows: int) -> tuple[list, bool]:
    """``([(scan, row), ...], held_out)``: up to ``max_rows`` evenly spaced rows to score.

    >>> scored_rows("0:7,0:8,0:9", [10], 2)
    ([(0, 7), (0, 9)], True)
    >>> scored_rows("none", [3], 8)
    ([(0, 0), (0, 1), (0, 2)], False)
    """
    held_out = test_rows not in ("", "none")
    if held_out:
        rows = [tuple(int(v) for v in item.split(":")) for item in test_rows.split(",")]
    else:
        rows = [(scan, row) for scan, n in enumerate(n_rows) for row in range(n)]
    if len(rows) > max_rows:
        rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, max_rows).round()]
    return rows, held_out


def compare_projection_domain(
    data: str | os.PathLike,
    checkpoint: str | os.PathLike,
    paths: Sequence[Path],
    *,
    reading: ScanReading = ScanReading(),
    max_rows: int = 8,
    progress: Progress | None = None,
) -> FitComparison:
    """Score the projection-domain network against blind filters (see the module docstring).

    Parameters
    ----------
    data : path
        The projection-halves dataset (its ``test_rows`` attribute).
    checkpoint : path
        The network trained on it.
    paths : sequence of Path
        The scans, in the dataset's order.
    reading : ScanReading
        How the scans are read and reconstructed: the dataset's own.
    max_rows : int
        BM3D costs seconds per slice on a CPU: at most this many rows.
    """
    model, meta = load_model(checkpoint)
    scans = [reading.prepare(p) for p in paths]
    test_rows = str(read_info(data).attrs.extra.get("test_rows", "none"))
    rows, held_out = scored_rows(test_rows, [len(s.sinograms) for s in scans], max_rows)
    with_bm3d = bm3d_installed()
    counter = StageCounter(progress, "compare", len(rows) * (3 if with_bm3d else 2))
    halves = {"noisy": [], "second": [], NETWORK: []}
    for scan_number, row in rows:
        scan = scans[scan_number]
        even, odd = view_halves(scan.sinograms[row : row + 1])
        size = reconstruction_size(scan)

        def fbp(sinogram, views, size=size, scan=scan):
            angles = scan.angles_deg[views]
            return fbp_2d(sinogram, angles, output_size=size, backend=scan.backend)[0]

        n_angles = len(scan.angles_deg)
        even_views, odd_views = np.arange(0, n_angles, 2), np.arange(1, n_angles, 2)
        halves["noisy"].append(fbp(even, even_views))
        halves["second"].append(fbp(odd, odd_views))
        denoised = denoise(model, even[0], scaling=meta.scaling)[None]
        halves[NETWORK].append(fbp(denoised, even_views))
        counter.advance()
    stacked = {name: np.stack(images) for name, images in halves.items()}  # (R, H, W) each
    divisor = float(np.max(estimate_clean_max((stacked["noisy"] + stacked["second"]) / 2)))
    images = {name: (stack / divisor).astype(np.float32) for name, stack in stacked.items()}
    noisy, second = images["noisy"], images.pop("second")
    sigma = np.maximum(np.sqrt(pair_noise_variance_all_pixels(noisy, second)), 1e-6)
    nlm, bm3d = np.empty_like(noisy), np.empty_like(noisy)
    for k, (image, s) in enumerate(zip(noisy, sigma, strict=True)):
        nlm[k] = denoise_nlm(image, **params_from_sigma("nlm", s))
        counter.advance()
        if with_bm3d:
            bm3d[k] = denoise_bm3d(image, **params_from_sigma("bm3d", s))
            counter.advance()
    images["nlm-blind"] = nlm
    if with_bm3d:
        images["bm3d-blind"] = bm3d
    scores = [score_method(name, noisy, images[name], second=second) for name in images]
    preferred, reason = preferred_method(scores, view_split=True)
    where = "held-out test rows" if held_out else "rows the network also trained on (one sinogram)"
    return FitComparison(
        scores=scores,
        preferred=preferred,
        reason=reason,
        sigma=sigma,
        sigma_source="pair",
        psd_source="not run in the projection domain comparison",
        images=images,
        object_id=np.array([f"{scans[s].source.stem}[{r}]" for s, r in rows]),
        scored_on=f"{len(rows)} {where}: even views against the odd views' FBP",
    )
