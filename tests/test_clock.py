"""A tracker's clock off from the field's, told from a rider behind by when his fixes arrive (peloton.ingest.clock)."""
import numpy as np

from peloton.ingest.clock import ClockParams, ClockWatch


def _tick(watch, t, seen, bibs=range(1, 21), offset=None):
    """One tick of the field (every rider at ``t``, seen at ``seen``) -> offsets; ``offset``: {bib: clock error}."""
    bibs = np.array(list(bibs), dtype=np.int64)
    times = np.full(bibs.size, float(t)) + np.array([(offset or {}).get(int(b), 0.0) for b in bibs])
    return watch.offsets(bibs, times, np.full(bibs.size, float(seen)))


def test_a_clock_slow_or_fast_is_measured_against_the_field_and_a_rider_behind_is_not_flagged():
    watch = ClockWatch()
    t0 = 1.78e9
    off = _tick(watch, t0, t0 + 2.0, offset={3: -20.0, 4: 10.0, 5: -3.0})
    assert off[2] == -20.0 and off[3] == 10.0 and off[4] == -3.0  # slow 20, fast 10, jitter 3
    assert np.all(off[5:] == 0.0)
    flags = watch.flags(np.array([3, 4, 5, 6]), np.array([t0 + 6 - 20, t0 + 6 + 10, t0 + 3, t0 + 6]),
                        np.full(4, t0 + 8.0))
    assert flags.tolist() == [True, True, False, False]


def test_one_late_delivery_is_not_a_clock_but_only_late_deliveries_are():
    watch = ClockWatch()
    t0 = 1.78e9
    _tick(watch, t0, t0 + 1.0)
    # bib 7's next fix comes 40 s late (a retry): his fastest recent delivery is still on time
    late = watch.offsets(np.array([7]), np.array([t0 + 6.0]), np.array([t0 + 47.0]))
    assert late[0] == 0.0
    # a rider first seen after a minute of nothing but late deliveries is off (his floor is 40 s)
    watch2 = ClockWatch()
    _tick(watch2, t0, t0 + 1.0)
    assert watch2.offsets(np.array([99]), np.array([t0 - 34.0]), np.array([t0 + 7.0]))[0] == -40.0


def test_no_field_no_seen_time_and_old_arrivals_flag_nothing():
    watch = ClockWatch(ClockParams(min_riders=5))
    t0 = 1.78e9
    assert np.isnan(watch.offsets(np.array([1, 2]), np.array([t0, t0 - 50]), np.array([t0, t0]))).all()
    assert np.isnan(watch.offsets(np.array([1]), np.array([t0]), np.array([np.nan]))).all()
    _tick(watch, t0, t0 + 1.0, offset={9: -30.0})
    # ten deliveries later bib 9's slow fixes are forgotten: his new, right, fix is not flagged
    for k in range(1, 11):
        off = _tick(watch, t0 + 6 * k, t0 + 6 * k + 1.0)
    assert np.all(off == 0.0)
    assert np.bincount(watch.bib).max() == 10  # bounded memory: 10 deliveries a rider


def test_a_hole_in_the_feed_does_not_empty_the_field_but_riders_long_gone_leave_it():
    watch = ClockWatch()
    t0 = 1.78e9
    _tick(watch, t0, t0)
    # a minute's hole, then a late fix of a slow tracker arrives before the next tick reaches the engine
    assert watch.flags(np.array([50]), np.array([t0 + 40.0]), np.array([t0 + 60.0])).tolist() == [True]
    _tick(watch, t0 + 700, t0 + 700, bibs=[1])
    assert set(watch.bib.tolist()) == {1}
