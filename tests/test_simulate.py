"""The race simulator: physics a rider would recognise, scenarios that happen, a recording the pipeline reads."""
import gzip
import json

import numpy as np
import pytest

from peloton.ingest.feed import parse_message
from peloton.match.course import Course
from peloton.match.stage import read_course_file, stage_from_recording
from peloton.sim.evaluate import adjusted_rand_index, group_accuracy, read_table
from peloton.sim.simulate import PLACEHOLDER, SimParams, recording_document, simulate_race, truth_document
from tests.conftest import COURSES
from tests.helpers import line_course

QUIET = dict(breakaway_size=0, stops=0, wind_kph=0.0, dropouts_per_rider_hour=0.0, late_tracker_share=0.0)


def _climb_course(flat_km=8.0, climb_km=5.0, gradient=0.08):
    """Straight road: flat, then a steady climb."""
    s = np.linspace(0.0, (flat_km + climb_km) * 1000.0, 400)
    ele = np.where(s <= flat_km * 1000, 100.0, 100.0 + (s - flat_km * 1000) * gradient)
    c = line_course(np.c_[s, np.zeros_like(s)])
    return Course(c.lat, c.lon, ele)


def _real_course_slice(path, km):
    route = read_course_file(str(path))
    lat, lon, ele = (np.array([p[i] if p[i] is not None else np.nan for p in route], float) for i in range(3))
    course = Course(lat, lon, ele)
    keep = course.cum_m <= km * 1000.0
    return Course(course.lat[keep], course.lon[keep], course.ele[keep] if course.ele is not None else None)


def test_a_bunch_on_the_flat_rides_together_at_a_racing_speed():
    course = line_course([[0, 0], [20000, 0]])
    race = simulate_race(course, SimParams(riders=40, seed=1, **QUIET))
    riding = (race.true_s > 2000) & (race.true_s < 18000)
    kph = race.true_kph[riding]
    assert 35 < np.median(kph) < 50
    mid = race.tick_t.size // 2
    assert len(set(race.group[mid][race.group[mid] >= 0].tolist())) == 1  # one bunch
    hours = (race.tick_t[-1] - race.tick_t[0]) / 3600
    assert 20 / 50 < hours < 20 / 33


def test_a_steep_climb_is_slow_and_splits_the_bunch():
    course = _climb_course()
    race = simulate_race(course, SimParams(riders=40, seed=2, hz=1.0, **QUIET))
    on_climb = (race.true_s > 9000) & (race.true_s < 12500)
    assert np.median(race.true_kph[on_climb]) < 25
    top = np.flatnonzero((race.true_s >= 12500).any(axis=1))[0]
    groups_near_top = race.group[top][race.group[top] >= 0]
    assert len(set(groups_near_top.tolist())) > 1  # the climb shed riders
    # and the strongest riders lead over the top
    assert race.true_s[top].max() > race.true_s[top][race.group[top] >= 0].min() + 100


@pytest.mark.slow
@pytest.mark.parametrize("caught", [True, False])
def test_the_breakaway_is_caught_or_survives_as_the_scenario_says(caught):
    course = line_course([[0, 0], [50000, 0]])
    params = SimParams(riders=30, seed=3, breakaway_size=3, caught=caught, stops=0, wind_kph=0.0)
    race = simulate_race(course, params)
    assert len(race.breakaway) == 3
    assert (race.caught_at is not None) == caught
    brk = np.isin(race.bibs, race.breakaway)
    lead = race.true_s[:, brk].max(axis=1) - race.true_s[:, ~brk].max(axis=1)
    assert lead.max() > 1000  # it went clear
    clear = race.tick_t[np.argmax(lead > 100)]
    if caught:  # caught before the line, after it had gone clear
        assert clear + 300 < race.caught_at < race.tick_t[-1]
    else:  # still ahead at the line
        finish = np.argmax(race.true_s[:, brk].max(axis=1) >= course.length_m - 1)
        assert lead[finish] > 100


@pytest.mark.slow
def test_a_stopped_rider_stands_still_then_rides_on():
    course = line_course([[0, 0], [30000, 0]])
    race = simulate_race(course, SimParams(riders=20, seed=4, hz=1.0, breakaway_size=0, stops=1, wind_kph=0.0))
    (bib, at, seconds), = race.stops
    i = list(race.bibs).index(bib)
    during = (race.tick_t > at + 5) & (race.tick_t < at + seconds - 5)
    assert np.all(race.true_kph[during, i] == 0)
    assert race.true_s[-1, i] >= course.length_m - 1  # he finished


def test_the_recording_is_in_the_official_feed_shape_with_the_truth_beside_it():
    course = line_course([[0, 0], [15000, 0]])
    race = simulate_race(course, SimParams(riders=25, seed=5, late_tracker_share=0.3,
                                           dropouts_per_rider_hour=2.0))
    doc = recording_document(race, "test course")
    stage = stage_from_recording(doc)
    assert stage.length_km == pytest.approx(15.0, abs=0.01)
    assert stage.course().finish_km == pytest.approx(15.0, abs=0.01)
    rows, placeholders, dead = 0, 0, 0
    for e in doc["events"]:
        fixes, letters = parse_message(stage.stage_id, "tick", e["data"])
        rows += len(fixes)
        dead += len(letters)
        placeholders += sum(1 for r in json.loads(e["data"])["data"]["Riders"]
                            if (r["Latitude"], r["Longitude"]) == PLACEHOLDER)
    assert placeholders > 0 and dead == placeholders  # trackers not live yet are dead letters
    full = len(doc["events"]) * 25
    assert rows + dead < full  # dropouts and riders leaving after the finish
    truth = truth_document(race)
    stamps = [json.loads(e["data"])["data"]["TimeStamp"] for e in doc["events"]]
    assert truth["ticks"] == stamps
    assert len(truth["group"]) == len(stamps) and len(truth["group"][0]) == 25


def test_adjusted_rand_index_on_partitions_known_by_hand():
    assert adjusted_rand_index(np.array([0, 0, 1, 1]), np.array([5, 5, 3, 3])) == 1.0
    assert adjusted_rand_index(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])) == pytest.approx(0.5714285714)
    assert adjusted_rand_index(np.array([0, 0, 0, 0]), np.array([0, 1, 2, 3])) == 0.0
    assert adjusted_rand_index(np.array([1, 1, 1]), np.array([2, 2, 2])) == 1.0


@pytest.mark.slow
def test_replayed_simulation_finds_the_true_groups(tmp_path):
    """End to end: simulate the first 40 km of a real mountain stage, replay it through Beam, score the groups."""
    from apache_beam.testing.test_pipeline import TestPipeline

    from pipelines.replay import build_replay

    course = _real_course_slice(COURSES / "2023" / "05" / "trace_2023_5.geojson", 40.0)
    race = simulate_race(course, SimParams(riders=60, seed=6, breakaway_size=2))
    doc = recording_document(race, "Pau, first 40 km")
    path = tmp_path / "sim.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    stage = stage_from_recording(doc)
    p = TestPipeline()
    build_replay(p, stage, str(path), str(tmp_path / "out"))
    p.run().wait_until_finish()
    rows = read_table(str(tmp_path / "out"), "rider_state")
    score = group_accuracy(truth_document(race), rows)
    assert score["ticks"] > 300
    assert score["median"] >= 0.95 and score["mean"] >= 0.9
    with_gap = [r for r in rows if r["gap_to_leader_s"] is not None]
    assert len(with_gap) > 0.9 * len(rows)
    # the breakaway's move is in the race events, when it happened
    events = read_table(str(tmp_path / "out"), "race_events")
    went = [e for e in events if e["event_type"] in ("attack", "split")
            and set(e["bibs"]) & set(race.breakaway)
            and abs(e["event_time"].timestamp() - race.attack_at) < 120]
    assert went, [(e["event_type"], e["bibs"]) for e in events[:20]]


def test_the_truth_keeps_the_winner_as_the_reference_after_he_finishes_and_says_when_each_rider_crossed():
    course = line_course([[0, 0], [30000, 0]])
    race = simulate_race(course, SimParams(riders=30, seed=3, breakaway_size=3, caught=False, stops=0,
                                           wind_kph=0.0))
    assert np.all(np.isfinite(race.finish_t))  # everyone crossed the line
    brk = np.isin(race.bibs, race.breakaway)
    winner = int(np.argmin(race.finish_t))
    assert brk[winner] and race.finish_t[~brk].min() - race.finish_t[winner] > 20
    # the true crossing lies between the last tick short of the line and the first at it
    ticks_at_line = race.tick_t[race.true_s[:, winner] >= course.length_m - 1e-6]
    assert race.tick_t[0] < ticks_at_line[0] - 6 <= race.finish_t[winner] <= ticks_at_line[0]
    # once the winner has crossed, the riders still racing read the time since he passed their point
    after = race.tick_t > race.finish_t[winner] + 1
    racing = after[:, None] & (race.true_s < course.length_m - 1e-6) & ~brk[None, :]
    gaps = race.gap_to_leader_s[racing]
    assert gaps.size and np.all(gaps > 20)
    # just before a rider crosses, his gap is about his time behind the winner at the line
    for i in np.flatnonzero(~brk)[:5].tolist():
        last = np.flatnonzero(racing[:, i])[-1]
        assert abs(race.gap_to_leader_s[last, i] - (race.finish_t[i] - race.finish_t[winner])) < 2.0
    truth = truth_document(race)
    assert set(truth["finish"]) == {str(b) for b in race.bibs.tolist()}


def test_a_sprint_finale_catches_the_breakaway_late_then_leads_out_at_the_published_speeds():
    course = line_course([[0, 0], [40000, 0]])
    params = SimParams(riders=30, seed=4, breakaway_size=2, breakaway_km=5.0, stops=0, wind_kph=0.0,
                       finale="sprint", late_tracker_share=0.0)
    race = simulate_race(course, params)
    assert race.caught_at is not None
    caught = np.searchsorted(race.tick_t, race.caught_at)
    assert 2.0 < 40.0 - race.true_s[caught].max() / 1000.0 < 16.0  # caught in the last kilometres
    first = int(np.nanargmin(race.finish_t))
    s, t = race.true_s[:, first], race.tick_t
    on_road = s < course.length_m - 1.0

    def kph(a_km, b_km):  # the winner's average speed from a_km to b_km to go
        at = [np.interp(course.length_m - k * 1000.0, s[on_road], t[on_road]) if k > 0 else race.finish_t[first]
              for k in (a_km, b_km)]
        return 3.6 * (a_km - b_km) * 1000.0 / (at[1] - at[0])

    assert 50.0 < kph(10, 0) < 57.0  # last 10 km averages of 50-55 km/h, a calm flat road
    assert kph(1, 0) > 58.0  # the last kilometre at lead-out speeds
    assert kph(10, 0) > kph(20, 10) + 2.0
    finished = race.finish_t[np.isfinite(race.finish_t)]
    assert (finished - finished.min() < 3.0).sum() >= 10  # a bunch sprints for the line


def test_the_steady_finale_is_the_default_and_an_unknown_one_is_refused():
    assert SimParams().finale == "steady"
    with pytest.raises(ValueError):
        simulate_race(line_course([[0, 0], [2000, 0]]), SimParams(riders=4, finale="sprnt"))


def test_behind_a_breakaway_let_go_the_bunch_still_sprints_for_the_places():
    course = line_course([[0, 0], [40000, 0]])
    params = SimParams(riders=30, seed=4, breakaway_size=2, breakaway_km=5.0, stops=0, wind_kph=0.0,
                       finale="sprint", caught=False, late_tracker_share=0.0)
    race = simulate_race(course, params)
    assert race.caught_at is None
    order = np.argsort(race.finish_t)
    assert set(race.bibs[order[:2]].tolist()) == set(race.breakaway)  # the breakaway wins
    bunch = [i for i in order.tolist() if race.bibs[i] not in set(race.breakaway)][0]
    s, t = race.true_s[:, bunch], race.tick_t
    on_road = s < course.length_m - 1.0
    at_2 = np.interp(course.length_m - 2000.0, s[on_road], t[on_road])
    at_4 = np.interp(course.length_m - 4000.0, s[on_road], t[on_road])
    assert 2000.0 / (race.finish_t[bunch] - at_2) > 2000.0 / (at_2 - at_4) * 1.15  # the sprint for the places
    assert race.finish_t[bunch] - race.finish_t[order[0]] > 10.0
