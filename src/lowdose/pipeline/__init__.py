"""Experiment YAMLs and the staged, cached `reproduce`.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.core.faces import lazy_face

__getattr__, __all__ = lazy_face(
    __name__,
    {
        "load_experiment": "config",
        "run_experiment": "reproduce",
    },
)
