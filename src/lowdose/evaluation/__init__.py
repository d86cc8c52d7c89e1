"""Methods over test sets and noise levels -> tidy results; clean-free pair scores; the sweep.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.core.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "evaluate": "evaluate",
        "score_pairs": "pair_scores",
        "run_sweep": "sweep",
        "write_sweep": "sweep",
        "measure_image_quality": "phantom_iq",
    },
)
