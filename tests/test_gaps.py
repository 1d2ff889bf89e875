"""Time-at-position gaps on tracks whose passage times are known by construction."""
import numpy as np
import pytest

from peloton.state.gaps import (RoadClock, Trajectory, first_finisher, gap_to_leader_s, gap_to_rider_ahead_s,
                          leader_per_tick, pchip_slopes)

T0 = 1.78e9


def _ride(bib, start_s, speed_mps, ticks):
    """Fixes of a rider leaving km 0 at ``start_s`` at constant speed, at the given tick times."""
    km = np.maximum(ticks - start_s, 0) * speed_mps / 1000.0
    return np.full(ticks.size, bib), T0 + ticks, km


def _stack(*rides):
    bib, t, km = (np.concatenate(x) for x in zip(*rides))
    return t, km, bib


def test_gap_is_time_since_leader_passed_not_distance_over_speed():
    ticks = np.arange(0.0, 1200.0, 6.0)
    # leader at 12 m/s, chaser 40 s later at 9 m/s: the chaser's gap grows as he loses time
    t, km, bib = _stack(_ride(1, 0.0, 12.0, ticks), _ride(2, 40.0, 9.0, ticks))
    gap, leader = gap_to_leader_s(t, km, bib, np.ones(t.size, bool))
    chaser = (bib == 2) & (t > T0 + 100) & (t < T0 + 1100)
    # the chaser is at x = 9 (s - 40); the leader passed x at x / 12
    s = t[chaser] - T0
    expected = s - 9.0 * (s - 40.0) / 12.0
    assert np.allclose(gap[chaser], expected, atol=0.05)
    assert np.all(leader[chaser] == 1)
    assert np.all(gap[bib == 1] == 0)


def test_passage_time_between_sparse_fixes_follows_a_monotone_curve():
    t = np.array([0.0, 6.0, 42.0, 48.0])
    km = np.array([0.0, 0.06, 0.42, 0.48])  # 10 m/s throughout, with a 36 s hole
    traj = Trajectory(T0 + t, km)
    assert np.allclose(traj.passage_time(np.array([0.1, 0.2, 0.3])) - T0, [10.0, 20.0, 30.0], atol=0.2)
    assert traj.passage_time(np.array([0.5]))[0] - T0 == pytest.approx(50.0)  # 20 m past his last fix: last speed
    assert np.isnan(traj.passage_time(np.array([0.6]))[0])  # 120 m past it: unknown
    silent = Trajectory(T0 + np.r_[t, 200.0, 206.0], np.r_[km, 2.0, 2.06])  # then silent for 152 s
    assert np.isnan(silent.passage_time(np.array([1.0]))[0])  # no time across the silence, not a guess
    # he stops at km 0.48 for a minute (GPS noise takes him back 2 m), then rides on at 10 m/s: he passes km 0.5
    # about 2 s after he rode on (the cubic starts him from rest), not in the stop, with or without the road clock
    t2, km2 = np.r_[t, 78.0, 108.0, 114.0], np.r_[km, 0.478, 0.48, 0.54]
    bib2 = np.ones(t2.size, dtype=np.int64)
    for clock in (None, RoadClock(T0 + t2, km2, bib2, np.ones(t2.size, bool))):
        stopped = Trajectory(T0 + t2, km2, clock)
        assert stopped.passage_time(np.array([0.5]))[0] - T0 == pytest.approx(110.0, abs=1.0)
    slopes = pchip_slopes(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0, 2.0]))
    assert slopes[1] == 0 and slopes[2] == 0  # flat stretch: no overshoot


def test_a_short_dropout_of_the_leader_keeps_him_as_reference():
    ticks = np.arange(0.0, 600.0, 6.0)
    t, km, bib = _stack(_ride(1, 0.0, 10.0, ticks), _ride(2, 20.0, 10.0, ticks))
    silent = (bib == 1) & (t > T0 + 300) & (t < T0 + 318)  # 18 s without the leader's tracker
    keep = ~silent
    gap, leader = gap_to_leader_s(t[keep], km[keep], bib[keep], np.ones(keep.sum(), bool))
    second = (bib[keep] == 2) & (t[keep] > T0 + 100)
    assert np.all(leader[second] == 1)
    assert np.allclose(gap[second], 20.0, atol=0.05)


def test_when_the_leader_leaves_the_road_the_next_rider_leads():
    ticks = np.arange(0.0, 900.0, 6.0)
    t, km, bib = _stack(_ride(1, 0.0, 10.0, ticks), _ride(2, 120.0, 10.0, ticks))
    gone = (bib == 1) & (t > T0 + 400)  # the leader finished: his tracker leaves the feed
    t, km, bib = t[~gone], km[~gone], bib[~gone]
    gap, leader = gap_to_leader_s(t, km, bib, np.ones(t.size, bool), hold_s=30.0)
    late = (bib == 2) & (t > T0 + 440)
    assert np.all(leader[late] == 2) and np.all(gap[late] == 0)
    ticks_t, lead = leader_per_tick(t, km, bib, np.ones(t.size, bool), hold_s=30.0)
    assert lead[np.searchsorted(ticks_t, T0 + 420)] == 1  # held through the hold time


def test_gap_to_rider_ahead_is_a_difference_of_passage_times():
    gap_leader = np.array([0.0, 12.0, 30.0])
    ahead = np.array([-1, 0, 1])
    out = gap_to_rider_ahead_s(gap_leader, ahead)
    assert np.isnan(out[0]) and np.allclose(out[1:], [12.0, 18.0])


def test_road_clock_shares_a_hole_in_the_leader_track_by_how_long_the_road_takes():
    # the road: 0-300 m at 5 m/s (a climb), 300-600 m at 15 m/s (a descent); true time at x known
    def time_at(x):
        return np.where(x <= 300, x / 5.0, 60.0 + (x - 300) / 15.0)

    def position_at(s):
        return np.where(s <= 60.0, 5.0 * s, 300.0 + 15.0 * (s - 60.0))

    bibs, ts, kms = [], [], []
    for b, start in enumerate(np.arange(10.0, 200.0, 2.5), start=2):  # a stream of riders, 6 s ticks
        s = np.arange(0.0, 86.0, 6.0)
        bibs.append(np.full(s.size, b)), ts.append(T0 + start + s), kms.append(position_at(s) / 1000)
    leader_s = np.array([0.0, 80.0])  # the leader: one fix at each end of the section
    bibs.append(np.array([1, 1])), ts.append(T0 + leader_s), kms.append(position_at(leader_s) / 1000)
    bib, t, km = (np.concatenate(x) for x in (bibs, ts, kms))
    from peloton.state.gaps import RoadClock

    clock = RoadClock(t, km, bib, np.ones(t.size, bool))
    x = np.array([150.0, 300.0, 450.0])
    with_clock = Trajectory(t[bib == 1], km[bib == 1], clock).passage_time(x / 1000) - T0
    linear = np.interp(x, position_at(leader_s), leader_s)
    assert np.allclose(with_clock, time_at(x), atol=1.5)
    assert np.all(np.abs(linear - time_at(x)) >= 9)  # what a straight line would have said


def test_a_breakaway_out_of_coverage_stays_the_reference_but_a_finished_leader_does_not():
    ticks = np.arange(0.0, 2400.0, 6.0)
    t, km, bib = _stack(_ride(1, 0.0, 12.0, ticks), _ride(2, 120.0, 12.0, ticks))
    length_km = 25.0  # rider 1 finishes at 2083 s, rider 2 at 2203 s
    ktf = length_km - km
    silent = (bib == 1) & (t > T0 + 600) & (t < T0 + 700)  # 100 s without the breakaway's tracker
    gone = (bib == 1) & (ktf < 0.4)  # his tracker stops 400 m before the line
    keep = ~silent & ~gone & (ktf > 0)
    t, km, bib, ktf = t[keep], km[keep], bib[keep], ktf[keep]
    speed = np.full(t.size, 43.2)
    gap, leader = gap_to_leader_s(t, km, bib, np.ones(t.size, bool), km_to_finish=ktf, speed_kph=speed)
    during = (bib == 2) & (t > T0 + 620) & (t < T0 + 700)
    assert np.all(leader[during] == 1) and np.allclose(gap[during], 120.0, atol=0.5)
    after_finish = (bib == 2) & (t > T0 + 2110)
    assert np.all(leader[after_finish] == 2) and np.all(gap[after_finish] == 0)
    # without the speeds the 12 s hold alone lets the silent leader go
    _, plain = gap_to_leader_s(t, km, bib, np.ones(t.size, bool))
    assert np.all(plain[during & (t > T0 + 640)] == 2)


def _finale(length_km=25.0, winner_tracker_stops_km=0.4):
    """A breakaway (bib 1) 120 s ahead of bib 2 and 300 s ahead of bib 3, all at 12 m/s; bib 1's tracker stops
    ``winner_tracker_stops_km`` before the line (0: he is seen past it), the others are seen past it for 20 s."""
    ticks = np.arange(0.0, 2600.0, 6.0)
    t, km, bib = _stack(_ride(1, 0.0, 12.0, ticks), _ride(2, 120.0, 12.0, ticks), _ride(3, 300.0, 12.0, ticks))
    ktf = length_km - km
    crossed = T0 + np.array([0.0, 120.0, 300.0])[bib - 1] + length_km * 1000 / 12.0
    keep = t <= crossed + 20  # trackers leave the feed 20 s after the line
    keep &= ~((bib == 1) & (ktf < winner_tracker_stops_km) & (winner_tracker_stops_km > 0))
    return t[keep], km[keep], bib[keep], ktf[keep], np.full(keep.sum(), 43.2)


def test_the_head_of_the_race_stays_the_reference_after_he_has_finished():
    t, km, bib, ktf, speed = _finale()
    first = first_finisher(t, km, bib, np.ones(t.size, bool), ktf, speed, at_line_km=0.05)
    assert first.bib == 1 and abs(first.crossed_t - (T0 + 25000 / 12.0)) < 0.5  # at his last speed
    gap, leader = gap_to_leader_s(t, km, bib, np.ones(t.size, bool), km_to_finish=ktf, speed_kph=speed,
                                  at_line_km=0.05)
    racing = ktf > 0.05
    after = t > first.crossed_t
    assert np.all(leader[after] == 1)
    assert np.allclose(gap[racing & after & (bib == 2)], 120.0, atol=0.5)  # not 0: he is second on the road
    assert np.allclose(gap[racing & after & (bib == 3)], 300.0, atol=0.5)
    # where the winner's tracker had stopped (the last 400 m) his trajectory runs on to the line
    assert np.allclose(gap[racing & (bib == 3) & (ktf < 0.4)], 300.0, atol=0.5)
    assert np.all(np.isnan(gap[~racing]))  # riders at the line are no longer racing: no gap
    # before anyone finished, nothing changes
    old, _ = gap_to_leader_s(t, km, bib, np.ones(t.size, bool), km_to_finish=ktf, speed_kph=speed)
    early = t < first.crossed_t - 30
    assert np.array_equal(gap[early], old[early], equal_nan=True)
    assert np.all(old[racing & after & (bib == 2)] < 1.0)  # the old rule: the next on the road leads


def test_the_first_finisher_is_the_earliest_crossing_seen_at_the_line():
    t, km, bib, ktf, speed = _finale(winner_tracker_stops_km=0.0)
    first = first_finisher(t, km, bib, np.ones(t.size, bool), ktf, speed, at_line_km=0.05)
    assert first.bib == 1 and abs(first.crossed_t - (T0 + 25000 / 12.0)) < 0.5  # between his fixes
    # live, before anyone reached the last 600 m, nobody has finished
    early = t < T0 + 2000
    assert first_finisher(t[early], km[early], bib[early], np.ones(early.sum(), bool), ktf[early], speed[early],
                          at_line_km=0.05) is None


def test_the_trackers_own_speeds_bend_the_trajectory_across_a_hole():
    # a leader braking steadily from 15 to 5 m/s over a 36 s hole: x = 15 s - s^2 / 7.2
    s = np.array([0.0, 36.0])
    x_m = 15.0 * s - s**2 / 7.2
    kph = (15.0 - s / 3.6) * 3.6
    probe_s = np.array([9.0, 18.0, 27.0])
    probe_km = (15.0 * probe_s - probe_s**2 / 7.2) / 1000
    with_speeds = Trajectory(T0 + s, x_m / 1000, sensor_kph=kph).passage_time(probe_km) - T0
    without = Trajectory(T0 + s, x_m / 1000).passage_time(probe_km) - T0
    assert np.allclose(with_speeds, probe_s, atol=0.3)  # a cubic with the true end slopes is exact
    assert np.all(np.abs(without - probe_s) > 2.0)  # two fixes alone say constant speed
    # a tracker that reports nonsense speeds cannot make the trajectory run backwards
    wild = Trajectory(T0 + s, x_m / 1000, sensor_kph=np.array([400.0, -5.0])).passage_time(probe_km)
    assert np.all(np.diff(wild) > 0) and np.all((wild > T0) & (wild < T0 + 36))

