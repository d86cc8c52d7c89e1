"""The noise-correlation check under its former path, for :mod:`lowdose.training.noise_check`.

Its home is :mod:`lowdose.core.noise_correlation` (the dataset builders of :mod:`lowdose.data`
record it, so it sits below them); this re-export goes when ``training.noise_check`` imports
from there.
"""

from lowdose.core.noise_correlation import NoiseCorrelation, measure_noise_correlation

__all__ = ["NoiseCorrelation", "measure_noise_correlation"]
