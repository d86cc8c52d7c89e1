"""Filter settings from a noise level alone: how a user without clean data runs NLM and BM3D.

No search and no clean image: the noise standard deviation ``sigma`` (data units, estimated from a
pair of acquisitions or from the single image) sets the strength by a fixed, published rule:

- BM3D: ``sigma_psd = sigma`` (Dabov et al. 2007; the ``bm3d`` package's own parameter is the
  noise sd, for white noise);
- NLM: ``h = 0.8 sigma`` with the known ``sigma`` (scikit-image's ``denoise_nl_means`` guidance for
  fast mode: "h ~ 0.8 sigma"), patches of 5 px searched within 6 px.

Used by ``lowdose fit``'s comparison and by ``evaluate``'s ``blind-sigma`` tuning.
"""

from __future__ import annotations

from lowdose.core.errors import LowdoseInputError

#: filters with a sigma rule
SIGMA_RULE_FILTERS = ("nlm", "bm3d")


def params_from_sigma(filter_name: str, sigma: float) -> dict:
    """Keyword arguments of the filter for noise sd ``sigma`` (data units, > 0).

    >>> params_from_sigma("nlm", 0.05)["h"]
    0.04
    """
    sigma = max(float(sigma), 1e-6)  # a noiseless image still needs a positive strength
    if filter_name == "bm3d":
        return {"sigma": sigma}
    if filter_name == "nlm":
        return {"h": 0.8 * sigma, "patch_size": 5, "patch_distance": 6, "sigma": sigma}
    raise LowdoseInputError(
        f"filter {filter_name!r} has no rule from a noise level; use one of "
        f"{', '.join(SIGMA_RULE_FILTERS)} with the blind-sigma tuning"
    )
