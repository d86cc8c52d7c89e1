"""Users' files in physical units: DICOM, NIfTI, TIFF, PNG, npy in and back out; sinograms.

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.io.images import CTStack, read_ct, read_image_stack, write_like
from lowdose.io.sinogram import read_sinogram_stack

__all__ = ["CTStack", "read_ct", "read_image_stack", "read_sinogram_stack", "write_like"]
