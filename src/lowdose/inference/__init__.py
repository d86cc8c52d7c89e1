"""Seam-free tiled prediction and file-in / file-out denoising.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.core.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "denoise": "predict",
        "predict": "predict",
        "denoise_files": "files",
    },
)
