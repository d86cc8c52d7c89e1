"""A digital CT quality-assurance phantom: a 200 mm water cylinder with three modules, exact HU.

One axial slice per module, each air (-1000 HU) outside a water cylinder (0 HU) of radius 100 mm:

- ``sensitometry`` (like the Catphan CTP404 module): six rods, 20 mm across, on a 60 mm ring,
  clockwise from the top: air -1000, LDPE -100, polystyrene -35, acrylic +120, Delrin +340,
  Teflon +990 HU. These are round values at (or, for Delrin, just below) the HU ranges of the
  Catphan 500/600 manual. The rods are wider than the CTP404's so that a circular-edge task
  transfer function (AAPM TG-233) has enough edge pixels at 256 x 256.
- ``low_contrast`` (like the Catphan CTP515 supra-slice discs and the MITA CCT189 low-contrast
  phantom): discs 15, 9, 7, 5, 3 and 2 mm across at +15, +10, +5 and +3 HU. Each contrast has
  one quadrant to itself: its discs sit on a 60 mm ring, largest first clockwise, with equal arc
  gaps (about 9 mm), so discs stay well apart and far from the cylinder's edge.
- ``uniform`` (like the Catphan CTP486 module): water only, for noise power spectra.

Insert values are absolute HU: an insert replaces the water under it. Partial volume is area
averaging: every pixel is the mean of ``supersample x supersample`` sub-pixel samples of the
piecewise-constant HU map, so an edge pixel mixes its materials and a pixel whose samples all
fall in one material holds that material's nominal HU exactly.

Coordinates: ``centre_mm = (x, y)`` from the phantom centre, x to the right (columns), y down
(rows): pixel ``(row, col)`` is centred at ``x = (col - c) * pixel_mm, y = (row - c) * pixel_mm``
with ``c = (size - 1) / 2``.

References: The Phantom Laboratory, Catphan 500/600 manual (CTP404, CTP515, CTP486 modules);
AAPM Report TG-233 (Samei et al., Med. Phys. 46(11), 2019); MITA CT IQ phantom CCT189.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from lowdose.core.errors import LowdoseInputError
from lowdose.core.validation import checked_choice, checked_positive

MODULES = ("sensitometry", "low_contrast", "uniform")
AIR_HU = -1000.0
WATER_HU = 0.0
CYLINDER_RADIUS_MM = 100.0
MIN_SIZE = 64
MAX_FINE_SAMPLES = 16384  # samples per axis of a slice's fine grid: 16384^2 float32 is 1 GiB
SENSITOMETRY_HU = {
    "air": -1000.0,
    "ldpe": -100.0,
    "polystyrene": -35.0,
    "acrylic": 120.0,
    "delrin": 340.0,
    "teflon": 990.0,
}
SENSITOMETRY_RING_MM = 60.0
SENSITOMETRY_DIAMETER_MM = 20.0
LOW_CONTRAST_HU = (15, 10, 5, 3)
LOW_CONTRAST_DIAMETERS_MM = (15, 9, 7, 5, 3, 2)
LOW_CONTRAST_RING_MM = 60.0
ATTRS_VERSION = 1


@dataclass(frozen=True)
class Insert:
    """One rod or disc of the phantom: a circle of ``nominal_hu`` (absolute HU) in one module.

    ``centre_mm`` is ``(x, y)`` in mm from the phantom centre, x to the right (columns) and y
    down (rows); ``radius_mm`` is in mm.
    """

    name: str
    module: str
    centre_mm: tuple[float, float]
    radius_mm: float
    nominal_hu: float


@dataclass(frozen=True, eq=False)  # eq=False: comparing the image arrays has no single answer
class QAPhantom:
    """The rendered phantom and its geometry.

    Attributes
    ----------
    hu
        (3, size, size) float32 HU, one slice per module in the order of ``modules``. A
        geometry read back from file attributes has no image: ``hu`` is then an empty
        ``(0, size, size)`` array, which keeps ``size`` (and so :meth:`centre_px`) known.
    pixel_mm
        Pixel side in mm (``field_of_view_mm / size``).
    inserts
        Every insert of every module.
    cylinder_radius_mm, background_hu
        The water cylinder: radius in mm (100) and HU (0).
    """

    hu: np.ndarray
    pixel_mm: float
    inserts: tuple[Insert, ...]
    cylinder_radius_mm: float
    background_hu: float
    modules: tuple[str, ...] = MODULES

    @property
    def size(self) -> int:
        """Pixels per side of each slice."""
        return int(self.hu.shape[-1])

    def centre_px(self, insert: Insert) -> tuple[float, float]:
        """``(row, col)`` float pixel coordinates of the insert's centre (pixel centres at ints)."""
        centre = (self.size - 1) / 2
        x_mm, y_mm = insert.centre_mm
        return centre + y_mm / self.pixel_mm, centre + x_mm / self.pixel_mm

    def radius_px(self, insert: Insert) -> float:
        """The insert's radius in pixels."""
        return insert.radius_mm / self.pixel_mm

    def module_index(self, module: str) -> int:
        """Index of ``module``'s slice in ``hu``; raises LowdoseInputError for an unknown name."""
        return self.modules.index(checked_choice(module, "module", self.modules))

    def inserts_in(self, module: str) -> tuple[Insert, ...]:
        """The inserts of one module, in the order they were laid out."""
        checked_choice(module, "module", self.modules)
        return tuple(insert for insert in self.inserts if insert.module == module)

    def to_attrs(self) -> dict:
        """JSON-serialisable scalars and strings for HDF5 attributes.

        ``"qa_phantom"`` holds the whole geometry as JSON (what :meth:`geometry_from_attrs`
        reads); the ``qa_*`` scalars repeat the main numbers for people browsing the file.
        """
        geometry = {
            "version": ATTRS_VERSION,
            "size": self.size,
            "pixel_mm": float(self.pixel_mm),
            "cylinder_radius_mm": float(self.cylinder_radius_mm),
            "background_hu": float(self.background_hu),
            "modules": list(self.modules),
            "inserts": [asdict(insert) for insert in self.inserts],  # centre_mm: a list
        }
        return {
            "qa_phantom": json.dumps(geometry),
            "qa_size": self.size,
            "qa_pixel_mm": float(self.pixel_mm),
            "qa_cylinder_radius_mm": float(self.cylinder_radius_mm),
            "qa_background_hu": float(self.background_hu),
            "qa_modules": ",".join(self.modules),
        }

    @classmethod
    def geometry_from_attrs(cls, attrs: Mapping) -> QAPhantom:
        """The geometry :meth:`to_attrs` wrote, without the image (``hu`` of shape (0, size, size)).

        ``attrs`` is any mapping, e.g. an h5py ``AttributeManager``. Raises LowdoseInputError
        when the attributes hold no QA phantom geometry.
        """
        fix = "make the file with `lowdose simulate ct --source qa-phantom`"
        text = attrs.get("qa_phantom")
        if text is None:
            raise LowdoseInputError(f"the attributes have no 'qa_phantom' geometry; {fix}")
        if isinstance(text, bytes | np.bytes_):
            text = text.decode("utf-8")
        try:
            geometry = json.loads(str(text))
            if geometry.get("version") != ATTRS_VERSION:
                raise ValueError(f"version {geometry.get('version')!r}, not {ATTRS_VERSION}")
            inserts = tuple(_insert_from_json(item) for item in geometry["inserts"])
            size = int(geometry["size"])
            return cls(
                hu=np.empty((0, size, size), dtype=np.float32),
                pixel_mm=float(geometry["pixel_mm"]),
                inserts=inserts,
                cylinder_radius_mm=float(geometry["cylinder_radius_mm"]),
                background_hu=float(geometry["background_hu"]),
                modules=tuple(str(m) for m in geometry["modules"]),
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise LowdoseInputError(f"attribute 'qa_phantom' is bad ({error}); {fix}") from None


def _insert_from_json(item: Mapping) -> Insert:
    """One insert from its JSON object (what ``dataclasses.asdict`` made of it)."""
    x_mm, y_mm = (float(value) for value in item["centre_mm"])
    radius_mm, nominal_hu = float(item["radius_mm"]), float(item["nominal_hu"])
    return Insert(str(item["name"]), str(item["module"]), (x_mm, y_mm), radius_mm, nominal_hu)


def qa_phantom(
    size: int = 256, *, field_of_view_mm: float = 350.0, supersample: int = 4
) -> QAPhantom:
    """Render the QA phantom: one slice per module, exact HU, area-averaged partial volume.

    Parameters
    ----------
    size
        Pixels per side, >= 64.
    field_of_view_mm
        Side of the square field in mm; it must hold the 200 mm cylinder with at least one
        pixel of air around it. ``pixel_mm = field_of_view_mm / size``.
    supersample
        Sub-pixel samples per axis (1-16) averaged into each pixel.

    Returns
    -------
    QAPhantom
        ``hu`` is (3, size, size) float32 in HU: -1000 (air) to +990 (Teflon).

    Examples
    --------
    >>> phantom = qa_phantom(64)
    >>> phantom.hu.shape, phantom.hu.dtype.name, float(phantom.hu[2, 32, 32])
    ((3, 64, 64), 'float32', 0.0)
    """
    size, field_of_view_mm, supersample = _checked_arguments(size, field_of_view_mm, supersample)
    pixel_mm = field_of_view_mm / size
    inserts = (*_sensitometry_inserts(), *_low_contrast_inserts())
    slices = [
        _render_slice(size, pixel_mm, supersample, [i for i in inserts if i.module == module])
        for module in MODULES
    ]
    return QAPhantom(np.stack(slices), pixel_mm, inserts, CYLINDER_RADIUS_MM, WATER_HU)


def _checked_arguments(size, field_of_view_mm, supersample) -> tuple[int, float, int]:
    """``(size, field_of_view_mm, supersample)`` checked; LowdoseInputError names the bad one."""
    for name, value, low in (("size", size, MIN_SIZE), ("supersample", supersample, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise LowdoseInputError(f"{name}={value!r}: pass an integer >= {low}")
    size, supersample = int(size), int(supersample)
    if supersample > 16 or size * supersample > MAX_FINE_SAMPLES:
        raise LowdoseInputError(
            f"supersample={supersample} at size={size} is too fine to render; pass supersample "
            f"<= {max(1, min(16, MAX_FINE_SAMPLES // size))}"
        )
    field_of_view_mm = checked_positive(field_of_view_mm, "field_of_view_mm")
    # F / 2 - R >= F / size: at least one pixel of air around the cylinder
    least_mm = 2 * CYLINDER_RADIUS_MM / (1 - 2 / size)
    if field_of_view_mm < least_mm:
        raise LowdoseInputError(
            f"field_of_view_mm={field_of_view_mm:g} does not hold the "
            f"{2 * CYLINDER_RADIUS_MM:g} mm water cylinder with a pixel of air around it; "
            f"pass field_of_view_mm >= {math.ceil(least_mm * 10) / 10:g}"
        )
    return size, field_of_view_mm, supersample


def _on_ring(ring_mm: float, angle_rad: float) -> tuple[float, float]:
    """``(x, y)`` mm of the point ``angle_rad`` clockwise from the top of a ring (y points down)."""
    # rounding keeps the JSON clean (0.0, not 7e-15); + 0.0 turns -0.0 into 0.0
    x_mm, y_mm = ring_mm * math.sin(angle_rad), -ring_mm * math.cos(angle_rad)
    return round(x_mm, 9) + 0.0, round(y_mm, 9) + 0.0


def _sensitometry_inserts() -> list[Insert]:
    """The six CTP404-like rods, evenly spaced on their ring clockwise from the top."""
    step_rad, radius_mm = 2 * math.pi / len(SENSITOMETRY_HU), SENSITOMETRY_DIAMETER_MM / 2
    return [
        Insert(name, "sensitometry", _on_ring(SENSITOMETRY_RING_MM, k * step_rad), radius_mm, hu)
        for k, (name, hu) in enumerate(SENSITOMETRY_HU.items())
    ]


def _low_contrast_inserts() -> list[Insert]:
    """One quadrant per contrast; in it the discs, largest first, with equal arc gaps."""
    quadrant_arc_mm = LOW_CONTRAST_RING_MM * math.pi / 2
    # half a gap at each end of a quadrant: the gap between two groups is one full gap
    gap_mm = (quadrant_arc_mm - sum(LOW_CONTRAST_DIAMETERS_MM)) / len(LOW_CONTRAST_DIAMETERS_MM)
    inserts = []
    for group, contrast_hu in enumerate(LOW_CONTRAST_HU):
        arc_mm = gap_mm / 2
        for diameter_mm in LOW_CONTRAST_DIAMETERS_MM:
            arc_mm += diameter_mm / 2
            angle_rad = group * math.pi / 2 + arc_mm / LOW_CONTRAST_RING_MM
            centre_mm = _on_ring(LOW_CONTRAST_RING_MM, angle_rad)
            name, hu = f"lc-{contrast_hu}hu-{diameter_mm}mm", WATER_HU + contrast_hu
            inserts.append(Insert(name, "low_contrast", centre_mm, diameter_mm / 2, hu))
            arc_mm += diameter_mm / 2 + gap_mm
    return inserts


def _render_slice(
    size: int, pixel_mm: float, supersample: int, inserts: list[Insert]
) -> np.ndarray:
    """(size, size) float32 HU: air, the water cylinder, then the inserts, area-averaged."""
    n_fine = size * supersample
    # sub-sample centres in mm from the phantom centre; the same along rows (y) and columns (x)
    fine_mm = ((np.arange(n_fine) + 0.5) / supersample - 0.5 - (size - 1) / 2) * pixel_mm
    fine = np.full((n_fine, n_fine), AIR_HU, dtype=np.float32)
    circles = [((0.0, 0.0), CYLINDER_RADIUS_MM, WATER_HU)]
    circles += [(i.centre_mm, i.radius_mm, i.nominal_hu) for i in inserts]
    for (x_mm, y_mm), radius_mm, hu in circles:
        # paint inside the circle's bounding box only: later circles replace earlier ones
        rows = slice(*np.searchsorted(fine_mm, [y_mm - radius_mm, y_mm + radius_mm]))
        cols = slice(*np.searchsorted(fine_mm, [x_mm - radius_mm, x_mm + radius_mm]))
        dy2 = (fine_mm[rows, None] - y_mm) ** 2
        dx2 = (fine_mm[None, cols] - x_mm) ** 2
        fine[rows, cols][dy2 + dx2 < radius_mm**2] = hu
    blocks = fine.reshape(size, supersample, size, supersample)  # (row, sub-row, col, sub-col)
    mean = blocks.mean(axis=(1, 3), dtype=np.float64)
    # a pixel of one material gets its nominal value exactly, not a rounded mean of copies
    pure = blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3))
    return np.where(pure, blocks[:, 0, :, 0], mean).astype(np.float32)
