"""Training: one LightningModule for every mode, pairs, the data module, run folders.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.core.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "resume_config": "run",
        "train": "run",
        "TrainConfig": "config",
        "load_train_config": "config",
        "make_train_config": "config",
        "PairDataset": "pairs",
    },
)
