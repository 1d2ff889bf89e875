import json

import numpy as np
import pytest

from peloton.match.course import Anchor, Course
from peloton.match.stage import StageError, parse_course_text
from tests.conftest import COURSES
from tests.helpers import line_course


def test_straight_course_length_and_calibration_to_anchors():
    # 10 km due east, polyline 2 % short of the official distance
    course = line_course([[0, 0], [5000, 0], [10000, 0]],
                         anchors=[Anchor(*_ll(0), 0.0), Anchor(*_ll(5000), 5.1), Anchor(*_ll(10000), 10.2)])
    assert abs(course.length_m - 10000) < 5
    assert np.allclose(course.km_at([0, 2500, 5000, 10000]), [0.0, 2.55, 5.1, 10.2], atol=1e-3)
    assert course.finish_km is None or course.finish_km == pytest.approx(10.2, abs=1e-3)
    # inverse mapping
    assert np.allclose(course.s_at_km([2.55, 7.65]), [2500, 7500], atol=1.0)


def test_km_before_first_anchor_is_negative_neutral_zone():
    course = line_course([[0, 0], [10000, 0]],
                         anchors=[Anchor(*_ll(2000), 0.0), Anchor(*_ll(10000), 8.0)])
    assert course.km_at([0.0])[0] == pytest.approx(-2.0, abs=1e-3)


def _ll(x, y=0.0):
    from peloton.match.geo import LocalProjection

    lat, lon = LocalProjection(45.0, 6.0).inverse(np.array([x]), np.array([y]))
    return float(lat[0]), float(lon[0])


def test_hairpin_keeps_both_legs_as_candidates():
    # up 1 km, a hairpin, back down 40 m to the east
    course = line_course([[0, 0], [0, 1000], [40, 1000], [40, 0]])
    lat, lon = _ll(20, 500)
    c = course.candidates([lat], [lon], radius_m=200, k=4)
    s = np.sort(c.s[0][np.isfinite(c.s[0])])
    assert len(s) == 2
    assert s[0] == pytest.approx(500, abs=2) and s[1] == pytest.approx(1540, abs=2)
    assert np.allclose(c.off_m[0][:2], 20, atol=0.5)


def test_point_far_from_course_has_no_candidate():
    course = line_course([[0, 0], [1000, 0]])
    lat, lon = _ll(500, 900)
    assert course.candidates([lat], [lon], radius_m=500).count[0] == 0


def test_anchor_on_a_circuit_goes_on_the_right_lap():
    # a 4 km square lap ridden twice; the anchor at km 6 is on lap 2
    lap = [[0, 0], [1000, 0], [1000, 1000], [0, 1000]]
    course = line_course(lap + lap + [[0, 0]],
                         anchors=[Anchor(*_ll(0), 0.0), Anchor(*_ll(1000, 500), 1.5 * 1.01),
                                  Anchor(*_ll(1000, 500), 5.5 * 1.01), Anchor(*_ll(0, 0), 8.0 * 1.01)])
    assert len(course.used_anchors) == 4
    assert course.anchor_s[2] == pytest.approx(5500, abs=5)


def test_stage4_course_is_calibrated_to_official_marks(stage4, stage4_course):
    c = stage4_course
    assert c.finish_km == pytest.approx(181.87)
    assert len(c.used_anchors) >= 60
    # the polyline is ~4 % longer than official here because it starts 8.55 km before km 0
    assert np.all(np.diff(c.anchor_s) > 0) and np.all(np.diff(c.anchor_km) > 0)
    assert c.km_at([0.0])[0] == pytest.approx(-8.55, abs=0.05)
    assert c.km_at([c.length_m])[0] == pytest.approx(181.87, abs=0.2)
    alt = c.altitude_at(c.s_at_km([146.64]))  # Col de Montsegur, 1059 m
    assert alt[0] == pytest.approx(1058, abs=15)
    grad = c.gradient_at(c.s_at_km(np.arange(140, 146, 0.5)))
    assert np.median(grad) > 4  # climbing to the col


def test_course_pickles_without_its_index(stage4_course):
    import pickle

    stage4_course.tree  # built
    back = pickle.loads(pickle.dumps(stage4_course))
    assert back._tree is None and back.length_m == stage4_course.length_m


def test_paris_course_geojson_multilinestring_loads():
    route = parse_course_text((COURSES / "2023" / "21" / "trace_2023_21.geojson").read_text())
    course = Course([p[0] for p in route], [p[1] for p in route], [p[2] for p in route])
    assert 100_000 < course.length_m < 130_000


@pytest.mark.parametrize("text", ['{"type": "Point", "coordinates": [1, 2]}', "not json", "<gpx></gpx>",
                                  json.dumps({"type": "LineString", "coordinates": [[1, 2]]})])
def test_course_file_without_a_line_is_a_clear_error(text):
    with pytest.raises(StageError):
        parse_course_text(text, "bad")


def test_gpx_track_with_elevation():
    gpx = ('<?xml version="1.0"?><gpx xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
           '<trkpt lat="45.0" lon="6.0"><ele>100</ele></trkpt><trkpt lat="45.01" lon="6.0"><ele>150</ele></trkpt>'
           '</trkseg></trk></gpx>')
    route = parse_course_text(gpx)
    assert route == [[45.0, 6.0, 100.0], [45.01, 6.0, 150.0]]


def test_course_needs_two_points():
    with pytest.raises(ValueError):
        Course([45.0], [6.0])
