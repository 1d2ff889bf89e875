"""Passage times: when a rider passed a km, read off his fixes."""
import numpy as np
import pytest

from peloton.match.passage import furthest_reach, passage_times, ride_times


def test_the_reach_never_goes_back_and_keeps_the_first_fix_at_each_new_km():
    km = np.array([1.0, 1.2, 1.15, 1.2, 1.4, 1.4])  # GPS noise takes him back 50 m; then he stands still
    reach, first = furthest_reach(km)
    assert reach.tolist() == [1.0, 1.2, 1.2, 1.2, 1.4, 1.4]
    assert first.tolist() == [0, 1, 4]


def test_a_ride_is_timed_at_every_km_on_its_reach_and_to_the_line_at_its_last_speed():
    t = np.arange(12) * 10.0
    km = np.r_[0.5 + 0.1 * np.arange(11), 1.45]  # 10 m/s, the last fix 50 m back: noise
    grid = np.array([0.0, 0.5, 1.0, 1.5, 1.8])
    times = ride_times(t, km, grid)
    assert np.isnan(times[0])  # before his first fix: unknown
    assert times[1:].tolist() == pytest.approx([0.0, 50.0, 100.0, 130.0])  # the last 300 m at 10 m/s
    assert ride_times(t[:5], km[:5], grid) is None  # too few fixes to call it a ride


def test_passage_times_interpolate_between_fixes():
    t = np.array([0.0, 10.0, 20.0, 30.0])
    km = np.array([1.0, 1.1, 1.2, 1.3])
    assert passage_times(t, km, np.array([1.05, 1.2, 1.25])) == pytest.approx([5.0, 20.0, 25.0])


def test_no_passage_time_without_close_fixes_or_before_the_track():
    t = np.array([0.0, 10.0, 300.0, 310.0])  # a 290 s hole between km 1.1 and 1.5
    km = np.array([1.0, 1.1, 1.5, 1.6])
    got = passage_times(t, km, np.array([1.3, 0.5, 1.55, 2.0]))
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == pytest.approx(305.0) and np.isnan(got[3])


def test_a_track_ending_just_short_of_the_summit_reaches_it_at_its_last_speed():
    t = np.array([0.0, 10.0, 20.0])
    km = np.array([1.0, 1.05, 1.1])  # 5 m/s
    assert passage_times(t, km, np.array([1.13]))[0] == pytest.approx(26.0)
    assert np.isnan(passage_times(t, km, np.array([1.2]))[0])  # 100 m short: too far to guess


def test_a_rider_who_stood_still_passes_the_point_when_he_rode_on():
    t = np.array([0.0, 10.0, 60.0, 120.0, 130.0])
    km = np.array([1.0, 1.1, 1.09, 1.1, 1.2])  # stopped at km 1.1 (GPS noise takes him back) for almost 2 min
    assert passage_times(t, km, np.array([1.05, 1.15])) == pytest.approx([5.0, 125.0])  # not halfway through the stop


def test_a_finer_curve_is_used_inside_the_bracket_and_kept_in_it():
    t = np.array([0.0, 10.0, 20.0])
    km = np.array([1.0, 1.1, 1.2])
    got = passage_times(t, km, np.array([1.05, 1.15]), shape=lambda x: (x - 1.0) * 50.0)
    assert got == pytest.approx([2.5, 10.0])  # 2.5 s is inside [0, 10]; 7.5 s is not in [10, 20]: clipped to it


def test_a_point_at_a_fix_is_passed_at_that_fix_whatever_the_silence_before():
    t = np.array([0.0, 10.0, 300.0])  # silent for 290 s, then a fix exactly at km 1.5
    km = np.array([1.0, 1.1, 1.5])
    got = passage_times(t, km, np.array([1.3, 1.5]))
    assert np.isnan(got[0]) and got[1] == 300.0
