"""Race day end to end: the Race Center stand-in -> ``peloton bridge`` -> the Pub/Sub emulator -> the live pipeline.

The stand-in serves a stretch of stage 4 at the recorded rhythm, its tick
times moved to now, and misbehaves: it cuts the connection twice in the
middle of an event, stalls once, sends malformed events and events of other
binds, and frames its chunks the way strict HTTP parsers refuse. The bridge
(the console script, as an operator runs it) reconnects and resumes; a second
subscription on the feed topic counts what it published: every tick exactly
once. The live pipeline (built as tests/test_live_emulator.py builds it)
turns the feed into tables, whose final rows must be the causal replay's.
"""
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import pytest

from peloton.sim.racecenter import Faults, RaceCenterServer
from pipelines.cli import main as peloton
from pipelines.live import build_live
from pipelines.pubsub import output_topic
from tests.conftest import slice_recording
from tests.helpers import canonical_rows, causal_step
from transforms.live import LiveParams

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

PROJECT = "peloton-test"
LATENESS_S = 40.0
FIRST = 700
COMPARED_TICKS = 6  # the first minute of the stretch
FED_TICKS = 18  # three minutes: the later ticks move the watermark past the compared ones


def _pull(subscriber, subscription, into, raw=False):
    response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=5)
    if response.received_messages:
        subscriber.acknowledge(subscription=subscription, ack_ids=[r.ack_id for r in response.received_messages])
    for r in response.received_messages:
        into.append(r.message if raw else (r.message.attributes["status"], json.loads(r.message.data)))


def test_the_race_center_stream_bridged_through_the_emulator_gives_the_causal_replay_rows(
        pubsub_emulator, stage4_recording, stage4, stage4_course):
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/feed-{tag}", f"projects/{PROJECT}/subscriptions/feed-{tag}"
    counter = f"projects/{PROJECT}/subscriptions/count-{tag}"
    prefix = f"projects/{PROJECT}/topics/out-{tag}"
    assert peloton(["-q", "pubsub", "init", "--topic", topic, "--subscription", sub,
                    "--output-topic-prefix", prefix]) == 0
    subscriber = pubsub_v1.SubscriberClient()
    subscriber.create_subscription(name=counter, topic=topic, ack_deadline_seconds=60)
    outputs = {}
    for table in ("rider_state", "groups"):
        outputs[table] = f"projects/{PROJECT}/subscriptions/out-{tag}-{table}"
        subscriber.create_subscription(name=outputs[table], topic=output_topic(prefix, table))

    fed = slice_recording(stage4_recording, FIRST, FIRST + FED_TICKS)
    faults = Faults(drop_at=(2, 9), stall_at=((13, 9.0),), malformed_every=3, other_every=4, chunk_quirks=True,
                    seed=4)
    server = RaceCenterServer(fed, port=0, speed=1.0, faults=faults, keepalive_s=2.0, shift_to_now=True).start()

    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    build_live(pipeline, stage4, sub, topic_prefix=prefix, params=LiveParams(allowed_lateness_s=LATENESS_S))
    result = pipeline.run()
    bridge = subprocess.Popen([str(Path(sys.executable).parent / "peloton"), "bridge", "--source", server.url,
                               "--topic", topic, "--idle-timeout-s", "5", "--progress-s", "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    published, got = [], {table: [] for table in outputs}
    try:
        while server.t0 is None and bridge.poll() is None:  # the stand-in's clock starts with the bridge
            time.sleep(0.1)
        shift_s = server.shift_s
        assert shift_s > 0
        # the reference: the causal replay of the compared ticks (later ticks cannot change them)
        compared = json.dumps(slice_recording(stage4_recording, FIRST, FIRST + COMPARED_TICKS))
        expected = causal_step(compared, stage4, stage4_course, shift_s)
        wanted = set(expected.rider_state.data["event_time"].tolist())
        deadline = time.time() + 420
        while time.time() < deadline:
            _pull(subscriber, counter, published, raw=True)
            for table, subscription in outputs.items():
                _pull(subscriber, subscription, got[table])
            final = [row for status, row in got["rider_state"] if status == "final" and row["event_time"] in wanted]
            if len(final) >= len(expected.rider_state) and len(published) >= FED_TICKS:
                break
        time.sleep(3.0)
        _pull(subscriber, counter, published, raw=True)
        for table, subscription in outputs.items():
            _pull(subscriber, subscription, got[table])
        bridge.send_signal(signal.SIGINT)  # Ctrl-C: flush and stop
        out, err = bridge.communicate(timeout=60)
    finally:
        bridge.kill()
        result.cancel()
        server.stop()
    # the stand-in misbehaved as asked, and the bridge said so
    stats = server.stats
    assert (stats.drops, stats.stalls, stats.resumed) == (2, 1, 3), stats
    assert stats.malformed == FED_TICKS // 3 and stats.other == FED_TICKS // 4
    assert bridge.returncode == 0, err
    counts = [line.split(":", 1) for line in out.splitlines()[1:] if ":" in line]
    summary = {k.strip(): int(v.split()[0].replace(",", "")) for k, v in counts
               if v.split() and v.split()[0].replace(",", "").isdigit()}
    # the stand-in has no official result for a recording without truth: the bridge says it is not out
    assert "official result:    not out" in out, out
    assert summary["reconnects"] == 3 and summary["ticks published"] == FED_TICKS, out
    assert summary["malformed events"] == FED_TICKS // 3 and summary["duplicates skipped"] == 0, out
    assert f"pack-2026-4: {FED_TICKS // 4}" in out
    assert err.count("reconnecting in") == 3 and "stalled" in err
    # every tick reached the feed topic exactly once (a redelivery keeps its Pub/Sub id: counted once)
    by_tick = {}
    for m in published:
        by_tick.setdefault(m.attributes["event_time"], set()).add(m.message_id)
    ticks = sorted(int(json.loads(e["data"])["data"]["TimeStamp"] + shift_s) * 1000 for e in fed["events"])
    assert sorted(int(t) for t in by_tick) == ticks
    assert all(len(ids) == 1 for ids in by_tick.values())
    # and the live pipeline's final rows are the causal replay's: none lost, none doubled
    rows = {table: [row for status, row in got[table] if status == "final" and row["event_time"] in wanted]
            for table in outputs}
    assert canonical_rows(rows["rider_state"]) == canonical_rows(expected.rider_state.to_json_rows())
    assert canonical_rows(rows["groups"]) == canonical_rows(expected.groups.to_json_rows())
    assert len(rows["groups"]) > 0
    keys = [(r["bib"], r["event_time"]) for r in rows["rider_state"]]
    assert len(keys) == len(set(keys)) and len(keys) > 6 * 150
