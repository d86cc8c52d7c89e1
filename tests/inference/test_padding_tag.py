"""``lowdose denoise`` on CT whose PixelPaddingValue names a value the pixels do not hold.

GE slices of the shared TCGA set store -2048 HU outside the reconstruction circle while their tag
declares -2000 stored (-3024 HU). Trusting the tag, the network saw the 1000 HU step: corners came
back between -2515 and -307 HU and a dark ring (down to -1756 HU) ran along the circle's edge.
The padding must be found from the pixels, kept out of the network and written back exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import scipy.ndimage
from pydicom.data import get_testdata_file

from lowdose.inference.files import denoise_files

TCGA = Path(__file__).resolve().parents[3] / "shared/data/ct/tcga-luad"
# -2048 HU outside, tag -2000 stored: SS (0035: a 500 mm field touching the image edge; 0039),
# and US 63536 (0051, 0096)
GE_WRONG_TAG = (
    "ID_0035_AGE_0059_CONTRAST_1_CT.dcm",
    "ID_0039_AGE_0074_CONTRAST_1_CT.dcm",
    "ID_0051_AGE_0063_CONTRAST_0_CT.dcm",
    "ID_0096_AGE_0083_CONTRAST_0_CT.dcm",
)
EDGE_PX = 10  # the band inside the field of view where the ring was
RING_BELOW_HU = -1150.0  # air and its noise stay above it; the ring reached -1700 to -1800 HU


def _check(source: Path, written: Path) -> None:
    """Outside: the input's stored values exactly; the band inside the edge: no dark ring."""
    ds, out = pydicom.dcmread(source), pydicom.dcmread(written)
    stored, back = ds.pixel_array, out.pixel_array
    assert out.PixelPaddingValue == -2000  # the tag is kept as it was, typed like the pixels
    outside = stored == stored.min()  # -2048 HU: -1024 stored
    assert int(stored.min()) * float(ds.RescaleSlope) + float(ds.RescaleIntercept) == -2048
    np.testing.assert_array_equal(back[outside], stored[outside])
    inside = ~outside
    band = inside & ~scipy.ndimage.binary_erosion(inside, iterations=EDGE_PX)
    hu = back * float(out.RescaleSlope) + float(out.RescaleIntercept)
    assert hu[band].min() > RING_BELOW_HU, (source.name, hu[band].min())
    assert not np.array_equal(back[inside], stored[inside])  # it did denoise


def test_a_synthetic_slice_with_a_wrong_padding_tag(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # int16, intercept -1024
    assert ds.PixelPaddingValue == -2000
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128] - 63.5
    body = np.where(np.hypot(yy / 0.8, xx) < 40, 40.0, -1000.0) + rng.normal(0, 20, (128, 128))
    hu = np.where(np.hypot(yy, xx) < 60, body, -2048.0)
    ds.PixelData = np.rint(hu + 1024).astype(np.int16).tobytes()
    source = tmp_path / "in" / "ct.dcm"
    source.parent.mkdir()
    ds.save_as(source)
    (written,) = denoise_files([source.parent], tmp_path / "out", "builtin:ct-sinogram")
    _check(source, written)


@pytest.mark.skipif(not TCGA.is_dir(), reason=f"real CT slices not found at {TCGA}")
def test_real_ge_slices_with_a_wrong_padding_tag(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in GE_WRONG_TAG:
        (folder / name).symlink_to(TCGA / name)
        header = pydicom.dcmread(TCGA / name, stop_before_pixels=True)
        assert int(header.PixelPaddingValue) % (1 << 16) == 63536  # -2000 (SS) or 63536 (US)
    written = denoise_files([folder], tmp_path / "out", "builtin:ct-sinogram")
    assert sorted(p.name for p in written) == sorted(GE_WRONG_TAG)
    for path in written:
        _check(folder / path.name, path)
