"""One gate for the replay (hindsight), the causal replay and live: the same dead letters on hostile input, and no
row in any table for a rider off the start list."""
import collections
import json

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from peloton.ingest import eventtime
from peloton.ingest.gate import Gate
from peloton.match.stage import Stage
from peloton.output.tables import CAUSAL, LIVE, REPLAY, written_by
from peloton.sim.evaluate import read_table
from pipelines.replay import build_replay
from tests.conftest import slice_recording, write_recording
from tests.hostile import _FixedClock
from transforms.engine import DEAD_LETTER, LATE, LiveRaceState
from transforms.live import FeedSecurity, IngestLive, LiveParams

FORGED, UNKNOWN_BIB = 300, 999
LATENESS_S = 60.0
_LIVE: dict = {}


@pytest.fixture(scope="module")
def hostile(stage4_recording):
    """Ticks 700-730 of stage 4; the middle tick carries 300 forged riders keyed ``"\\u0042ib"`` (the escape
    spells "Bib") and one rider whose bib is not on the start list, beside a genuine rider."""
    cut = slice_recording(stage4_recording, 700, 730)
    events = [dict(e) for e in cut["events"]]
    text = events[15]["data"]
    genuine = json.loads(text)["data"]["Riders"][0]
    forged = ['{"\\u0042ib":%d,"Latitude":%.6f,"Longitude":%.6f,"kph":40.0}'
              % (1000 + i, genuine["Latitude"] + 1e-5 * i, genuine["Longitude"]) for i in range(FORGED)]
    forged.append('{"Bib":%d,"Latitude":%.6f,"Longitude":%.6f}' % (UNKNOWN_BIB, genuine["Latitude"],
                                                                   genuine["Longitude"]))
    at = text.index('"Riders":[') + len('"Riders":[')
    events[15] = {**events[15], "data": text[:at] + ",".join(forged) + "," + text[at:]}
    return {**cut, "events": events}


def _replay(tmp_path, recording, stage, causal):
    path = write_recording(tmp_path / "hostile.json.gz", recording)
    out = tmp_path / ("causal" if causal else "hindsight")
    p = TestPipeline()
    build_replay(p, stage, str(path), str(out), causal=causal)
    p.run().wait_until_finish()
    return {table: read_table(str(out), table) for table in written_by(CAUSAL if causal else REPLAY)}


def _keep(columns, name):
    _LIVE.setdefault(name, []).extend(columns.to_rows())


def _live(recording, stage):
    """The live graph on TestStream: each tick published as the recording holds it (escapes kept), in order."""
    ticks = [(json.loads(e["data"])["data"]["TimeStamp"], e["data"].encode()) for e in recording["events"]]
    stream, last = TestStream(), 0
    for i, (ts, data) in enumerate(ticks):
        attrs = {"event_time": eventtime.attribute(ts), "stage_id": stage.stage_id, "kind": "tick",
                 "message_id": f"m{i}"}
        stream = stream.add_elements([TimestampedValue(PubsubMessage(data, attrs), ts)])
        if ts - 5 > last:
            stream, last = stream.advance_watermark_to(Timestamp(ts - 5)), ts - 5
    stream = stream.advance_watermark_to_infinity()
    params = LiveParams(early_after_s=1000, allowed_lateness_s=LATENESS_S)
    security = FeedSecurity(clock=_FixedClock(ticks[-1][0] + 10.0))
    _LIVE.clear()
    p = TestPipeline(options=StandardOptions(streaming=True))
    ingest = p | stream | IngestLive(stage.stage_id, params, security, stage.start_list())
    race = ingest["ticks"] | LiveRaceState(stage, LATENESS_S + params.window_s)
    tables = {t: race[t] for t in written_by(LIVE) if t != DEAD_LETTER}
    tables[DEAD_LETTER] = (ingest[DEAD_LETTER], ingest[LATE], race[DEAD_LETTER], race[LATE]) | beam.Flatten()
    for name, pcoll in tables.items():
        pcoll | f"Keep_{name}" >> beam.Map(_keep, name)
    p.run().wait_until_finish()
    return {t: list(_LIVE.get(t, [])) for t in tables}


def _reasons(tables):
    return collections.Counter(d["reason"] for d in tables[DEAD_LETTER])


def _bibs_off(tables, start_list):
    """(table, bib) of every row naming a rider off the start list (dead letters aside)."""
    return [(t, b) for t, rows in tables.items() if t != DEAD_LETTER for r in rows
            for b in ([r["bib"]] if "bib" in r else []) + list(r.get("bibs") or []) if b not in start_list]


@pytest.mark.slow
def test_hostile_recording_gives_the_same_dead_letters_in_replay_causal_replay_and_live(tmp_path, hostile, stage4):
    start_list = set(stage4.start_list())
    runs = {"hindsight": _replay(tmp_path, hostile, stage4, causal=False),
            "causal": _replay(tmp_path, hostile, stage4, causal=True),
            "live": _live(hostile, stage4)}
    reasons = {name: _reasons(tables) for name, tables in runs.items()}
    assert reasons["hindsight"]["unknown_rider"] == FORGED + 1, reasons
    assert reasons["hindsight"] == reasons["causal"] == reasons["live"], reasons
    for name, tables in runs.items():
        assert tables["rider_state"], name
        assert not _bibs_off(tables, start_list), name
    # and the final rows of live are the causal replay's
    for table in written_by(LIVE):
        if table != DEAD_LETTER:
            assert len(runs["live"][table]) == len(runs["causal"][table]), table


def test_a_stage_without_a_start_list_checks_no_bib():
    """A flat CSV export or an old stage file: no start list, so no unknown-rider check (and no error)."""
    tick = json.dumps({"data": {"TimeStamp": 1.7834e9, "Riders": [{"Bib": 4321, "Latitude": 43.0,
                                                                      "Longitude": 2.0}]}})
    assert Gate.of_stage(Stage("s")).start_list is None
    fixes, dead = Gate.of_stage(Stage("s")).admit(tick, kind="tick")
    assert fixes.bib.tolist() == [4321] and not dead
    fixes, dead = Gate.of_stage(Stage("s", riders=[{"bib": 1}])).admit(tick, kind="tick")
    assert len(fixes) == 0 and [d["reason"] for d in dead] == ["unknown_rider"]
    rows = "Bib,TimeStamp,Latitude,Longitude\n" + "\n".join(f"{b},1783400000,43.0,2.0" for b in range(1, 3001))
    fixes, dead = Gate.of("s", [1]).admit(rows, kind="csv")  # an archive's rows: no message limits
    assert len(fixes) == 1 and len(dead) == 2999 and {d["reason"] for d in dead} == {"unknown_rider"}
