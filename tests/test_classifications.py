"""The classifications kernel: scales on hand-made results, undecided orders, the standings-before parsers."""
import json

import numpy as np
import pytest

from peloton.state.classifications import (Standings, StandingsError, classified_points, parse_standings,
                                     passage_intervals, places_from_intervals, scale_range, stage_classifications,
                                     standings_csv, standings_from_rows)


def _result(bib, position, credited, status="finished", t=1000.0, **extra):
    return {"bib": bib, "status": status, "position": position, "credited_time_behind_s": credited,
            "event_time": int((t + (position or 0)) * 1000), **extra}


def _by(rows, classification):
    return {r["bib"] if r["bib"] is not None else r["team"]: r for r in rows if r["classification"] == classification}


TEAMS = {b: ("A" if b <= 4 else "B" if b <= 8 else "C") for b in range(1, 21)}


def test_scales_on_a_hand_made_flat_stage_hilly_stage_and_time_trial():
    results = [_result(b, b, 0.0 if b <= 3 else 10.0 * b) for b in range(1, 21)]
    rows = stage_classifications("s", results, [], [], "PLN", 2026, None, TEAMS, {})
    points = _by(rows, "points")
    assert [points[b]["value"] for b in (1, 2, 3, 4, 15)] == [50, 30, 20, 18, 2]
    assert 16 not in points  # no points beyond 15th: not in the points classification
    gc = _by(rows, "general")
    assert gc[1]["value"] == -10 and gc[2]["value"] == -6 and gc[3]["value"] == -4 and gc[4]["value"] == 40
    assert gc[1]["position"] == 1 and gc[3]["gap_to_leader"] == 6 and all(r["decided"] for r in gc.values())
    teams = _by(rows, "teams")
    assert teams["A"]["value"] == 0 + 0 + 0 and teams["B"]["value"] == 50 + 60 + 70 and teams["A"]["position"] == 1
    hilly = _by(stage_classifications("s", results, [], [], "VAL", 2026, None, TEAMS, {}), "points")
    assert [hilly[b]["value"] for b in (1, 2, 3, 15)] == [30, 25, 22, 2]
    tt = stage_classifications("s", results, [], [], "PAS", 2026, None, TEAMS, {})
    assert [_by(tt, "points")[b]["value"] for b in (1, 2, 15)] == [20, 17, 1]
    assert _by(tt, "general")[1]["value"] == 0  # no bonus in a time trial


def test_sprint_summit_and_bonus_point_scales_from_passages():
    t0 = 5000.0
    riders = np.arange(1, 11)
    lo = t0 + 20.0 * riders  # 20 s apart: every order decided
    points = [("sprint", (20, 17, 15, 13, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 50.0, "X"),
              ("mountains", (20, 15, 12, 10, 8, 6, 4, 2), 60.0, "HC"), ("mountains", (1,), 70.0, "cat 4"),
              ("bonus", (8, 5, 2), 80.0, "B")]
    passages = [(riders, lo, lo + 8.0)] * 4
    results = [_result(b, 11 - b, 0.0) for b in range(1, 11)]  # reversed at the line, one same-time group
    rows = stage_classifications("s", results, points, passages, "HMG", 2026, None, TEAMS, {})
    mtn, pts, gc = _by(rows, "mountains"), _by(rows, "points"), _by(rows, "general")
    assert mtn[1]["value"] == 21 and mtn[2]["value"] == 15 and mtn[8]["value"] == 2 and 9 not in mtn
    assert pts[1]["value"] == 20 + 6  # sprint 1st, 10th at the line
    assert pts[10]["value"] == 6 + 20 and pts[5]["value"] == 11 + 10  # sprint 10th, 1st at the line
    assert gc[1]["value"] == -8 and gc[10]["value"] == -10 and gc[2]["value"] == -5 and gc[3]["value"] == -2


def test_an_undecided_same_time_group_gives_ranges_never_a_guess():
    # three riders at places 1-3 whose order the data does not decide, then a fourth alone
    results = [_result(b, None, 0.0, place_min=1, place_max=3, order_decided=False) for b in (1, 2, 3)]
    results.append(_result(4, 4, 30.0, place_min=4, place_max=4, order_decided=True))
    rows = stage_classifications("s", results, [], [], "PLN", 2026, None, TEAMS, {})
    pts, gc = _by(rows, "points"), _by(rows, "general")
    for b in (1, 2, 3):
        assert (pts[b]["value_min"], pts[b]["value_max"]) == (20, 50)
        assert pts[b]["value"] is None and pts[b]["position"] is None and not pts[b]["decided"]
        assert (pts[b]["place_min"], pts[b]["place_max"]) == (1, 3)
        # the credited time is exact (one group); only the bonus hangs on the order: 4..10 s
        assert (gc[b]["value_min"], gc[b]["value_max"]) == (-10, -4) and gc[b]["value"] is None
        assert "4..10 s (undecided)" in gc[b]["detail"] and not gc[b]["decided"]
    assert pts[4]["decided"] and pts[4]["value"] == 18 and pts[4]["position"] == 4
    assert gc[4]["decided"] and gc[4]["value"] == 30 and gc[4]["position"] == 4 and gc[4]["gap_to_leader"] is None


def test_passages_closer_than_their_uncertainty_are_not_ordered():
    # two riders' tracks crossing km 10 two seconds apart, a third 30 s later, a fourth seen only past it
    t = np.r_[0.0, 30.0, 0.0, 30.0, 0.0, 30.0, 100.0]
    km = np.r_[9.8, 10.2, 9.8, 10.2 - 0.027, 9.2, 9.6, 11.0]
    bib = np.r_[1, 1, 2, 2, 3, 3, 4]
    km[5] = 10.4
    t[4], t[5] = 30.0, 60.0
    riders, lo, hi = passage_intervals(bib, t, km, [10.0])
    assert riders.tolist() == [1, 2, 3, 4]
    assert np.all(hi[:3, 0] - lo[:3, 0] <= 8.0) and lo[3, 0] == -np.inf and hi[3, 0] == 100.0
    pmin, pmax = places_from_intervals(lo[:3, 0], hi[:3, 0])
    assert pmin.tolist() == [1, 1, 3] and pmax.tolist() == [2, 2, 3]
    pmin, pmax = places_from_intervals(lo[:, 0], hi[:, 0])  # the rider seen only past it may be anywhere before
    assert pmax.tolist() == [3, 3, 4, 4] and pmin[3] == 1
    lo_s, hi_s = scale_range((8, 5, 2), [1, 3, np.nan], [2, 4, np.nan])
    assert lo_s.tolist() == [5, 0, 0] and hi_s.tolist() == [8, 2, 0]


def test_standings_before_and_riders_absent_from_them(tmp_path):
    results = [_result(b, b, 0.0 if b <= 3 else 60.0) for b in range(1, 8)]
    before = Standings(gc_s={1: 1000.0, 2: 900.0, 3: 950.0, 4: 890.0, 5: 2000.0, 6: 2000.0},
                       points={5: 40.0}, source="t")
    rows = stage_classifications("s", results, [], [], "PLN", 2026, before, TEAMS,
                                 {1: "2001-01-01", 2: "2000-12-31", 4: "2003-05-01"})
    gc = _by(rows, "general")
    assert 7 not in gc  # not in the standings before: unclassified
    assert gc[4]["value"] == 950 and gc[2]["value"] == 894 and gc[2]["position"] == 1 and gc[3]["value"] == 946 and gc[3]["position"] == 2 and gc[4]["position"] == 3
    assert (gc[5]["place_min"], gc[5]["place_max"]) == (5, 6) and not gc[5]["decided"]  # equal times: a tie
    assert _by(rows, "points")[5]["value"] == 56
    young = _by(rows, "young")
    assert set(young) == {1, 4} and young[4]["position"] == 1


STAGE_BEFORE = [{"_bind": "rankingTypeArrival-2026-3", "type": "itg", "rankings": [
    {"bib": 1, "position": 1, "absolute": 36000000, "relative": 0, "bonus": 10000},
    {"bib": 2, "position": 2, "absolute": 36012000, "relative": 12000, "bonus": 0}]},
    {"_bind": "rankingTypeArrival-2026-3", "type": "ipg", "rankings": [{"bib": 2, "position": 1, "absolute": 0,
                                                                         "points": 70}]},
    {"_bind": "rankingTypeArrival-2026-3", "type": "ite", "rankings": [{"bib": 1, "absolute": 1}]}]


def test_standings_parsers_read_good_input():
    s = parse_standings(json.dumps(STAGE_BEFORE), "rk.json", [1, 2, 3], 2026, 4)
    assert s.gc_s == {1: 36000.0, 2: 36012.0} and s.points == {2: 70.0}
    c = parse_standings("bib,gc_time_s,points,mountain_points\n1,100,5,\n2,112.5,,3\n", "s.csv", [1, 2, 3])
    assert c.gc_s == {1: 100.0, 2: 112.5} and c.points == {1: 5.0, 2: 0.0} and c.mountains == {1: 0.0, 2: 3.0}
    assert Standings.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_chained_standings_carry_ranges_through_the_csv_and_into_the_next_stage():
    # stage 1: riders 1-3 in one undecided same-time group at places 1-3 (bonus 4..10 s), rider 4 alone
    results = [_result(b, None, 0.0, place_min=1, place_max=3, order_decided=False) for b in (1, 2, 3)]
    results.append(_result(4, 4, 30.0))
    after = standings_from_rows(stage_classifications("s1", results, [], [], "PLN", 2026, None, TEAMS, {}), "s1")
    assert after.gc_s[1] == -10 and after.gc_s_max[1] == -4 and after.gc_s[4] == 30 and 4 not in after.gc_s_max
    assert after.points[1] == 20 and after.points_max[1] == 50 and after.points[4] == 18
    text = standings_csv(after)
    assert text.splitlines()[0] == "bib,gc_time_s,points,mountain_points,gc_time_max_s,points_max,mountain_points_max"
    again = parse_standings(text, "after.csv", [1, 2, 3, 4])
    assert again.gc_s == after.gc_s and again.gc_s_max == after.gc_s_max and again.points_max == after.points_max
    # stage 2, everyone together at the line and no points: the range of stage 1 is carried, never collapsed
    results2 = [_result(b, b, 0.0) for b in (1, 2, 3, 4)]
    gc = _by(stage_classifications("s2", results2, [], [], "PAS", 2026, again, TEAMS, {}), "general")
    assert (gc[1]["value_min"], gc[1]["value_max"], gc[1]["decided"]) == (-10, -4, False)
    assert gc[4]["value"] == 30 and gc[4]["position"] == 4 and gc[4]["decided"]


@pytest.mark.parametrize("text, message", [
    ("bib,time\n1,2\n", "header"),
    ("bib,gc_time_s\n1,abc\n", "not a number"),
    ("bib,gc_time_s\n1,10\n1,11\n", "twice"),
    ("bib,gc_time_s\n99,10\n", "not on the start list"),
    ("bib,gc_time_s,points\n1,-5,-1\n", "out of range"),  # a time may be negative (relative), points not
    ("bib,gc_time_s,gc_time_max_s\n1,10,9\n", "upside down"),
    ("bib,gc_time_s,bonus\n1,10,9\n", "unknown column"),
    ("[{\"type\": \"itg\"}]", "not a Race Center rankings document"),
    ("{not json", "not JSON"),
    (json.dumps(STAGE_BEFORE).replace("2026-3", "2026-7"), "after stage 7"),
    (json.dumps(STAGE_BEFORE).replace("2026-3", "2025-3"), "of 2025"),
    (json.dumps([{"type": "itg", "rankings": [{"bib": 1, "absolute": "x"}]}]), "no usable value"),
    (json.dumps([{"type": "ipg", "rankings": [{"bib": 1, "points": 3}]}]), "no general classification"),
])
def test_standings_parsers_refuse_bad_input_with_one_line(text, message):
    with pytest.raises(StandingsError) as err:
        parse_standings(text, "f", [1, 2, 3], 2026, 4)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_stage4_checkpoints_give_its_sprint_and_summits(stage4):
    points = classified_points(stage4.checkpoints, stage4.stage_type, stage4.length_km)
    kinds = [(k, round(km, 2), scale[0]) for k, scale, km, _ in points]
    assert ("sprint", 93.34, 20) in kinds
    assert [k for k in kinds if k[0] == "mountains"] == [("mountains", 48.19, 1), ("mountains", 64.82, 2),
                                                          ("mountains", 104.82, 5), ("mountains", 146.65, 5)]
    assert not [k for k in kinds if k[0] == "bonus"]  # no bonus point in this stage's checkpoints


# ---------------------------------------------------------------------------------------------------------
# through the real replay graphs, on the stage 4 finish (15:37-15:43: the two leaders, then the next groups)


def _run(tmp_path, name, recording, stage, causal):
    from apache_beam.testing.test_pipeline import TestPipeline

    from pipelines.replay import build_replay
    from tests.conftest import write_recording

    path = write_recording(tmp_path / f"{name}.json.gz", recording)
    out = tmp_path / f"out-{name}"
    p = TestPipeline()
    build_replay(p, stage, str(path), str(out), causal=causal)
    p.run().wait_until_finish()
    return out


@pytest.fixture(scope="module")
def finish_replays(tmp_path_factory, stage4_recording, stage4):
    import dataclasses

    from peloton.sim.evaluate import read_table
    from tests.conftest import slice_recording

    tmp = tmp_path_factory.mktemp("classif")
    finish = slice_recording(stage4_recording, 1560, 1590)
    # standings before: every rider on the start list but bib 1 ... (made up: the data has none before stage 4)
    bibs = stage4.start_list()
    csv_text = "bib,gc_time_s,points\n" + "".join(f"{b},{36000 + 7 * (i % 40)},{i % 3}\n"
                                                  for i, b in enumerate(bibs) if b != bibs[0])
    standings = parse_standings(csv_text, "before.csv", bibs, stage4.year, stage4.number)
    stage = dataclasses.replace(stage4, standings_before=standings.to_dict())
    written = {kind: read_table(str(_run(tmp, kind, finish, stage, kind == "causal")), "classifications")
               for kind in ("hindsight", "causal")}
    # the classifications after the stage (the virtual general classification's rows, during it, follow each
    # replay's own gaps: tests/test_virtual_gc.py, test_engine.py, test_live_pipeline.py)
    out = {kind: _after_stage(rows) for kind, rows in written.items()}
    assert all(len(rows) > len(out[kind]) for kind, rows in written.items())  # virtual rows were written too
    results = read_table(str(tmp / "out-hindsight"), "results")
    return out, results, bibs[0]


def _after_stage(rows):
    return [r for r in rows if r["classification"] != "virtual_general"]


def test_stage4_replay_writes_classifications(finish_replays):
    out, results, absent = finish_replays
    rows = out["hindsight"]
    kinds = {r["classification"] for r in rows}
    assert {"general", "points", "mountains", "young", "teams"} <= kinds
    finished = {r["bib"] for r in results if r["status"] == "finished"}
    gc = {r["bib"]: r for r in rows if r["classification"] == "general"}
    assert set(gc) == finished - {absent}  # the rider absent from the standings before is unclassified
    # the slice starts near the finish: no passage at the sprint or the summits was seen, so no rider's sprint
    # or mountains points are decided
    mountains = [r for r in rows if r["classification"] == "mountains"]
    assert mountains and all(not r["decided"] and r["value"] is None and r["position"] is None for r in mountains)
    assert all(r["value_max"] - r["value_min"] == 1 + 2 + 5 + 5 for r in mountains)  # cat 4, 3, 2, 2: anyone's
    points = [r for r in rows if r["classification"] == "points"]
    # the sprint is anyone's (20 points) and the order at the line is not decided in front (the honest result)
    assert points and all(not r["decided"] and r["value_max"] - r["value_min"] >= 20 for r in points)
    # who may have won the stage has a bonus that is a range, never a guessed 10 s
    front = [r for r in results if r.get("place_min") == 1 and r["bib"] in gc]
    assert front and all(r.get("position") == 1 or "bonus 0..10 s (undecided)" in gc[r["bib"]]["detail"]
                         for r in front)
    assert len({(r["classification"], r["bib"], r["team"]) for r in rows}) == len(rows)


def test_causal_final_classifications_equal_the_hindsight_ones(finish_replays):
    from tests.helpers import canonical_rows

    out, _, _ = finish_replays
    hindsight, causal = out["hindsight"], out["causal"]
    assert hindsight and causal

    def decided(rows):
        return canonical_rows([r for r in rows if r["decided"]])

    assert decided(causal) == decided(hindsight)
    assert len(causal) == len(hindsight)


# ---------------------------------------------------------------------------------------------------------
# the command line


@pytest.fixture(scope="module")
def finish_slice(tmp_path_factory, stage4_recording):
    from tests.conftest import slice_recording, write_recording

    return write_recording(tmp_path_factory.mktemp("cli") / "finish.json.gz",
                           slice_recording(stage4_recording, 1560, 1575))


@pytest.mark.parametrize("content, says", [
    ("bib,gc_time_s\n999,100\n", "bib 999 is not on the start list"),
    ("bib;gc\n1;2\n", "header bib,gc_time_s"),
    (json.dumps(STAGE_BEFORE).replace("2026-3", "2026-9"), "after stage 9; before stage 4"),
])
def test_replay_refuses_bad_standings_in_one_line(tmp_path, capsys, finish_slice, content, says):
    from pipelines.cli import main

    path = tmp_path / "before"
    path.write_text(content)
    assert main(["replay", str(finish_slice), "--out", str(tmp_path / "out"), "--standings-before", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("peloton: error: ") and says in err[0], err


def test_replay_with_standings_before_writes_the_general_classification(tmp_path, finish_slice, stage4):
    from peloton.sim.evaluate import read_table
    from pipelines.cli import main

    bibs = stage4.start_list()
    path = tmp_path / "before.csv"
    path.write_text("bib,gc_time_s\n" + "".join(f"{b},{50000 - b}\n" for b in bibs))
    assert main(["-q", "replay", str(finish_slice), "--out", str(tmp_path / "out"),
                 "--standings-before", str(path)]) == 0
    rows = read_table(str(tmp_path / "out"), "classifications")
    gc = [r for r in rows if r["classification"] == "general"]
    results = {r["bib"]: r for r in read_table(str(tmp_path / "out"), "results")}
    assert gc
    for r in gc:  # standings before + credited time - bonus, bonus 10/6/4 to the first three at the line
        res = results[r["bib"]]
        most, least = ({1: 10, 2: 6, 3: 4}.get(res[k], 0) for k in ("place_min", "place_max"))
        assert r["value_min"] <= 50000 - r["bib"] + res["credited_time_min_s"] - most + 1e-3
        assert r["value_max"] >= 50000 - r["bib"] + res["credited_time_max_s"] - least - 1e-3
        if res["time_behind_winner_s"] == res["credited_time_behind_s"]:  # he heads his group: his crossing's +-
            assert r["value_max"] - r["value_min"] >= 2 * res["finish_uncertainty_s"] - 1e-3
        assert not r["decided"] or (res["credited_time_decided"] and most == least
                                    and r["value_max"] - r["value_min"] <= 2.0)
    assert not any(r["decided"] for r in gc)  # stage 4's crossings: the front +-4.5 s, the bunch extrapolated


def test_sprint_points_from_passages_and_causal_equals_hindsight(tmp_path, stage4_recording, stage4):
    """The intermediate sprint (Quillan, km 93.3: ticks 925-975) and the finish (ticks 1560-1590) of stage 4,
    one recording: the sprint's points are a range of at most its scale, never more than the passages allow;
    the causal replay's decided rows are the hindsight ones."""
    from peloton.sim.evaluate import read_table
    from tests.helpers import canonical_rows

    both = {**stage4_recording, "events": stage4_recording["events"][925:975] + stage4_recording["events"][1560:1590]}
    rows = {kind: _after_stage(read_table(str(_run(tmp_path, kind, both, stage4, kind == "causal")),
                                          "classifications"))
            for kind in ("hindsight", "causal")}
    results = {r["bib"]: r for r in read_table(str(tmp_path / "out-hindsight"), "results")}
    points = [r for r in rows["hindsight"] if r["classification"] == "points"]
    scale = (30, 25, 22, 19, 17, 15, 13, 11, 9, 7, 6, 5, 4, 3, 2)  # a hilly stage's finish
    assert points
    at_line = (lambda place: scale[place - 1] if place <= 15 else 0)
    sprint_span = {}
    for r in points:  # the finish points of his place range at the line, plus at most the sprint's 20
        res = results[r["bib"]]
        least, most = at_line(res["place_max"]), at_line(res["place_min"])
        assert least <= r["value_min"] <= r["value_max"] <= most + 20
        sprint_span[r["bib"]] = r["value_max"] - r["value_min"] - (most - least)
    # seen at the sprint, the front's sprint places are fewer than the field's: the passages narrow them
    assert min(sprint_span[b] for b, res in results.items() if res.get("place_min") == 1 and b in sprint_span) < 20

    def decided(rs):
        return canonical_rows([r for r in rs if r["decided"]])

    assert decided(rows["causal"]) == decided(rows["hindsight"]) and len(rows["causal"]) == len(rows["hindsight"])


def _crossed(bib, behind, u, credited=None, c_min=None, c_max=None, decided=True, place=None):
    credited = behind if credited is None else credited
    return _result(bib, place, credited, time_behind_winner_s=behind, finish_uncertainty_s=u,
                   credited_time_min_s=credited if c_min is None else c_min,
                   credited_time_max_s=credited if c_max is None else c_max, credited_time_decided=decided,
                   place_min=place or 1, place_max=place or 9, order_decided=place is not None)


def test_the_general_time_is_a_range_wherever_the_credited_time_is():
    results = [_crossed(1, 0.0, 0.5, place=1), _crossed(2, 0.4, 0.5, credited=0.0, place=2),  # one group
               _crossed(3, 0.8, 0.5, credited=0.0, place=3),
               _crossed(4, 30.0, 0.6, place=4),  # alone, his crossing +-0.6 s: to the second
               _crossed(5, 60.0, 1.7, place=5),  # alone, 6 s between fixes: +-1.7 s, not to the second
               _crossed(6, 90.0, 0.5, c_min=89.0, c_max=91.0, decided=False, place=6),  # his group hangs on a gap
               _crossed(7, 120.0, 0.5, place=7), _crossed(8, 121.5, 5.0, credited=120.0, place=8)]
    gc = _by(stage_classifications("s", results, [], [], "HMG", 2026, None, TEAMS, {}), "general")
    # the group of 1-3: its head's crossing +-0.5 s, for all three; bonuses decided
    assert (gc[2]["value_min"], gc[2]["value_max"], gc[2]["value"]) == (-6.5, -5.5, -6.0) and gc[2]["decided"]
    assert gc[1]["decided"] and gc[1]["position"] == 1 and gc[3]["value"] == -4.0 and gc[3]["gap_to_leader"] == 6
    assert (gc[4]["value_min"], gc[4]["value_max"], gc[4]["value"]) == (29.4, 30.6, 30.0) and gc[4]["decided"]
    assert (gc[5]["value_min"], gc[5]["value_max"]) == (58.3, 61.7)
    assert not gc[5]["decided"] and gc[5]["value"] is None and gc[5]["gap_to_leader"] is None
    assert "58.3..61.7" in gc[5]["detail"] and gc[5]["position"] == 5  # the place is still decided
    assert (gc[6]["value_min"], gc[6]["value_max"]) == (88.5, 91.5) and not gc[6]["decided"]
    # 8 may have crossed 5 s earlier than measured, ahead of his group's head: the group's time may be his
    assert gc[7]["value_min"] == 116.5 and gc[7]["value_max"] == 120.5 and not gc[7]["decided"]
    # a time trial: the time is his own crossing's
    tt = _by(stage_classifications("s", [_crossed(1, 0.0, 0.5, place=1), _crossed(2, 10.0, 2.0, place=2)], [], [],
                                   "PAS", 2026, None, TEAMS, {}), "general")
    assert (tt[2]["value_min"], tt[2]["value_max"]) == (8.0, 12.0) and not tt[2]["decided"] and tt[1]["decided"]


def test_a_decided_general_time_carried_into_the_next_stage_keeps_its_range():
    results = [_crossed(1, 0.0, 0.5, place=1), _crossed(2, 30.0, 0.9, place=2)]
    after = standings_from_rows(stage_classifications("s1", results, [], [], "HMG", 2026, None, TEAMS, {}), "s1")
    assert (after.gc_s[2], after.gc_s_max[2]) == (23.1, 24.9)
    again = parse_standings(standings_csv(after), "after.csv", [1, 2])
    gc = _by(stage_classifications("s2", [_crossed(1, 0.0, 0.5, place=1), _crossed(2, 30.0, 0.5, place=2)], [], [],
                                   "HMG", 2026, again, TEAMS, {}), "general")
    # +-0.9 s, then +-0.5 s: +-1.4 s, more than a second either side: no longer decided
    assert (gc[2]["value_min"], gc[2]["value_max"]) == (46.6, 49.4) and not gc[2]["decided"]
