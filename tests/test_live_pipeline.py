"""The whole live graph (ingest, race engine) on TestStream: final rows equal the causal replay,
with duplicates, disorder, malformed and late messages, and every row accounted for."""
import dataclasses
import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from peloton.ingest.feed import concat_batches, parse_message
from peloton.ingest.recording import iter_messages
from peloton.output.table import Columns
from peloton.match.stage import stage_from_recording
from peloton.predict.finale import FinaleParams
from peloton.predict.model import PredictParams, StageModel, forecast_race
from peloton.sim.evaluate import read_table
from peloton.sim.publish import PlanParams, plan_messages
from peloton.sim.simulate import SimParams, recording_document, simulate_race
from peloton.state.classifications import FINISH_BONUS_S, StageClassifier, Standings, scale_range
from peloton.state.engine import RaceEngine
from peloton.state.results import same_time_gap_s
from tests.conftest import slice_recording
from tests.helpers import canonical_rows, line_course
from transforms.engine import DEAD_LETTER, LATE, PROVISIONAL, LiveRaceState
from transforms.live import IngestLive, LiveParams
from transforms.sinks import WriteLiveAvroTable

pytestmark = [pytest.mark.slow]

LATENESS_S = 60.0
#: Every table the engine writes (dead letters are checked by accounting for every row).
TABLES = ("rider_state", "groups", "predictions", "race_events", "results", "virtual_standings", "climb_efforts",
          "classifications")
_COLLECTED: dict = {}


def _keep(columns, name):
    _COLLECTED.setdefault(name, []).extend(columns.to_rows())


@pytest.fixture(scope="module")
def slice_text(stage4_recording):
    return json.dumps(slice_recording(stage4_recording, 700, 730))


def _run(stream, stage, out_dir=None):
    _COLLECTED.clear()
    params = LiveParams(early_after_s=1000, allowed_lateness_s=LATENESS_S)
    p = TestPipeline(options=StandardOptions(streaming=True))
    ingest = p | stream | IngestLive(stage.stage_id, params)
    race = ingest["ticks"] | LiveRaceState(stage, LATENESS_S + params.window_s)
    outputs = {table: race[table] for table in TABLES}
    outputs.update({
               "provisional": race[f"{PROVISIONAL}_rider_state"],
               "provisional_predictions": race[f"{PROVISIONAL}_predictions"],
               "dead": (ingest[DEAD_LETTER], ingest[LATE], race[DEAD_LETTER], race[LATE]) | beam.Flatten()})
    for name, pcoll in outputs.items():
        pcoll | f"Keep_{name}" >> beam.Map(_keep, name)
    if out_dir:
        race.rider_state | WriteLiveAvroTable("rider_state", out_dir)
    p.run().wait_until_finish()
    # rows, not counters: the streaming DirectRunner reports only the last bundle's counters
    return {k: list(_COLLECTED.get(k, [])) for k in outputs}


def _rows_sent(messages) -> int:
    """Rider entries published (a malformed message is one row: it becomes one dead letter)."""
    return sum(1 if m.fault == "malformed" else len(json.loads(m.data)["data"]["Riders"]) for m in messages)


def _stream(messages, first_ts, lag_s, then=None):
    """Messages in publish order; the watermark trails the publish clock by ``lag_s``; ``then`` adds more."""
    stream = TestStream()
    watermark_ms = 0
    for m in messages:
        stream = stream.add_elements([TimestampedValue(PubsubMessage(m.data, m.attributes),
                                                       int(m.attributes["event_time"]) / 1000)])
        ms = int((first_ts + m.at_s - lag_s) * 1000)
        if ms > watermark_ms:
            stream, watermark_ms = stream.advance_watermark_to(Timestamp(micros=ms * 1000)), ms
    if then is not None:
        stream = then(stream)
    return stream.advance_watermark_to_infinity()


def _causal_rows(text, stage, course):
    fixes = concat_batches([parse_message(stage.stage_id, k, p)[0] for k, p in iter_messages(text)], stage.stage_id)
    from peloton.match.matching import dedupe

    forecast = StageModel.of_stage(stage, course)
    engine = RaceEngine(stage.stage_id, course.finish_km, time_trial=stage.is_time_trial,
                        same_time_gap_s=same_time_gap_s(stage.stage_type), classifier=StageClassifier(stage))
    step = engine.advance(dedupe(fixes)[0], course, forecast)
    end = engine.finish(forecast)  # the end of the input
    for table in TABLES:
        setattr(step, table, Columns.concat([getattr(step, table), getattr(end, table)]))
    return step


def _assert_every_table_equal(out, expected):
    for table in TABLES:
        assert canonical_rows(out[table]) == canonical_rows(getattr(expected, table).to_rows()), table


def test_live_final_rows_equal_the_causal_replay_despite_duplicates_and_disorder(slice_text, stage4, stage4_course,
                                                                                tmp_path):
    plan = plan_messages(slice_text, stage4.stage_id, PlanParams(duplicate_rate=0.1, disorder_s=30.0,
                                                                 malformed_rate=0.05, seed=6))
    assert sum(m.fault == "duplicate" for m in plan) >= 2 and any(m.fault == "malformed" for m in plan)
    first_ts = min(int(m.attributes["event_time"]) for m in plan) / 1000
    out = _run(_stream(plan, first_ts, lag_s=5.0), stage4, str(tmp_path))
    expected = _causal_rows(slice_text, stage4, stage4_course)
    assert canonical_rows(out["rider_state"]) == canonical_rows(expected.rider_state.to_rows())
    written = read_table(str(tmp_path), "rider_state")
    assert canonical_rows(written) == canonical_rows(expected.rider_state.to_rows())
    _assert_every_table_equal(out, expected)
    # every final group row has its prediction, as the causal replay makes it
    assert len(out["predictions"]) == len(out["groups"]) > 0
    assert 0 < len(out["provisional_predictions"])
    # nothing lost, nothing doubled: rows in = rows out + dead letters (malformed, placeholders) + duplicates
    duplicates = _rows_sent([m for m in plan if m.fault == "duplicate"])
    assert _rows_sent(plan) == len(out["rider_state"]) + len(out["dead"]) + duplicates
    assert {d["reason"] for d in out["dead"]} & {"malformed_json", "bad_shape"}
    # the provisional picture came out too: all but the fixes that arrived after a newer one of their rider
    assert 0.5 * len(out["rider_state"]) < len(out["provisional"]) <= len(out["rider_state"])


def test_a_tick_later_than_the_allowed_lateness_is_set_aside_and_counted(slice_text, stage4, stage4_course):
    plan = plan_messages(slice_text, stage4.stage_id, PlanParams())
    first_ts = min(int(m.attributes["event_time"]) for m in plan) / 1000
    held_back = plan[3]  # the fourth tick arrives after everything else, minutes late
    on_time = [m for m in plan if m is not held_back]
    stream = _stream(on_time, first_ts, lag_s=0.0, then=lambda s: (
        s.advance_watermark_to(Timestamp(micros=int(first_ts + 600) * 1_000_000))
        .add_elements([TimestampedValue(PubsubMessage(held_back.data, held_back.attributes),
                                        int(held_back.attributes["event_time"]) / 1000)])))
    out = _run(stream, stage4)
    n_late = len(json.loads(held_back.data)["data"]["Riders"])
    late = [d for d in out["dead"] if d["reason"] == "late"]
    assert len(late) == n_late
    held_t = int(held_back.attributes["event_time"])
    assert all(r["event_time"] != held_t for r in out["rider_state"])
    assert _rows_sent(plan) == len(out["rider_state"]) + len(out["dead"])
    assert np.all(np.diff(sorted({r["event_time"] for r in out["rider_state"]})) > 0)


def test_a_fix_for_a_window_already_final_is_set_aside_by_the_engine(slice_text, stage4):
    """Data that the ingest still accepts but whose window the engine has settled is late, not lost."""
    plan = plan_messages(slice_text, stage4.stage_id, PlanParams())
    first_ts = min(int(m.attributes["event_time"]) for m in plan) / 1000
    held_back = plan[-2]  # within the ingest's lateness of the newest tick
    on_time = [m for m in plan if m is not held_back]
    last_ts = max(int(m.attributes["event_time"]) for m in on_time) / 1000
    # the watermark runs far past the data: the engine settles everything, while the ingest's own
    # lateness check follows the data and still lets a fix from within a minute of the newest through
    stream = _stream(on_time, first_ts, lag_s=0.0, then=lambda s: (
        s.advance_watermark_to(Timestamp(micros=int(last_ts + 900) * 1_000_000))
        .add_elements([TimestampedValue(PubsubMessage(held_back.data, held_back.attributes),
                                        int(held_back.attributes["event_time"]) / 1000)])))
    out = _run(stream, stage4)
    late = [d for d in out["dead"] if d["reason"] == "late"]
    n_late = len(json.loads(held_back.data)["data"]["Riders"])
    assert len(late) == n_late and all("already final" in d["detail"] for d in late)
    assert _rows_sent(plan) == len(out["rider_state"]) + len(out["dead"])


def test_live_results_equal_the_causal_replay_on_the_finish(stage4_recording, stage4, stage4_course):
    """Stage 4's finish (15:37-15:43): the winners' trackers stop 420-470 m short of the line, the second group's
    60-130 m short; a rider's row is final a minute after his crossing, the rest (DNF, or racing if still on the road) when the input ends."""
    text = json.dumps(slice_recording(stage4_recording, 1560, 1590))
    plan = plan_messages(text, stage4.stage_id, PlanParams(duplicate_rate=0.1, disorder_s=30.0, seed=7))
    first_ts = min(int(m.attributes["event_time"]) for m in plan) / 1000
    before = {int(r["bib"]): 60.0 * r["bib"] for r in stage4.riders}  # a made-up GC, spread as after a week
    stage = dataclasses.replace(stage4, standings_before=Standings(gc_s=before, source="test").to_dict())
    out = _run(_stream(plan, first_ts, lag_s=5.0), stage)
    expected_step = _causal_rows(text, stage, stage4_course)
    _assert_every_table_equal(out, expected_step)
    # the virtual general classification, row for row the causal replay's (above): a finisher's latest row holds his
    # time before + his credited time - the bonus of his place (a range where his place is one)
    latest = {}
    for r in sorted((r for r in out["classifications"] if r["classification"] == "virtual_general"),
                    key=lambda r: r["event_time"]):
        latest[r["bib"]] = r
    assert len(latest) == len(before)  # (the slice starts at the finish: the peloton's gaps are not known in it)
    for r in (r for r in out["results"] if r["status"] == "finished"):
        least, most = scale_range(FINISH_BONUS_S, [r["place_min"]], [r["place_max"]])
        gc = before[r["bib"]] + r["credited_time_behind_s"]
        assert latest[r["bib"]]["value_min"] <= gc - most[0] + 1 and gc - least[0] - 1 <= latest[r["bib"]]["value_max"]
    assert {e["event_type"] for e in out["race_events"]} >= {"finished"}
    finished = sorted((r for r in out["results"] if r["status"] == "finished"), key=lambda r: r["finish_time"])
    # a place where the crossings decide it, else the range that holds it (the front nine: 1-9)
    assert len(finished) >= 10 and all(r["place_min"] <= i + 1 <= r["place_max"] and r["position"] in (None, i + 1)
                                       for i, r in enumerate(finished))
    assert finished[0]["time_behind_winner_s"] == 0 and finished[0]["credited_time_behind_s"] == 0
    # the second group crossed about 2 min 37 s after the winner, its riders within a second of each other
    second = [r for r in finished if 150 < r["time_behind_winner_s"] < 165]
    assert len(second) >= 5 and len({r["credited_time_behind_s"] for r in second}) == 1
    assert all(r["finish_time"] is not None for r in finished)
    unfinished = [r for r in out["results"] if r["status"] in ("DNF", "racing")]
    assert {r["status"] for r in unfinished} == {"DNF", "racing"}  # the slice ends with riders still on the road
    assert all(r["last_km"] is not None and r["position"] is None for r in unfinished)
    assert len({r["bib"] for r in out["results"]}) == len(out["results"])  # one row per rider


def test_live_climb_efforts_and_riders_events_equal_the_causal_replay(stage4_recording, stage4, stage4_course):
    """Col de Bedos (12:25-12:33): the head of the race rides from its foot over its summit; each effort is said
    once its rider has passed the summit, with duplicates and disorder on the way."""
    text = json.dumps(slice_recording(stage4_recording, 604, 648))
    plan = plan_messages(text, stage4.stage_id, PlanParams(duplicate_rate=0.1, disorder_s=30.0, seed=8))
    first_ts = min(int(m.attributes["event_time"]) for m in plan) / 1000
    out = _run(_stream(plan, first_ts, lag_s=5.0), stage4)
    expected = _causal_rows(text, stage4, stage4_course)
    _assert_every_table_equal(out, expected)
    assert len(out["climb_efforts"]) >= 5 and {e["climb"] for e in out["climb_efforts"]} == {"Col de Bedos"}


def test_live_virtual_standings_equal_the_causal_replay(stage16_recording, stage16, stage16_course):
    """The time trial's first starters: a rider's standing at a km mark is said once he has passed it."""
    text = json.dumps(slice_recording(stage16_recording, 30, 110))
    plan = plan_messages(text, stage16.stage_id, PlanParams(duplicate_rate=0.1, disorder_s=30.0, seed=9))
    first_ts = min(int(m.attributes["event_time"]) for m in plan) / 1000
    out = _run(_stream(plan, first_ts, lag_s=5.0), stage16)
    expected = _causal_rows(text, stage16, stage16_course)
    _assert_every_table_equal(out, expected)
    assert len(out["virtual_standings"]) >= 2 and out["groups"] == []


@pytest.fixture(scope="module")
def sprint_finale():
    """A simulated bunch sprint (40 riders, a flat 60 km line, the breakaway caught 9 km out): its last 25 minutes."""
    race = simulate_race(line_course([[0, 0], [60000, 0]]), SimParams(
        riders=40, seed=2, breakaway_size=3, breakaway_km=10.0, stops=0, finale="sprint", late_tracker_share=0.0,
        wind_kph=10.0))
    doc = recording_document(race, "a bunch sprint")
    first = float(np.nanmin(race.finish_t))
    start, stop = np.searchsorted(race.tick_t, [first - 1500.0, first + 60.0])
    return stage_from_recording(doc), json.dumps(slice_recording(doc, int(start), int(stop)))


def _ms(value) -> int:
    return int(round(value.timestamp() * 1000)) if hasattr(value, "timestamp") else int(value)


def test_live_predictions_of_a_bunch_sprint_equal_the_causal_replay(sprint_finale):
    """Issue 26: a bunch racing for the line, predicted live with duplicates and disorder, as the causal replay."""
    stage, text = sprint_finale
    course = stage.course()
    plan = plan_messages(text, stage.stage_id, PlanParams(duplicate_rate=0.05, disorder_s=20.0, seed=3))
    first_ts = min(int(m.attributes["event_time"]) for m in plan) / 1000
    out = _run(_stream(plan, first_ts, lag_s=5.0), stage)
    expected = _causal_rows(text, stage, course)
    _assert_every_table_equal(out, expected)
    # the bunch rule is what these predictions exercise: without it many of them would differ
    off = forecast_race(stage.stage_id, expected.groups.to_rows(), StageModel.of_stage(stage, course),
                        params=PredictParams(finale_params=FinaleParams(bunch_run_in=False))).predictions
    live = {(_ms(r["event_time"]), r["rank"]): _ms(r["eta_finish"]) for r in out["predictions"]}
    assert len(live) == len(off) > 500
    changed = sum(live[(_ms(r["event_time"]), r["rank"])] != _ms(r["eta_finish"]) for r in off)
    assert changed > 0.1 * len(off)
