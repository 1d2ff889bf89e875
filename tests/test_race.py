"""Race state on hand-built matched stages: time-trial gaps and per-rider events."""
import numpy as np
import pytest

from peloton.ingest.feed import FixBatch
from peloton.match.matching import Matched
from peloton.state.race import derive_race_state, estimate_start_times, time_trial_gaps

T0 = 1780000020.0  # on a whole minute


def _matched(bib, t, km, finish_km=10.0, speed_kph=None):
    order = np.lexsort((t, bib))
    bib, t, km = bib[order], t[order], km[order]
    n = t.size
    if speed_kph is None:
        speed_kph = np.full(n, 40.0)
    else:
        speed_kph = speed_kph[order]
    quality = np.where(km >= finish_km, "finished", "good").astype(object)
    fixes = FixBatch("test", bib, t, np.zeros(n), np.zeros(n), np.full(n, np.nan))
    return Matched(fixes, km * 1000, np.zeros(n), km, finish_km - km, None, None, speed_kph, quality)


def _time_trial(paces_s_per_km, starts_s, dt=5.0, length_km=10.0):
    bib, t, km = [], [], []
    for b, (pace, start) in enumerate(zip(paces_s_per_km, starts_s), start=1):
        ts = np.arange(start - 30.0, start + pace * length_km + 30.0, dt)
        bib.append(np.full(ts.size, b))
        t.append(T0 + ts)
        km.append(np.clip((ts - start) / pace, 0.0, length_km))
    return np.concatenate(bib), np.concatenate(t), np.concatenate(km)


def test_time_trial_starts_are_found_on_the_start_grid():
    bib, t, km = _time_trial([72.0, 70.0, 75.0, 71.0], [0.0, 90.0, 180.0, 270.0])
    # a standing start: everyone loses the same 6 s in the first 300 m
    km = np.where(km < 0.3, np.clip(km - 6.0 / 72.0, 0, None) * 0.3 / (0.3 - 6.0 / 72.0), km)
    starts = estimate_start_times(bib, t, km, np.ones(t.size, bool))
    assert starts == {1: T0, 2: T0 + 90, 3: T0 + 180, 4: T0 + 270}
    # a rider first seen far down the road started before the recording: no start
    late = bib == 4
    seen = ~late | (km > 2.0)
    assert 4 not in estimate_start_times(bib[seen], t[seen], km[seen], np.ones(seen.sum(), bool))


def test_time_trial_gap_is_against_the_splits_of_the_best_finisher_so_far():
    # rider 1 finishes first (720 s at 72 s/km), rider 2 then beats him (700 s); 3 and 4 ride later
    bib, t, km = _time_trial([72.0, 70.0, 75.0, 71.0], [0.0, 60.0, 1200.0, 1260.0])
    usable = np.ones(t.size, bool)
    gap = time_trial_gaps(bib, t, km, usable)
    at = lambda b, k: gap[(bib == b) & (np.abs(km - k) < 0.04)]
    assert np.all(np.isnan(at(1, 5.0))) and np.all(np.isnan(at(2, 5.0)))  # nobody has finished yet
    assert np.allclose(at(3, 5.0), 5.0 * (75.0 - 70.0), atol=0.6)  # against rider 2's split
    assert np.allclose(at(4, 8.0), 8.0 * (71.0 - 70.0), atol=0.6)
    # between rider 1's finish (720 s) and rider 2's (760 s) rider 1 holds the hot seat
    between = (bib == 2) & (t > T0 + 725) & (t < T0 + 755)
    assert np.allclose(gap[between], -2.0 * km[between], atol=0.6)


def test_rider_events_stopped_signal_and_finished():
    ticks = np.arange(0.0, 1500.0, 6.0)
    bib = np.repeat([1, 2, 3], ticks.size)
    t = T0 + np.tile(ticks, 3)
    km = np.tile(ticks * 0.01, 3)  # 36 km/h, finish at 10 km (t = 1000 s)
    speed = np.full(t.size, 36.0)
    stop = (bib == 2) & (t >= T0 + 300) & (t < T0 + 420)  # rider 2 stands still for 2 minutes
    km[(bib == 2) & (t >= T0 + 300)] -= np.clip(t[(bib == 2) & (t >= T0 + 300)] - T0 - 300, 0, 120) * 0.01
    speed[stop] = 0.0
    silent = (bib == 3) & (t > T0 + 500) & (t < T0 + 600)  # rider 3's tracker is silent for 100 s
    keep = ~silent
    m = _matched(bib[keep], t[keep], km[keep], speed_kph=speed[keep])
    race = derive_race_state(m, finish_km=10.0)
    ev = race.events.to_rows()
    kinds = {(e["event_type"], e["bibs"][0]) for e in ev}
    assert ("stopped", 2) in kinds and ("stopped", 1) not in kinds
    assert ("signal_lost", 3) in kinds and ("signal_back", 3) in kinds
    finished = {e["bibs"][0]: e["event_time"] / 1000 - T0 for e in ev if e["event_type"] == "finished"}
    assert abs(finished[1] - 1000.0) <= 6.0 and abs(finished[3] - 1000.0) <= 6.0
    assert abs(finished[2] - 1120.0) <= 6.0
    # rider 2 lost two minutes: his gap to the leader says so once he rides again
    late = (m.fixes.bib == 2) & (m.fixes.t > T0 + 600) & (m.fixes.t < T0 + 990)  # while the others ride
    assert np.allclose(race.gap_to_leader_s[late], 120.0, atol=1.0)
    rows = race.groups.to_rows()
    assert rows and all(r["size"] >= 1 for r in rows)


def test_a_tracker_reporting_other_riders_positions_sets_no_reference_time():
    # rider 4 starts between them but his tracker teleports around the course (stage 16's bib 122 does)
    bib, t, km = _time_trial([72.0, 70.0, 75.0], [0.0, 60.0, 1200.0])
    ts = np.arange(170.0, 180.0 + 800.0, 5.0)
    glitch_km = np.clip((ts - 180.0) / 72.0, 0, 10)
    glitch_km[(ts > 300) & (np.arange(ts.size) % 3 == 0)] += 4.0  # every third fix is someone 4 km ahead
    glitch_km = np.clip(glitch_km, 0, 10)
    bib = np.r_[bib, np.full(ts.size, 4)]
    t = np.r_[t, T0 + ts]
    km = np.r_[km, glitch_km]
    usable = np.ones(t.size, bool)
    from peloton.state.race import trusted_tracks

    assert trusted_tracks(bib, t, km, usable).tolist() == [1, 2, 3]
    from peloton.state.race import virtual_standings

    assert {r["bib"] for r in virtual_standings("tt", bib, t, km, usable, finish_km=10.0)} == {1, 2, 3}
    gap = time_trial_gaps(bib, t, km, usable)
    late = (bib == 3) & (np.abs(km - 8.0) < 0.04)
    assert np.allclose(gap[late], 5.0 * 8.0, atol=0.6)  # still against rider 2, not the teleporter


def test_virtual_standings_at_every_kilometre():
    from peloton.state.race import virtual_standings

    bib, t, km = _time_trial([72.0, 70.0, 75.0], [0.0, 90.0, 180.0])
    rows = virtual_standings("tt", bib, t, km, np.ones(t.size, bool), finish_km=10.0)
    at5 = {r["bib"]: r for r in rows if r["km"] == 5.0}
    assert at5[1]["rank"] == 1 and at5[1]["riders_ranked"] == 1
    assert at5[2]["rank"] == 1 and at5[2]["best_bib"] == 2 and at5[2]["gap_to_best_s"] == 0
    assert at5[3]["rank"] == 3 and at5[3]["riders_ranked"] == 3 and at5[3]["best_bib"] == 2
    assert at5[3]["gap_to_best_s"] == pytest.approx(25.0, abs=0.5)
    assert at5[3]["elapsed_s"] == pytest.approx(375.0, abs=0.5)
    assert abs(at5[2]["event_time"] / 1000 - (T0 + 90 + 350)) < 1
    kms = sorted({r["km"] for r in rows})
    assert kms[:3] == [1.0, 2.0, 3.0] and kms[-1] == 10.0  # every km and the finish


def test_groups_table_and_gap_to_the_group_ahead():
    # a breakaway of 2, a peloton of 12 riding 60 s behind, one dropped rider 30 s behind the peloton
    ticks = np.arange(0.0, 900.0, 6.0)
    bibs, ts, kms = [], [], []
    for b, delay in [(1, 0.0), (2, 0.4)] + [(10 + i, 60.0 + 0.3 * i) for i in range(12)] + [(99, 94.0)]:
        bibs.append(np.full(ticks.size, b)), ts.append(T0 + ticks), kms.append(np.maximum(ticks - delay, 0) * 0.01)
    bib, t, km = (np.concatenate(x) for x in (bibs, ts, kms))
    m = _matched(bib, t, km, finish_km=50.0, speed_kph=np.full(t.size, 36.0))
    race = derive_race_state(m, finish_km=50.0)
    late = m.fixes.t > T0 + 300
    ahead = dict(zip(m.fixes.bib[late].tolist(), race.gap_to_group_ahead_s[late].tolist()))
    leader_gap = dict(zip(m.fixes.bib[late].tolist(), race.gap_to_leader_s[late].tolist()))
    assert np.isnan(ahead[1]) and np.isnan(ahead[2])  # the head of the race has no group ahead
    assert ahead[10] == pytest.approx(60.0 - 0.4, abs=0.3)  # to the last rider of the breakaway
    assert leader_gap[10] == pytest.approx(60.0, abs=0.3)
    assert ahead[99] == pytest.approx(94.0 - (60.0 + 0.3 * 11), abs=0.3)
    rows = [r for r in race.groups.to_rows() if r["event_time"] == int((T0 + 600) * 1000)]
    by_rank = sorted(rows, key=lambda r: r["rank"])
    assert [r["label"] for r in by_rank] == ["breakaway", "peloton", "solo"]
    assert [r["size"] for r in by_rank] == [2, 12, 1]
    assert by_rank[1]["gap_to_group_ahead_s"] == pytest.approx(59.6, abs=0.3)
    assert by_rank[1]["length_m"] == pytest.approx(33.0, abs=1.0)  # 3.3 s at 10 m/s
    # the group ids hold from tick to tick
    ids = {r["event_time"]: r["group_id"] for r in race.groups.to_rows() if r["label"] == "peloton"}
    assert len(set(list(ids.values())[10:])) == 1


def test_tracks_kept_while_the_fixes_grow_give_what_the_fixes_give_afresh():
    """The live engine keeps each rider's derived track values (trajectory, start, passages) from window to
    window while his track is unchanged: starts, trusted riders and gaps equal those found from the fixes alone."""
    from peloton.state.race import RiderTracks, trusted_tracks

    bib, t, km = _time_trial([72.0, 70.0, 75.0, 71.0], [0.0, 60.0, 400.0, 800.0])
    order = np.argsort(t, kind="stable")  # the fixes as they come
    bib, t, km = bib[order], t[order], km[order]
    usable = np.ones(t.size, bool)
    memo, checked = {}, 0
    for n in range(60, t.size + 1, 37):
        b, tt, kk, u = bib[:n], t[:n], km[:n], usable[:n]
        tracks = RiderTracks(b, tt, kk, u, memo)
        starts = estimate_start_times(b, tt, kk, u, tracks=tracks)
        assert starts == estimate_start_times(b, tt, kk, u)
        assert np.array_equal(trusted_tracks(b, tt, kk, u, tracks=tracks), trusted_tracks(b, tt, kk, u))
        newest = np.arange(n) >= n - 37
        kept = time_trial_gaps(b, tt, kk, u, starts=starts, tracks=tracks, only=newest)
        fresh = time_trial_gaps(b, tt, kk, u)
        assert np.array_equal(kept[newest], fresh[newest], equal_nan=True) and np.isnan(kept[~newest]).all()
        checked += np.isfinite(fresh[newest]).sum()
    assert checked > 50 and len(memo) == 4  # gaps were taken, against kept tracks
