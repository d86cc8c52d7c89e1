"""Phantoms: random anthropomorphic torsos (attenuation in 1/mm, organ labels) and a CT QA phantom.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.phantoms.materials import MU_PER_MM, Organ
from lowdose.phantoms.qa_phantom import QAPhantom, qa_phantom
from lowdose.phantoms.torso import torso_phantom

__all__ = ["MU_PER_MM", "Organ", "QAPhantom", "qa_phantom", "torso_phantom"]
