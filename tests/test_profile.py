"""The course profile: wind from the timetable's weather, climbs found on the elevation, crosswind stretches."""
import numpy as np
import pytest

from peloton.match.profile import (RIDER_HEIGHT_WIND, air_density, beaufort_to_ms, build_profile, compass_to_deg,
                             crosswind_sections, find_climbs)
from tests.helpers import course_with_elevation, weather


@pytest.mark.parametrize("text, deg", [("N", 0.0), ("NNE", 22.5), ("E", 90.0), ("SSO", 202.5), ("ONO", 292.5),
                                       ("nw", 315.0), ("O", 270.0), ("W", 270.0)])
def test_compass_points_in_french_and_english(text, deg):
    assert compass_to_deg(text) == deg


@pytest.mark.parametrize("text", ["", None, "north", "X"])
def test_unreadable_compass_points_are_none(text):
    assert compass_to_deg(text) is None


def test_beaufort_forces_fall_in_their_wmo_ranges():
    ranges = {1: (0.3, 1.5), 2: (1.6, 3.3), 3: (3.4, 5.4), 4: (5.5, 7.9), 5: (8.0, 10.7), 8: (17.2, 20.7)}
    for force, (lo, hi) in ranges.items():
        assert lo <= float(beaufort_to_ms(force)) <= hi


def test_air_density_at_sea_level_and_on_a_col():
    assert air_density(15.0, 0.0) == pytest.approx(1.225, abs=0.002)
    assert air_density(15.0, 2000.0) < 0.81 * air_density(15.0, 0.0) + 0.02  # about 20 % thinner up there


def test_headwind_and_crosswind_along_the_road():
    flat = lambda s: np.full(s.size, 100.0)  # noqa: E731
    east = build_profile(course_with_elevation(10_000, 90.0, flat), [weather(4, "O")])  # riding east, wind from west
    wind = float(beaufort_to_ms(4)) * RIDER_HEIGHT_WIND
    assert np.allclose(east.headwind_ms, -wind, atol=0.05)  # a tailwind
    assert np.allclose(east.crosswind_ms, 0.0, atol=0.05)
    north = build_profile(course_with_elevation(10_000, 0.0, flat), [weather(4, "E")])  # riding north, wind from east
    assert np.allclose(north.crosswind_ms, wind, atol=0.05)  # from the right
    assert np.allclose(north.headwind_ms, 0.0, atol=0.05)
    assert north.crosswinds == [(0.0, 10.0, pytest.approx(wind * 3.6, abs=0.1))]
    assert crosswind_sections(north, min_kph=wind * 3.6 + 1) == []


def test_wind_where_groups_ride_in_km_per_hour():
    flat = lambda s: np.full(s.size, 100.0)  # noqa: E731
    p = build_profile(course_with_elevation(10_000, 90.0, flat), [weather(4, "E")])  # into the wind
    head, cross = p.wind_kph_columns(np.array([9.0, 1.0, np.nan]))
    wind_kph = round(float(beaufort_to_ms(4)) * RIDER_HEIGHT_WIND * 3.6, 1)
    assert list(head[:2]) == [wind_kph, wind_kph] and np.isnan(head[2])
    assert list(cross[:2]) == [0.0, 0.0]


def test_each_stretch_takes_the_nearest_weather_reading():
    flat = lambda s: np.full(s.size, 0.0)  # noqa: E731
    p = build_profile(course_with_elevation(20_000, 90.0, flat), [weather(2, "E", km=0.0), weather(5, "E", km=20.0)])
    assert p.headwind_ms[p.step_mid_km < 9.5] == pytest.approx(float(beaufort_to_ms(2)) * RIDER_HEIGHT_WIND, abs=0.01)
    assert p.headwind_ms[p.step_mid_km > 10.5] == pytest.approx(float(beaufort_to_ms(5)) * RIDER_HEIGHT_WIND, abs=0.01)


def test_a_climb_starts_where_the_road_really_rises_not_at_the_false_flat():
    # 5 km flat, 3 km false flat at 1 %, 5 km at 6 % to the summit, then down
    def ele(s):
        return np.interp(s, [0, 5000, 8000, 13000, 16000], [200, 200, 230, 530, 380])
    course = course_with_elevation(16_000, 45.0, ele)
    summit = {"km": 13.0, "place": "Col", "summits": [{"code": "2", "length": 5000, "state": "6.0",
                                                      "summit": {"name": "Col de Test", "altitude": 530}}]}
    p = build_profile(course, [summit])
    (climb,) = p.climbs
    assert climb.name == "Col de Test" and climb.category == "2"
    assert climb.start_km == pytest.approx(8.0, abs=0.15)
    assert climb.gain_m == pytest.approx(300.0, abs=5.0)
    assert [c.kind for c in p.checkpoints] == ["summit", "finish"]
    # without an official length the search reaches 25 km back: the same foot
    summit["summits"][0]["length"] = None
    assert find_climbs(p, [summit])[0].start_km == pytest.approx(8.0, abs=0.15)


def test_a_course_without_elevation_has_no_climbs_and_is_flat():
    p = build_profile(course_with_elevation(5_000, 0.0, lambda s: np.full(s.size, np.nan)), [])
    assert not p.has_elevation and p.climbs == [] and np.all(p.gradient == 0.0)
    assert [c.kind for c in p.checkpoints] == ["finish"]
