"""The stage result kernel on finishes whose crossings are known by construction."""
import numpy as np

from peloton.state.results import Crossings, line_crossings, rank_results, same_time_gap_s, stage_results

T0 = 1.78e9
LINE_KM = 20.0


def _crossings(bibs, times):
    """Crossings seen at the line by a fix there (known to the base uncertainty, 0.5 s)."""
    n = len(bibs)
    return Crossings(np.array(bibs), T0 + np.array(times, float), T0 + np.array(times, float),
                     np.full(n, LINE_KM), np.ones(n, bool), np.zeros(n))


def _by_bib(rows):
    return {r["bib"]: r for r in rows}


# consecutive wheels 0.6 s apart, then a 1.3 s gap, then 0.6 s, then 6.9 s
SPRINT = ([1, 2, 3, 4, 5, 6], [0.0, 0.6, 1.2, 2.5, 3.1, 10.0])


def test_one_second_rule_groups_riders_with_no_gap_of_a_second_between_consecutive_wheels():
    rows = _by_bib(rank_results("s", _crossings(*SPRINT), gap_s=1.0))
    # +-0.5 s each: riders 0.6 s apart are not ordered (a place range each), 10 s apart they are
    assert [rows[b]["position"] for b in SPRINT[0]] == [None, None, None, None, None, 6]
    assert [(rows[b]["place_min"], rows[b]["place_max"]) for b in SPRINT[0]] == [(1, 2), (1, 3), (2, 3), (4, 5),
                                                                                 (4, 5), (6, 6)]
    assert [rows[b]["order_decided"] for b in SPRINT[0]] == [False] * 5 + [True]
    assert "order not decided: places 1-2" in rows[1]["detail"] and rows[1]["source"] == "provisional"
    assert [rows[b]["time_behind_winner_s"] for b in SPRINT[0]] == [0.0, 0.6, 1.2, 2.5, 3.1, 10.0]
    # the chain: rider 3 is 1.2 s behind the winner but never 1 s behind the wheel ahead
    assert [rows[b]["credited_time_behind_s"] for b in SPRINT[0]] == [0.0, 0.0, 0.0, 2.5, 2.5, 10.0]
    assert [rows[b]["same_time_group"] for b in SPRINT[0]] == [1, 1, 1, 4, 4, 6]
    assert all(rows[b]["status"] == "finished" for b in SPRINT[0])


def test_three_second_rule_on_flat_stages():
    assert same_time_gap_s("PLN") == 3.0 and same_time_gap_s("VAL") == 1.0 and same_time_gap_s("HMG") == 1.0
    rows = _by_bib(rank_results("s", _crossings(*SPRINT), gap_s=same_time_gap_s("PLN")))
    assert [rows[b]["credited_time_behind_s"] for b in SPRINT[0]] == [0.0, 0.0, 0.0, 0.0, 0.0, 10.0]
    assert [rows[b]["time_behind_winner_s"] for b in SPRINT[0]] == [0.0, 0.6, 1.2, 2.5, 3.1, 10.0]


def test_a_rider_who_stops_in_the_last_3_km_gets_the_time_of_his_group():
    stops = {6: (T0 - 100, np.array([4, 5]))}  # rider 6 was with 4 and 5 when he stopped
    rows = _by_bib(rank_results("s", _crossings(*SPRINT), gap_s=1.0, stops=stops))
    assert rows[6]["credited_time_behind_s"] == 2.5 and rows[6]["same_time_group"] == 4
    assert rows[6]["time_behind_winner_s"] == 10.0 and rows[6]["position"] == 6  # his place is where he crossed
    assert "stopped" in rows[6]["detail"]


def _ride(bib, start_s, mps, ticks, stop=None):
    """Fixes of a rider leaving km 0 at ``start_s`` at ``mps``; ``stop`` = (from_s, for_s) stands still."""
    moving = np.maximum(ticks - start_s, 0.0)
    if stop is not None:
        a, d = stop
        moving = moving - np.clip(ticks - a, 0, d)
    km = moving * mps / 1000.0
    speed = np.full(ticks.size, mps * 3.6)
    if stop is not None:
        speed[(ticks >= stop[0]) & (ticks < stop[0] + stop[1])] = 0.0
    return np.full(ticks.size, bib), T0 + ticks, km, speed


def test_results_from_fixes_crossings_between_fixes_stop_in_the_finale_and_dnf():
    ticks = np.arange(0.0, 2200.0, 6.0)
    rides = [_ride(1, 0.0, 12.0, ticks), _ride(2, 0.4, 12.0, ticks), _ride(3, 20.0, 12.0, ticks),
             _ride(4, 20.5, 12.0, ticks, stop=(1500.0, 60.0)),  # stops 2.3 km out, in the group of 3
             _ride(5, 0.0, 12.0, ticks[ticks < 900])]  # last seen at km 10.7
    bib, t, km, speed = (np.concatenate(x) for x in zip(*rides))
    ktf = LINE_KM - km
    keep = ktf > -0.3  # trackers leave soon after the line
    bib, t, km, speed, ktf = bib[keep], t[keep], km[keep], speed[keep], ktf[keep]
    # true groups: riders within 1 s of each other share one (4 leaves his when he stops)
    group = np.where(np.isin(bib, [1, 2, 5]), 0, 1)
    group[(bib == 4) & (t >= T0 + 1500)] = 2
    usable = np.ones(t.size, bool)
    rows = _by_bib(stage_results("s", t, km, bib, usable, ktf, speed, usable, group, at_line_km=0.05,
                                 stopped_kph=3.0, stopped_min_s=30.0, gap_s=1.0))
    crossed = {1: 20000 / 12.0, 2: 0.4 + 20000 / 12.0, 3: 20.0 + 20000 / 12.0, 4: 80.5 + 20000 / 12.0}
    for b, at in crossed.items():  # interpolated between the fixes either side of the line (ms)
        assert abs(rows[b]["finish_time"] / 1000 - (T0 + at)) < 0.01
    # 1 and 2 cross 0.4 s apart between 6 s fixes: not ordered; 3 and 4, 20 s and a minute later, are
    assert [rows[b]["position"] for b in (1, 2, 3, 4)] == [None, None, 3, 4]
    assert rows[1]["place_max"] == rows[2]["place_max"] == 2 and rows[1]["place_min"] == 1
    assert rows[2]["credited_time_behind_s"] == 0.0 and abs(rows[3]["credited_time_behind_s"] - 20.0) < 0.01
    assert abs(rows[4]["time_behind_winner_s"] - 80.5) < 0.01
    assert abs(rows[4]["credited_time_behind_s"] - 20.0) < 0.01 and rows[4]["same_time_group"] == 3
    assert rows[5]["status"] == "DNF" and rows[5]["position"] is None and rows[5]["finish_time"] is None
    assert abs(rows[5]["last_km"] - 894 * 12.0 / 1000) < 0.01
    # the same stop 5 km out is raced time lost: no credit
    rides[3] = _ride(4, 20.5, 12.0, ticks, stop=(1250.0, 60.0))
    bib, t, km, speed = (np.concatenate(x) for x in zip(*rides))
    ktf = LINE_KM - km
    group = np.where(np.isin(bib, [1, 2, 5]), 0, 1)
    usable = np.ones(t.size, bool)
    rows = _by_bib(stage_results("s", t, km, bib, usable, ktf, speed, usable, group, at_line_km=0.05,
                                 stopped_kph=3.0, stopped_min_s=30.0, gap_s=1.0))
    assert abs(rows[4]["credited_time_behind_s"] - 80.5) < 0.01


def test_a_tracker_that_stops_short_of_the_line_finishes_at_his_last_speed():
    ticks = np.arange(0.0, 1700.0, 6.0)
    bib, t, km, speed = _ride(7, 0.0, 12.0, ticks)
    keep = km < LINE_KM - 0.3
    c = line_crossings(t[keep], km[keep], bib[keep], np.ones(keep.sum(), bool), LINE_KM - km[keep], speed[keep],
                       at_line_km=0.05)
    assert c.bib.tolist() == [7] and not c.seen_at_line[0]
    assert abs(c.crossed_t[0] - (T0 + 20000 / 12.0)) < 0.01
    # unknown smoothed speed (the end of a track): his last interval's
    c = line_crossings(t[keep], km[keep], bib[keep], np.ones(keep.sum(), bool), LINE_KM - km[keep],
                       np.full(keep.sum(), np.nan), at_line_km=0.05)
    assert abs(c.crossed_t[0] - (T0 + 20000 / 12.0)) < 0.01
    # standing 500 m out when his tracker stops: not a finish
    standing = np.minimum(km, LINE_KM - 0.5)
    keep = km < LINE_KM - 0.3
    c = line_crossings(t[keep], standing[keep], bib[keep], np.ones(keep.sum(), bool), LINE_KM - standing[keep],
                       np.zeros(keep.sum()), at_line_km=0.05)
    assert c.bib.size == 0


def test_time_trial_ranks_elapsed_time_from_each_start():
    c = _crossings([11, 12, 13, 14], [1000.0, 1050.0, 1100.0, 1200.0])
    starts = {11: T0 + 0.0, 12: T0 + 90.0, 13: T0 + 180.0}  # 14's start is not in the data
    rows = _by_bib(rank_results("s", c, gap_s=1.0, starts=starts))
    assert {b: rows[b]["elapsed_s"] for b in (11, 12, 13)} == {11: 1000.0, 12: 960.0, 13: 920.0}
    assert [rows[b]["position"] for b in (13, 12, 11)] == [1, 2, 3]
    assert rows[11]["time_behind_winner_s"] == 80.0 and rows[12]["credited_time_behind_s"] == 40.0
    assert rows[14]["position"] is None and rows[14]["elapsed_s"] is None and "start" in rows[14]["detail"]


def test_a_rider_who_stops_at_the_line_is_timed_at_his_speed_not_on_the_straight_line_to_his_next_fix():
    ticks = np.arange(0.0, 1700.0, 6.0) + 3.0  # fixes 2.3 s before and 3.7 s after the true crossing (1666.7 s)
    bib, t, km, speed = _ride(8, 0.0, 12.0, ticks)
    km = np.minimum(km, LINE_KM)  # he stands at the line: his fixes past it read 0 km to go
    c = line_crossings(t, km, bib, np.ones(t.size, bool), LINE_KM - km, speed, at_line_km=0.05)
    assert c.seen_at_line[0] and abs(c.crossed_t[0] - (T0 + 20000 / 12.0)) < 0.05


def test_riders_still_riding_when_the_input_ends_are_racing_not_dnf():
    """A recording that stops before the last riders reach the line says nothing of whether they finish."""
    last_seen = {7: (T0 + 10.0 - 30.0, 15.2),  # seen 30 s before the input's end: still on the road
                 8: (T0 - 3_600.0, 9.8)}  # silent for an hour before it: did not finish
    rows = _by_bib(rank_results("s", _crossings(*SPRINT), gap_s=1.0, last_seen=last_seen))
    assert rows[7]["status"] == "racing" and rows[7]["position"] is None and rows[7]["last_km"] == 15.2
    assert "still racing" in rows[7]["detail"]
    assert rows[8]["status"] == "DNF" and rows[8]["last_km"] == 9.8
    assert rows[1]["status"] == "finished" and rows[1]["place_min"] == 1 and rows[7]["source"] == "provisional"


def test_a_crossing_extrapolated_from_far_short_of_the_line_orders_nobody_it_overlaps():
    """450 m at 55 km/h is 29 s at his last speed: +-6.4 s. Riders 3 s apart are not ordered; 20 s apart they are."""
    c = Crossings(np.array([1, 2, 3]), T0 + np.array([-29.5, -26.5, 20.0 - 29.5]), T0 + np.array([0.0, 3.0, 20.0]),
                  np.full(3, LINE_KM), np.zeros(3, bool), np.full(3, 0.45))
    rows = _by_bib(rank_results("s", c, gap_s=1.0))
    assert [rows[b]["position"] for b in (1, 2, 3)] == [None, None, 3]
    assert [(rows[b]["place_min"], rows[b]["place_max"]) for b in (1, 2, 3)] == [(1, 2), (1, 2), (3, 3)]
    # the 3 s gap is not decided either: one same-time group, no rider credited behind the other
    assert rows[2]["credited_time_behind_s"] == 0.0 and rows[2]["same_time_group"] == 1
    assert abs(rows[1]["finish_uncertainty_s"] - 6.4) < 0.01


def test_a_simulated_race_whose_riders_cross_well_apart_gets_decided_places(tmp_path):
    """End to end through Beam on a simulated race (exact crossings): every true crossing lies in its interval,
    every decided place is the true one, and the riders who crossed seconds clear of the others are decided."""
    import gzip
    import json

    from apache_beam.testing.test_pipeline import TestPipeline

    from peloton.match.stage import stage_from_recording
    from peloton.sim.evaluate import read_table
    from peloton.sim.simulate import SimParams, recording_document, simulate_race
    from pipelines.replay import build_replay
    from tests.helpers import line_course

    race = simulate_race(line_course([[0, 0], [30000, 0]]),
                         SimParams(riders=30, seed=3, breakaway_size=1, caught=False, stops=0, wind_kph=0.0))
    doc = recording_document(race, "30 km, a lone breakaway stays away")
    path = tmp_path / "sim.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    p = TestPipeline()
    build_replay(p, stage_from_recording(doc), str(path), str(tmp_path / "out"))
    p.run().wait_until_finish()
    rows = [r for r in read_table(str(tmp_path / "out"), "results") if r["status"] == "finished"]
    true_t = dict(zip(race.bibs.tolist(), race.finish_t.tolist()))
    true_place = {b: i + 1 for i, b in enumerate(sorted(true_t, key=true_t.get))}
    assert len(rows) == 30
    for r in rows:
        assert abs(r["finish_time"].timestamp() - true_t[r["bib"]]) <= r["finish_uncertainty_s"]
        assert r["place_min"] <= true_place[r["bib"]] <= r["place_max"]
    decided = [r for r in rows if r["order_decided"]]
    assert all(r["position"] == true_place[r["bib"]] for r in decided)
    clear = [b for b, t in true_t.items() if min(abs(t - o) for c, o in true_t.items() if c != b) > 8.0]
    assert clear and {r["bib"] for r in decided} >= set(clear)
    winner = min(true_t, key=true_t.get)
    assert [r["position"] for r in rows if r["bib"] == winner] == [1]  # the lone winner, a minute clear


def test_a_credited_time_is_decided_only_where_every_gap_ahead_of_him_to_his_group_head_is():
    """+-0.5 s each: 0.6 s between wheels may be 1.6 s (a split under the 1 s rule) or 0; the 1.3 s gap is ordered
    but may be 0.3 s. Only the winner and the rider 6.9 s clear have a decided credited time."""
    rows = _by_bib(rank_results("s", _crossings(*SPRINT), gap_s=1.0))
    assert [rows[b]["credited_time_decided"] for b in SPRINT[0]] == [True, False, False, False, False, True]
    assert [rows[b]["credited_time_min_s"] for b in SPRINT[0]] == [0.0, 0.0, 0.0, 0.0, 0.0, 10.0]
    assert [rows[b]["credited_time_max_s"] for b in SPRINT[0]] == [0.0, 0.6, 1.2, 2.5, 3.1, 10.0]
    assert all(r["credited_time_min_s"] <= r["credited_time_behind_s"] <= r["credited_time_max_s"]
               for r in rows.values())
    assert "credited time not decided: 0-2.5 s" in rows[4]["detail"]
    # exact crossings (a simulator's truth): the rule alone, every credited time decided
    exact = _by_bib(rank_results("s", _crossings(*SPRINT), gap_s=1.0, uncertainty_s=np.zeros(6)))
    assert [exact[b]["credited_time_behind_s"] for b in SPRINT[0]] == [0.0, 0.0, 0.0, 2.5, 2.5, 10.0]
    assert [exact[b]["position"] for b in SPRINT[0]] == [1, 2, 3, 4, 5, 6]
    assert all(r["credited_time_decided"] for r in exact.values())
    # a rider who stopped in the finale takes his group's range with its time
    stops = {6: (T0 - 100, np.array([4, 5]))}
    rows = _by_bib(rank_results("s", _crossings(*SPRINT), gap_s=1.0, stops=stops))
    assert (rows[6]["credited_time_min_s"], rows[6]["credited_time_max_s"]) == (0.0, 2.5)
    assert not rows[6]["credited_time_decided"]
