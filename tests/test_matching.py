import numpy as np
import pytest

from peloton.ingest.feed import FixBatch, concat_batches
from peloton.match.course import Course
from peloton.match.matching import (MatchParams, conflicting_fixes, dedupe, inconsistent_fixes, match_fixes,
                              smoothed_speed_kph, unreachable_passes)
from peloton.match.stage import parse_course_text
from tests.conftest import COURSES
from tests.helpers import line_course, track_along


def _course(year: int, stage: int) -> Course:
    route = parse_course_text((COURSES / str(year) / f"{stage:02d}" / f"trace_{year}_{stage}.geojson").read_text())
    return Course([p[0] for p in route], [p[1] for p in route], [p[2] for p in route])


@pytest.fixture(scope="module", params=[2022, 2023])
def paris(request) -> Course:
    return _course(request.param, 21)


def _laps_ok(matched, truth_by_bib, tol_m=60.0):
    err = np.empty(len(matched))
    for bib, truth in truth_by_bib.items():
        sel = matched.fixes.bib == bib
        err[sel] = matched.s[sel] - truth[: sel.sum()]
    return np.abs(err)


@pytest.mark.slow
def test_paris_finishing_circuit_every_fix_on_the_right_lap(paris):
    """Synthetic riders with GPS noise on the Champs-Elysees laps: no fix on another lap."""
    tracks, truth = [], {}
    for bib, (speed, dt, noise) in enumerate([(12.0, 6.0, 8.0), (13.5, 1.0, 5.0), (11.0, 6.0, 15.0),
                                             (12.5, 36.0, 8.0)], start=1):
        fixes, s = track_along(paris, bib, speed, dt, noise, seed=bib)
        tracks.append(fixes)
        truth[bib] = s
    matched, rejected, dupes = match_fixes(concat_batches(tracks, "test"), paris)
    assert rejected == [] and dupes == 0
    err = _laps_ok(matched, truth)
    assert err.max() < 100.0, f"worst fix {err.max():.0f} m from truth"
    assert np.median(err) < 10.0


def test_signal_gap_on_the_circuit_resumes_on_the_right_lap(paris):
    # a 3 km hole in the signal on the circuit (about 4 minutes)
    end = paris.length_m
    fixes, s = track_along(paris, 9, 12.0, 6.0, 8.0, seed=3, gaps=[(end - 20_000, end - 17_000)])
    matched, _, _ = match_fixes(fixes, paris)
    assert np.abs(matched.s - s).max() < 100.0


def test_out_and_back_on_the_same_road():
    # 5 km out, turn around, 5 km back 8 m to the side (the other lane)
    course = line_course([[0, 0], [5000, 0], [5000, 8], [0, 8]])
    fixes, s = track_along(course, 1, 11.0, 6.0, 6.0, seed=4)
    matched, _, _ = match_fixes(fixes, course)
    assert np.abs(matched.s - s).max() < 60.0


def test_hairpins_climb():
    # ten switchbacks 60 m apart: the nearest leg is often the wrong one
    pts = []
    for i in range(10):
        y = i * 60.0
        pts += [[0, y], [800, y]] if i % 2 == 0 else [[800, y], [0, y]]
    course = line_course(pts)
    fixes, s = track_along(course, 1, 5.0, 6.0, 10.0, seed=5)
    matched, _, _ = match_fixes(fixes, course)
    assert np.abs(matched.s - s).max() < 60.0


def test_a_noisy_fix_by_the_hairpin_above_is_rejected_not_matched_two_km_up_the_climb():
    """Alpe d'Huez (2022-12): a fix 390 m off the road, 40 m from the next hairpin up (a simulated race's noise).

    As the crow flies it is a ride of 6 s from its neighbours; along the road
    its only candidates are 2 km further up. Matched there it led the race for
    a tick. Whole track (the replay) or ending at it (the live engine's view).
    """
    course = _course(2022, 12)
    spike = (45.077668, 6.051153)
    before = course.candidates(np.array([45.074375]), np.array([6.049625]), 500.0, 32)
    s0 = float(before.s[0, np.nanargmin(before.off_m[0])])
    fixes, s = track_along(course, 33, 3.3, 6.0, 5.0, seed=6, start_s=s0 - 600.0, end_s=s0 + 600.0)
    i = int(np.argmin(np.abs(s - s0))) + 1
    fixes.lat[i], fixes.lon[i] = spike
    spike_s = course.candidates(np.array([spike[0]]), np.array([spike[1]]), 500.0, 32).s[0]
    assert np.nanmin(np.abs(spike_s - s[i])) > 1500.0  # no candidate anywhere near the rider's true position
    for upto in (len(fixes), i + 1):
        part = fixes.take(np.arange(upto))
        matched, rejected, _ = match_fixes(part, course)
        assert np.abs(matched.s - s[np.searchsorted(part.t, matched.fixes.t)]).max() < 60.0
        assert [(r, b.t.tolist()) for b, r, _ in rejected] == [("impossible_jump", [part.t[i]])]


def test_along_the_road_a_pass_out_of_reach_is_off_the_chain_but_not_a_fast_descent_or_a_turn_back():
    t = np.arange(20) * 6.0
    one = np.ones(20, dtype=np.int64)
    for jump in (700.0, -2000.0):  # the hairpin above in 6 s, the one below
        s = np.r_[np.arange(10) * 25.0, 225.0 + jump, np.arange(11, 20) * 25.0]
        assert unreachable_passes(one, t, s).tolist() == [False] * 10 + [True] + [False] * 9
    fast = np.arange(20) * 133.0  # 80 km/h
    back = np.r_[np.arange(10) * 25.0, np.arange(10) * 25.0]  # he turned back 225 m (stage 4's feed has such)
    assert not unreachable_passes(one, t, fast).any()
    assert not unreachable_passes(one, t, back).any()


def test_dedupe_drops_repeats_but_keeps_a_second_position_for_the_conflict_check():
    f = FixBatch("s", np.array([2, 1, 2, 1, 2]), np.array([10.0, 10.0, 10.0, 5.0, 10.0]),
                 np.array([1.0, 2, 3, 4, 1.0]), np.zeros(5), np.zeros(5))
    out, removed = dedupe(f)
    assert removed == 1  # (2, 10) at lat 1 twice
    assert list(zip(out.bib.tolist(), out.t.tolist(), out.lat.tolist())) == [
        (1, 5.0, 4.0), (1, 10.0, 2.0), (2, 10.0, 1.0), (2, 10.0, 3.0)]


def test_of_two_positions_at_one_time_the_one_on_the_track_is_kept_whichever_came_first():
    t = np.array([0.0, 6.0, 12.0, 12.0, 18.0])
    lat = 45.0 + np.array([0, 1, 30, 2, 3]) * 0.0005  # at t=12 a forged position 1.5 km away arrived first
    f = FixBatch("s", np.ones(5, dtype=np.int64), t, lat, np.full(5, 6.0), np.zeros(5))
    assert conflicting_fixes(f).tolist() == [False, False, True, False, False]
    lat2 = lat[[0, 1, 3, 2, 4]]  # the genuine one first
    f2 = FixBatch("s", np.ones(5, dtype=np.int64), t, lat2, np.full(5, 6.0), np.zeros(5))
    assert conflicting_fixes(f2).tolist() == [False, False, False, True, False]


def _track(lat_steps, dt=6.0):
    lat = 45.0 + np.asarray(lat_steps, dtype=float) * 0.0005  # ~55 m per step: 33 km/h
    n = lat.size
    return FixBatch("s", np.ones(n, dtype=np.int64), np.arange(n) * dt, lat, np.full(n, 6.0), np.zeros(n))


def test_isolated_spike_is_an_impossible_jump_but_a_fast_descent_is_not():
    steps = np.arange(6.0)
    steps[3] += 100  # 5.5 km away for one fix
    assert inconsistent_fixes(_track(steps)).tolist() == [False, False, False, True, False, False]
    fast = _track(np.arange(6) * 3.6)  # 120 km/h, steady
    assert not inconsistent_fixes(fast).any()
    last = _track(np.r_[np.arange(5.0), 300.0])  # a spike on the newest fix: rejected at once (live)
    assert inconsistent_fixes(last).tolist() == [False] * 5 + [True]


def test_a_sustained_teleport_is_rejected_and_the_genuine_fix_after_it_kept():
    steps = np.arange(20.0)
    steps[10:15] += 270  # 15 km ahead for 5 fixes, riding on there
    bad = inconsistent_fixes(_track(steps))
    assert bad.tolist() == [False] * 10 + [True] * 5 + [False] * 5
    # a position held longer than the lookback wins in the end (the tracker really moved)
    steps = np.arange(70.0)
    steps[30:] += 270
    bad = inconsistent_fixes(_track(steps), MatchParams(chain_lookback=20))
    assert bad[30:50].all() and not bad[50:].any() and not bad[:30].any()


def test_off_course_fixes_are_rejected_not_matched():
    course = line_course([[0, 0], [3000, 0]])
    fixes, _ = track_along(course, 1, 10.0, 6.0, 3.0, seed=1)
    far = FixBatch("s", np.array([2]), np.array([1.7e9]), np.array([46.0]), np.array([6.0]), np.array([np.nan]))
    matched, rejected, _ = match_fixes(concat_batches([fixes, far], "s"), course)
    assert len(matched) == len(fixes)
    assert [(len(b), r) for b, r, _ in rejected] == [(1, "off_course")]


def test_speed_is_distance_over_time_per_rider():
    bib = np.array([1, 1, 1, 2, 2])
    t = np.array([0.0, 10.0, 20.0, 0.0, 10.0])
    km = np.array([0.0, 0.1, 0.2, 5.0, 5.05])
    v = smoothed_speed_kph(bib, t, km, 15.0)
    assert np.allclose(v, [36.0, 36.0, 36.0, 18.0, 18.0])


def test_real_stage4_matches_in_order_along_the_course(stage4_course):
    fixes, s = track_along(stage4_course, 11, 11.5, 6.0, 6.0, seed=7)
    matched, _, _ = match_fixes(fixes, stage4_course, MatchParams())
    assert np.abs(matched.s - s).max() < 60.0
    assert np.all(np.diff(matched.km) > -0.05)


@pytest.mark.parametrize("offset_m", [0.0, 14.0, 25.0])
def test_parallel_carriageways_of_an_out_and_back_keep_each_fix_on_its_own(offset_m):
    """Two carriageways 30 m apart, ridden out and back; the road lies offset_m off the trace towards the
    other one (a simplified trace), so from 15 m on every fix is nearer the wrong carriageway."""
    xs = np.linspace(0, 3000, 61)
    course = line_course(np.r_[np.c_[xs, np.zeros_like(xs)], np.c_[xs[::-1], np.full_like(xs, 30.0)]])
    rng = np.random.default_rng(int(offset_m))
    t = np.arange(0, course.length_m / 11.0, 6.0)
    s = 11.0 * t
    x, y = course.proj.forward(*course.point_at(s))
    y = np.where(s < 3000, y + offset_m, y - offset_m) + rng.normal(0, 5, s.size)
    lat, lon = course.proj.inverse(x + rng.normal(0, 5, s.size), y)
    fixes = FixBatch("t", np.full(s.size, 1), 1.7e9 + t, lat, lon, np.full(s.size, np.nan))
    matched, rejected, _ = match_fixes(fixes, course)
    assert len(matched) == s.size
    away = np.abs(s - 3000) > 60  # at the U-turn itself the test's offset road jumps across by 2 x offset
    assert np.abs(matched.s - s)[away].max() < 60  # never on the other carriageway (>= 120 m away in s)
    assert np.all(np.diff(matched.s)[away[1:] & away[:-1]] > -20)  # and never riding backwards
