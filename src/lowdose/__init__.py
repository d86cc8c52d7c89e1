"""lowdose: Noise2Noise / Noise2Clean denoisers for X-ray projections and CT images."""

__version__ = "0.1.0"
