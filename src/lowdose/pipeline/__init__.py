"""Experiment YAMLs and the staged, cached `reproduce`.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.core.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "load_experiment": "config",
        "run_experiment": "reproduce",
    },
)
