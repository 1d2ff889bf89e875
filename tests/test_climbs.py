"""Climb efforts on tracks whose times are known by hand."""
import numpy as np
import pytest

from peloton.match.profile import build_profile
from peloton.predict.physics import G
from peloton.state.climbs import CLIMB_MODEL, climb_efforts, climb_power_wkg
from tests.helpers import course_with_elevation

T0 = 1_783_422_600.0


def test_power_on_a_steady_climb_is_the_textbook_formula():
    ele = lambda s: 500.0 + 0.08 * s  # noqa: E731  # 8 % for 5 km, no wind
    p = build_profile(course_with_elevation(5_000, 0.0, ele), [])
    seconds = 5_000 / 5.0  # 18 km/h
    got = float(climb_power_wkg(p, 0.0, 5.0, seconds))
    m = CLIMB_MODEL
    theta = np.arctan(0.08)
    rho = float(np.mean(p.rho()))
    expected = 5.0 * (m.mass * G * (np.sin(theta) + m.crr * np.cos(theta)) + 0.5 * rho * m.cda_m2 * 25.0)
    assert got == pytest.approx(expected / m.drivetrain / m.rider_kg, rel=0.01)
    assert 5.0 < got < 6.5  # a strong climber's hour


def test_climb_efforts_time_vam_and_speed_per_rider():
    def ele(s):
        return np.interp(s, [0, 2000, 7000, 9000], [300, 300, 700, 600])  # 8 % from km 2 to the summit at km 7
    course = course_with_elevation(9_000, 30.0, ele)
    summit = {"km": 7.0, "place": "Col", "summits": [{"code": "1", "length": 5000, "state": "8",
                                                     "summit": {"name": "Col de Test"}}]}
    p = build_profile(course, [summit])
    (climb,) = p.climbs
    assert climb.start_km == pytest.approx(2.0, abs=0.11)
    t = np.arange(0.0, 3000.0, 6.0)
    # rider 1 climbs at 18 km/h, rider 2 at 15 km/h; both ride 36 km/h before the climb
    tracks = []
    for bib, climb_kph in ((1, 18.0), (2, 15.0)):
        km = np.where(t < 200, t * 10 / 1000, 2.0 + (t - 200) * climb_kph / 3600)
        tracks.append((np.full(t.size, bib), T0 + t, np.minimum(km, 9.0)))
    bib, tt, km = (np.concatenate(x) for x in zip(*tracks))
    rows = {r["bib"]: r for r in climb_efforts("s", bib, tt, km, np.ones(km.size, bool), p)}
    length = climb.length_km
    for b, kph in ((1, 18.0), (2, 15.0)):
        r = rows[b]
        assert r["climb"] == "Col de Test" and r["category"] == "1"
        assert r["climb_time_s"] == pytest.approx(length / kph * 3600, rel=0.01)
        assert r["avg_speed_kph"] == pytest.approx(kph, rel=0.01)
        assert r["vam_m_per_h"] == pytest.approx(climb.gain_m / (length / kph), rel=0.01)
        assert r["km_to_finish_summit"] == pytest.approx(2.0, abs=0.01)
    assert rows[1]["power_wkg"] > rows[2]["power_wkg"] > 3.0
    # a rider seen only up to the middle of the climb has no effort on it
    half = km < 4.5
    assert climb_efforts("s", bib[half], tt[half], km[half], np.ones(half.sum(), bool), p) == []
