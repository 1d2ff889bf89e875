"""End-to-end replays through real Beam pipelines on slices of the stage 4 recording."""
import json
import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from peloton.ingest.gate import Gate
from peloton.sim.evaluate import read_table
from pipelines.replay import build_replay
from tests.conftest import slice_recording, write_recording
from transforms.match import MatchToCourse
from transforms.parse import ParseMessages
from transforms.race import DeriveRaceState

OFFICIAL = ("kmToFinish", "secToFirstRider", "secToITTLead", "mAlt", "Gradient")


def _replay(tmp_path, name, recording, stage):
    """Run the real replay graph; return the output folder and the pipeline's counters."""
    from apache_beam.metrics.metric import MetricsFilter

    path = write_recording(tmp_path / f"{name}.json.gz", recording)
    out = tmp_path / f"out-{name}"
    p = TestPipeline()
    build_replay(p, stage, str(path), str(out))
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("peloton"))["counters"]}
    return out, counters


def _canonical(rows):
    return sorted((r["bib"], r["event_time"], r["km_to_finish"], r["off_course_m"], r["speed_kph"], r["quality"])
                  for r in rows)


def _rider_rows(recording):
    return sum(len(json.loads(e["data"])["data"]["Riders"]) for e in recording["events"])


@pytest.fixture(scope="module")
def slice_ticks(stage4_recording):
    # ticks 600-760: the race is on, ~170 riders per tick, plus a few trackers not live
    return slice_recording(stage4_recording, 600, 760)


@pytest.fixture(scope="module")
def clean_replay(tmp_path_factory, slice_ticks, stage4):
    tmp = tmp_path_factory.mktemp("clean")
    out, _ = _replay(tmp, "clean", slice_ticks, stage4)
    others = {t: read_table(str(out), t) for t in ("groups", "predictions", "climb_efforts", "race_events")}
    return read_table(str(out), "rider_state"), read_table(str(out), "dead_letter"), others


@pytest.mark.slow
def test_replay_writes_avro_tables_and_accounts_for_every_row(clean_replay, slice_ticks):
    rows, dead, _ = clean_replay
    assert len(rows) > 10_000
    assert len(rows) + len(dead) == _rider_rows(slice_ticks)  # no duplicates in the clean slice
    r = rows[0]
    for field in ("stage_id", "bib", "event_time", "lat", "lon", "km_from_start", "km_to_finish", "off_course_m",
                  "speed_kph", "altitude_m", "gradient_pct", "quality"):
        assert field in r
    km = np.array([x["km_to_finish"] for x in rows])
    assert np.all((km > 0) & (km < 182))
    speeds = np.array([x["speed_kph"] for x in rows if x["speed_kph"] is not None])
    assert 25 < np.median(speeds) < 55
    assert {d["reason"] for d in dead} <= {"placeholder_position", "off_course", "impossible_jump"}


def test_replay_predicts_every_group_at_every_tick(clean_replay):
    _, _, tables = clean_replay
    groups, predictions = tables["groups"], tables["predictions"]
    assert len(groups) > 100 and len(predictions) == len(groups)
    key = lambda r: (r["event_time"], r["group_id"])  # noqa: E731
    assert sorted(map(key, predictions)) == sorted(map(key, groups))
    assert all(g["headwind_kph"] is not None and g["crosswind_kph"] is not None for g in groups)  # the wind there
    for p in predictions:
        assert p["eta_finish_low"] <= p["eta_finish"] <= p["eta_finish_high"]
        assert p["eta_finish"] > p["event_time"]
        assert p["checkpoints"][-1]["kind"] == "finish" and p["checkpoints"][-1]["eta"] == p["eta_finish"]
        last = p["rank"] == max(g["rank"] for g in groups if g["event_time"] == p["event_time"])
        assert (p["catch_probability"] is None) == last
    # in this slice the race crosses the Col de Bedos (km 48): every rider seen up it has an effort
    efforts = tables["climb_efforts"]
    assert {e["climb"] for e in efforts} == {"Col de Bedos"} and len(efforts) > 100
    assert all(900 < e["vam_m_per_h"] < 2000 and 3 < e["power_wkg"] < 9 for e in efforts)


@pytest.mark.slow
def test_official_derived_fields_do_not_change_the_output(tmp_path, slice_ticks, stage4, clean_replay):
    stripped = []
    for e in slice_ticks["events"]:
        msg = json.loads(e["data"])
        for r in msg["data"]["Riders"]:
            for f in OFFICIAL:
                r.pop(f, None)
        stripped.append({**e, "data": json.dumps(msg)})
    out, _ = _replay(tmp_path, "stripped", {**slice_ticks, "events": stripped}, stage4)
    assert _canonical(read_table(str(out), "rider_state")) == _canonical(clean_replay[0])


@pytest.mark.slow
def test_duplicates_disorder_and_malformed_messages(tmp_path, slice_ticks, stage4, clean_replay):
    events = list(slice_ticks["events"])
    rng = random.Random(4)
    repeated = rng.sample(events, len(events) // 10)  # 10 % of ticks delivered twice
    events += repeated
    rng.shuffle(events)  # and out of order
    events += [{"dt": 0, "data": '{"data": {"TimeStamp": 17834'}, {"dt": 0, "data": '{"data": 7}'}]
    out, counters = _replay(tmp_path, "noisy", {**slice_ticks, "events": events}, stage4)
    rows = read_table(str(out), "rider_state")
    dead = read_table(str(out), "dead_letter")
    assert _canonical(rows) == _canonical(clean_replay[0])
    reasons = [d["reason"] for d in dead]
    assert reasons.count("malformed_json") == 1 and reasons.count("bad_shape") == 1
    rows_in = _rider_rows(slice_ticks) + _rider_rows({"events": repeated}) + 2
    assert counters["rows_in"] == rows_in
    assert counters["duplicates_removed"] > 0
    assert len(rows) + len(dead) + counters["duplicates_removed"] == rows_in


@pytest.mark.slow
def test_race_state_composites_stamp_rows_with_event_time(stage4, slice_ticks):
    messages = [("tick", e["data"], "test") for e in slice_ticks["events"][:20]]
    with TestPipeline() as p:
        parsed = p | beam.Create(messages) | ParseMessages(Gate.of_stage(stage4))
        matched = parsed.fixes | MatchToCourse(stage4)
        race = matched.matched | DeriveRaceState(stage4)
        for name in ("rider_state", "groups"):
            stamps = (race[name]
                      | f"Stamp_{name}" >> beam.Map(lambda cols, ts=beam.DoFn.TimestampParam:
                                                    bool(np.all(cols.data["event_time"] == round(float(ts) * 1000)))))
            assert_that(stamps | f"Distinct_{name}" >> beam.Distinct(), equal_to([True]), label=f"Check_{name}")


@pytest.mark.slow
def test_replay_writes_the_result_and_keeps_the_winner_as_the_reference_after_the_line(tmp_path, stage4_recording,
                                                                                     stage4):
    finish = slice_recording(stage4_recording, 1560, 1590)  # 15:37-15:43: the winners and the second group finish
    out, _ = _replay(tmp_path, "finish", finish, stage4)
    results = read_table(str(out), "results")
    assert len({r["bib"] for r in results}) == len(results)
    finished = sorted((r for r in results if r["status"] == "finished"), key=lambda r: r["finish_time"])
    assert len(finished) >= 10 and finished[0]["time_behind_winner_s"] == 0
    # each rider's place range holds his place in crossing order; a position only where it is decided
    assert all(r["place_min"] <= i + 1 <= r["place_max"] and r["position"] in (None, i + 1)
               for i, r in enumerate(finished))
    winner_crossed = finished[0]["finish_time"].timestamp()
    assert all(r["finish_time"].timestamp() >= winner_crossed for r in finished)
    # credited times never exceed measured ones, and a same-time group names its first rider's place
    for r in finished:
        assert r["credited_time_behind_s"] <= r["time_behind_winner_s"] + 1e-9
        head = finished[r["same_time_group"] - 1]
        assert head["credited_time_behind_s"] == r["credited_time_behind_s"]
    # after the winner crossed, the riders still racing are measured against him, not against the next on the road
    rows = read_table(str(out), "rider_state")
    later = [r for r in rows if r["event_time"].timestamp() > winner_crossed + 30 and r["km_to_finish"] > 1.0
             and r["gap_to_leader_s"] is not None]
    assert later and min(r["gap_to_leader_s"] for r in later) > 60
    at_line = [r for r in rows if r["km_to_finish"] <= 0.05]
    assert all(r["gap_to_leader_s"] is None for r in at_line)
