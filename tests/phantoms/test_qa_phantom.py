"""The QA phantom: exact HU inside, partial volume at edges, geometry that matches the image."""

import itertools
import json
import re

import h5py
import numpy as np
import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.phantoms.qa_phantom import MODULES, Insert, QAPhantom, qa_phantom

# sub-samples of a pixel lie within 0.375 * sqrt(2) = 0.53 px of its centre (supersample 4)
SAFE_PX = 0.75


@pytest.fixture(scope="module", params=[256, 300])
def phantom(request):
    return qa_phantom(request.param)


def _distance_px(phantom: QAPhantom, centre_rc: tuple[float, float]) -> np.ndarray:
    """(size, size) distance of every pixel centre from ``centre_rc`` in pixels."""
    rows, cols = np.mgrid[: phantom.size, : phantom.size]
    return np.hypot(rows - centre_rc[0], cols - centre_rc[1])


def _cylinder_distance_px(phantom: QAPhantom) -> np.ndarray:
    centre = (phantom.size - 1) / 2
    return _distance_px(phantom, (centre, centre))


@pytest.mark.parametrize("size", [64, 256, 300])
def test_qa_phantom_shape_dtype_and_value_range(size):
    phantom = qa_phantom(size)
    assert phantom.hu.shape == (3, size, size) and phantom.hu.dtype == np.float32
    assert phantom.size == size and phantom.pixel_mm == pytest.approx(350.0 / size)
    assert phantom.modules == MODULES and phantom.background_hu == 0.0
    assert phantom.cylinder_radius_mm == pytest.approx(100.0)
    assert phantom.hu.min() == -1000.0 and phantom.hu[0].max() == 990.0
    assert phantom.hu[1].max() <= 15.0 and phantom.hu[1].min() == -1000.0
    assert np.array_equal(phantom.hu, qa_phantom(size).hu)  # deterministic


def test_qa_insert_interiors_hold_the_nominal_hu_exactly(phantom):
    for insert in phantom.inserts:
        image = phantom.hu[phantom.module_index(insert.module)]
        radius = phantom.radius_px(insert)
        inside = _distance_px(phantom, phantom.centre_px(insert)) <= radius - SAFE_PX
        if radius >= 1.5:  # every disc of 3 mm and wider has whole pixels inside it
            assert inside.sum() >= 1, insert.name
        np.testing.assert_array_equal(image[inside], np.float32(insert.nominal_hu), insert.name)


def test_qa_water_and_air_are_exact_away_from_every_edge(phantom):
    cylinder = _cylinder_distance_px(phantom)
    radius = phantom.cylinder_radius_mm / phantom.pixel_mm
    for module in MODULES:
        water = cylinder <= radius - SAFE_PX
        for insert in phantom.inserts_in(module):
            near = _distance_px(phantom, phantom.centre_px(insert))
            water &= near >= phantom.radius_px(insert) + SAFE_PX
        image = phantom.hu[phantom.module_index(module)]
        assert water.sum() > 0.8 * np.pi * radius**2
        assert np.all(image[water] == 0.0), module
        assert np.all(image[cylinder >= radius + SAFE_PX] == -1000.0), module


def test_qa_edge_pixels_mix_their_two_materials(phantom):
    cylinder_radius = phantom.cylinder_radius_mm / phantom.pixel_mm
    edges = [(phantom.hu[2], _cylinder_distance_px(phantom), cylinder_radius, -1000.0, 0.0)]
    for insert in phantom.inserts:
        if phantom.radius_px(insert) >= 2:  # curvature small against the 4 x 4 sub-samples
            image = phantom.hu[phantom.module_index(insert.module)]
            distance = _distance_px(phantom, phantom.centre_px(insert))
            edges.append((image, distance, phantom.radius_px(insert), 0.0, insert.nominal_hu))
    assert len(edges) >= 19  # the cylinder, 6 rods and the discs of 7 mm and wider
    for image, distance, radius, outside_hu, inside_hu in edges:
        # the 4 x 4 sub-samples reach >= 0.375 px from the pixel centre in every direction, so a
        # pixel centred within 0.25 px of the edge has sub-samples on both sides of it
        on_edge = np.abs(distance - radius) < 0.25
        assert on_edge.sum() >= 4
        low, high = sorted((outside_hu, inside_hu))
        assert np.all((image[on_edge] > low) & (image[on_edge] < high))


def test_qa_supersampling_converges_to_the_area_of_each_circle():
    coarse, fine = qa_phantom(64, supersample=4), qa_phantom(64, supersample=16)
    assert np.abs(coarse.hu - fine.hu).max() < 1000 / 16 + 1e-3  # one sample row of a pixel
    # fraction of water per pixel sums to the cylinder's area in pixels
    water_px = (fine.hu[2] + 1000.0).sum() / 1000.0
    area_px = np.pi * (fine.cylinder_radius_mm / fine.pixel_mm) ** 2
    assert water_px == pytest.approx(area_px, rel=1e-3)
    # one sample per pixel: no partial volume at all
    assert set(np.unique(qa_phantom(64, supersample=1).hu[2])) == {-1000.0, 0.0}


def test_qa_layout_keeps_inserts_apart_and_inside_the_cylinder():
    phantom = qa_phantom(64)
    for module in MODULES:
        inserts = phantom.inserts_in(module)
        for a, b in itertools.combinations(inserts, 2):
            gap_mm = np.hypot(*np.subtract(a.centre_mm, b.centre_mm)) - a.radius_mm - b.radius_mm
            assert gap_mm >= 3.0, (a.name, b.name)
        for insert in inserts:
            margin_mm = phantom.cylinder_radius_mm - np.hypot(*insert.centre_mm) - insert.radius_mm
            assert margin_mm >= 3.0, insert.name
    names = [insert.name for insert in phantom.inserts]
    assert len(set(names)) == len(names)
    sensitometry = {i.name: i.nominal_hu for i in phantom.inserts_in("sensitometry")}
    assert sensitometry == {
        "air": -1000.0,
        "ldpe": -100.0,
        "polystyrene": -35.0,
        "acrylic": 120.0,
        "delrin": 340.0,
        "teflon": 990.0,
    }
    assert {i.radius_mm for i in phantom.inserts_in("sensitometry")} == {10.0}
    discs = phantom.inserts_in("low_contrast")
    found = {(i.nominal_hu, 2 * i.radius_mm) for i in discs}
    assert found == set(itertools.product([15.0, 10.0, 5.0, 3.0], [15.0, 9.0, 7.0, 5.0, 3.0, 2.0]))
    for disc in discs:
        contrast, diameter = re.fullmatch(r"lc-(\d+)hu-(\d+)mm", disc.name).groups()
        assert (float(contrast), float(diameter)) == (disc.nominal_hu, 2 * disc.radius_mm)
    assert phantom.inserts_in("uniform") == ()


@pytest.mark.parametrize("size", [256, 257])
def test_qa_centre_and_radius_px_match_the_rendered_discs(size):
    phantom = qa_phantom(size)
    checked = 0
    for insert in phantom.inserts:
        radius = phantom.radius_px(insert)
        if radius < 1.5:
            continue
        centre = phantom.centre_px(insert)
        window = _distance_px(phantom, centre) < radius + 2
        # fraction of each pixel covered by the insert (water around it is 0 HU)
        fraction = phantom.hu[phantom.module_index(insert.module)] / np.float32(insert.nominal_hu)
        fraction = np.where(window, fraction, 0.0)
        rows, cols = np.nonzero(fraction > 0.5)  # thresholded disc
        assert abs(rows.mean() - centre[0]) < 0.25 and abs(cols.mean() - centre[1]) < 0.25
        area_radius = np.sqrt(fraction.sum() / np.pi)
        assert area_radius == pytest.approx(radius, rel=0.02), insert.name
        checked += 1
    assert checked >= 20


def test_qa_geometry_round_trips_through_attrs_and_hdf5(tmp_path):
    phantom = qa_phantom(300, field_of_view_mm=320.0)
    attrs = phantom.to_attrs()
    json.dumps(attrs)  # scalars and strings only
    assert all(isinstance(v, str | int | float) for v in attrs.values())
    with h5py.File(tmp_path / "qa.h5", "w") as file:
        file.attrs.update(attrs)
    with h5py.File(tmp_path / "qa.h5", "r") as file:
        read = [QAPhantom.geometry_from_attrs(file.attrs), QAPhantom.geometry_from_attrs(attrs)]
    for geometry in read:
        assert geometry.inserts == phantom.inserts
        assert geometry.pixel_mm == phantom.pixel_mm and geometry.size == 300
        assert geometry.cylinder_radius_mm == phantom.cylinder_radius_mm
        assert geometry.background_hu == phantom.background_hu
        assert geometry.modules == phantom.modules and geometry.hu.size == 0
        assert [geometry.centre_px(i) for i in geometry.inserts] == [
            phantom.centre_px(i) for i in phantom.inserts
        ]
    as_bytes = {"qa_phantom": attrs["qa_phantom"].encode()}
    assert QAPhantom.geometry_from_attrs(as_bytes).inserts == phantom.inserts


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"qa_phantom": "not json"},
        {"qa_phantom": json.dumps({"version": 99})},
        {"qa_phantom": json.dumps({"version": 1, "inserts": [{"name": "air"}]})},
    ],
)
def test_qa_geometry_from_foreign_attrs_raises(attrs):
    with pytest.raises(LowdoseInputError, match="qa_phantom") as caught:
        QAPhantom.geometry_from_attrs(attrs)
    assert "\n" not in str(caught.value)


def test_qa_module_index_and_unknown_module():
    phantom = qa_phantom(64)
    assert [phantom.module_index(m) for m in MODULES] == [0, 1, 2]
    insert = Insert("x", "sensitometry", (0.0, 0.0), 1.0, 0.0)
    assert phantom.centre_px(insert) == (31.5, 31.5)
    with pytest.raises(LowdoseInputError, match="module"):
        phantom.module_index("resolution")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"size": 63}, "size"),
        ({"size": 100.5}, "size"),
        ({"size": True}, "size"),
        ({"size": "256"}, "size"),
        ({"field_of_view_mm": float("nan")}, "field_of_view_mm"),
        ({"field_of_view_mm": float("inf")}, "field_of_view_mm"),
        ({"field_of_view_mm": -350.0}, "field_of_view_mm"),
        ({"field_of_view_mm": 200.0}, "field_of_view_mm"),  # no air around the cylinder
        ({"field_of_view_mm": 150.0}, "field_of_view_mm"),
        ({"supersample": 0}, "supersample"),
        ({"supersample": 17}, "supersample"),
    ],
)
def test_qa_bad_arguments_raise_one_line_naming_the_argument(kwargs, named):
    with pytest.raises(LowdoseInputError, match=named) as caught:
        qa_phantom(**kwargs)
    assert "\n" not in str(caught.value)


def test_qa_smallest_field_that_fits_works():
    phantom = qa_phantom(64, field_of_view_mm=206.5)  # 200 mm / (1 - 2 / 64) = 206.45 mm
    assert np.all(phantom.hu[:, 0, :] == -1000.0) and np.all(phantom.hu[:, :, -1] == -1000.0)
