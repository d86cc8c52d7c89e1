"""lowdose: Noise2Noise / Noise2Clean denoisers for X-ray projections and CT images.

The library face (:mod:`lowdose.pipeline.library`): ``lowdose.denoise(array_or_path, ...)``,
``lowdose.fit(inputs, out=...)`` and ``lowdose.load_model(name_or_path)``. They are resolved on
first use, so ``import lowdose`` does not import torch.
"""

__version__ = "0.1.0"  # before the face: lowdose.core reads it while the face is built

from lowdose.core.lazy_exports import lazy_exports  # noqa: E402

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "denoise": "pipeline.library",
        "fit": "pipeline.library",
        "load_model": "models.checkpoint",
    },
)
