"""Dataset builders: X-ray projections of torso phantoms, CT slices with AWGN or sinogram noise.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.simulate.ct import build_ct_dataset
from lowdose.simulate.xray import build_xray_dataset

__all__ = ["build_ct_dataset", "build_xray_dataset"]
