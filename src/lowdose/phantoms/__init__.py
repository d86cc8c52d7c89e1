"""Random anthropomorphic torso phantoms: attenuation volumes in 1/mm and organ labels.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.phantoms.materials import MU_PER_MM, Organ
from lowdose.phantoms.torso import torso_phantom

__all__ = ["MU_PER_MM", "Organ", "torso_phantom"]
