"""The Race Center protocol: the SSE parser's and de-chunker's quirks, the stand-in, stage fetch, record, bridge.

The stand-in is a real HTTP server on loopback, the client reads a real
socket, the bridge publishes to the real Pub/Sub emulator, and the record
round trip replays through the real Beam replay.
"""
import gzip
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from peloton.ingest.auth import ATTR_KEY_ID, ATTR_SIGNATURE, sign
from peloton.ingest.racecenter import (Dechunker, RaceCenterError, ResilientStream, SSEParser, classify_update,
                                       race_center_base)
from peloton.sim.evaluate import read_table
from peloton.sim.publish import plan_messages
from peloton.sim.racecenter import Faults, RaceCenterServer
from pipelines.cli import main
from tests.conftest import STAGE4, slice_recording, write_recording
from tests.helpers import canonical_rows, free_port

PROJECT = "peloton-test"


def _feed_all(parser, pieces):
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


STREAM = ("\ufeff: hello\r\nretry: 2000\r\n\r\n"
          "id: 7\nevent: update\ndata: {\"bind\": \"x\",\ndata:  \"é\": 1}\n\n"
          ": keep-alive\r\r"
          "event: update\rdata: second\r\r"  # CR line ends; the id persists
          "data: no event name\r\n\r\n"
          "id: 9\nevent: update\ndata: cut at the end").encode("utf-8")


def _expected():
    return [("update", '{"bind": "x",\n "é": 1}', "7"), ("update", "second", "7"), ("message", "no event name", "7")]


@pytest.mark.parametrize("split", ["whole", "bytes", "random"])
def test_sse_parser_reads_events_split_anywhere(split):
    if split == "whole":
        pieces = [STREAM]
    elif split == "bytes":  # one byte at a time: CR and LF of one line end, UTF-8 sequences split
        pieces = [STREAM[i:i + 1] for i in range(len(STREAM))]
    else:
        rng = random.Random(3)
        cuts = sorted(rng.sample(range(1, len(STREAM)), 12))
        pieces = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)])]
    parser = SSEParser()
    events = [(e.event, e.data, e.id) for e in _feed_all(parser, pieces)]
    assert events == _expected()
    assert parser.comments == 2 and parser.retry_ms == 2000
    # the last event never ended (no blank line): not dispatched, and its id is not what a client resumes from
    assert parser.last_event_id == "9" and events[-1][2] == "7"


def _chunked(body: bytes, rng: random.Random, quirky: bool) -> bytes:
    out, i = [], 0
    while i < len(body):
        n = rng.randint(1, 40)
        piece = body[i:i + n]
        size = rng.choice(("%x", "%X ", "%08x", "%x;name=value", "%x\t")) % len(piece) if quirky else "%x" % len(piece)
        end = rng.choice((b"\r\n", b"\n")) if quirky else b"\r\n"
        out.append(size.encode() + end + piece + end)
        i += n
    return b"".join(out) + b"0\r\n\r\n"


def test_dechunker_reads_the_framing_strict_parsers_refuse():
    import h11

    body = STREAM * 3
    framed = _chunked(body, random.Random(1), quirky=True)
    # a strict parser (h11) refuses this framing ...
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/live-stream", headers=[("Host", "x")]))
    conn.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed)
    with pytest.raises(h11.RemoteProtocolError):
        while conn.next_event() not in (h11.NEED_DATA, h11.PAUSED):
            pass
    # ... the tolerant one reads it whole, fed in any pieces
    for step in (1, 7, len(framed)):
        d = Dechunker()
        got = b"".join(d.feed(framed[i:i + step]) for i in range(0, len(framed), step))
        assert got == body and d.done
    # a server that says chunked and does not chunk: the body as it is
    d = Dechunker()
    assert d.feed(b"data: not chunked\n\n") == b"data: not chunked\n\n" and d.raw


def test_classify_update_sorts_ticks_other_binds_and_broken_events():
    tick = json.dumps({"bind": "telemetryCompetitor-2026", "data": {"TimeStamp": 1783428264, "Riders": []}})
    assert classify_update(tick)[0] == "tick"
    assert classify_update(json.dumps({"bind": "pack-2026-4", "data": {}})) == ("other", "pack-2026-4")
    assert classify_update("not json") == ("malformed", "not JSON")
    assert classify_update(tick[:40])[0] == "malformed"
    no_time = json.dumps({"bind": "telemetryCompetitor-2026", "data": {"Riders": []}})
    assert classify_update(no_time) == ("malformed", "telemetry without a TimeStamp")
    forever = '{"bind": "telemetryCompetitor-2026", "data": {"TimeStamp": Infinity, "Riders": []}}'
    assert classify_update(forever) == ("malformed", "telemetry without a TimeStamp")


@pytest.fixture(scope="module")
def slice30(stage4_recording):
    return slice_recording(stage4_recording, 700, 730)


def _serve(recording, **kw):
    return RaceCenterServer(recording, port=0, **kw).start()


def test_stand_in_with_every_fault_delivers_each_event_once_in_order(slice30):
    faults = Faults(drop_at=(3, 11), stall_at=((20, 2.5),), malformed_every=4, other_every=7, chunk_quirks=True)
    server = _serve(slice30, speed=0, faults=faults, keepalive_s=0.3)
    notes = []
    stream = ResilientStream(server.url, idle_timeout_s=1.2, backoff_s=0.05, log=notes.append)
    kinds, ticks = {}, []
    try:
        for event in stream:
            if event is None:
                continue
            kind, doc = classify_update(event.data)
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "tick":
                ticks.append((event.id, event.data))
            if len(ticks) == len(slice30["events"]):
                break
    finally:
        server.stop()
    assert [i for i, _ in ticks] == [str(i) for i in range(30)]
    assert [d for _, d in ticks] == [e["data"] for e in slice30["events"]]  # verbatim
    assert server.stats.drops == 2 and server.stats.stalls == 1 and stream.reconnects == 3
    assert server.stats.resumed == 3 and kinds == {"tick": 30, "malformed": 7, "other": 4}
    assert sum("stalled" in n for n in notes) == 1 and sum("closed" in n for n in notes) == 2


def test_stand_in_keeps_the_recorded_rhythm_and_a_late_client_joins_live(slice30):
    rec = {**slice30, "events": [{**e, "dt": 400} for e in slice30["events"][:6]]}
    server = _serve(rec, speed=2.0, keepalive_s=0.05)  # 200 ms apart
    try:
        stream = ResilientStream(server.url, idle_timeout_s=5)
        got = []
        for event in stream:
            if event is not None:
                got.append((time.time(), event.id))
            if len(got) == 3:
                break
        late = ResilientStream(server.url, idle_timeout_s=5)
        first_late = next(e for e in late if e is not None)
    finally:
        server.stop()
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    assert all(0.15 < g < 0.4 for g in gaps), gaps
    assert int(first_late.id) >= 3  # joined live, not from the start


def test_stage_fetch_from_the_stand_in_equals_stage_export(stage4_recording, capsys):
    server = _serve(slice_recording(stage4_recording, 0, 5))
    try:
        assert main(["stage", "fetch", "--source", server.url + "/live-stream", "--date", "2026-07-07"]) == 0
        fetched = capsys.readouterr().out
        assert main(["stage", "export", str(STAGE4)]) == 0
        exported = capsys.readouterr().out
        assert fetched == exported and len(json.loads(fetched)["route"]) > 1000
        assert main(["stage", "fetch", "--source", server.url, "--date", "2026-08-30"]) == 2
        assert "no stage on 2026-08-30" in capsys.readouterr().err
        assert main(["stage", "fetch", "--source", server.url, "--date", "2026-07-08"]) == 2  # the stand-in has
        assert "no trace of stage 5" in capsys.readouterr().err  # the trace of its own stage only
    finally:
        server.stop()


@pytest.mark.parametrize("argv, message", [
    (["bridge", "--source", "ftp://example.org", "--topic", f"projects/{PROJECT}/topics/feed"], "http(s) URL"),
    (["bridge", "--source", "http://127.0.0.1:8090", "--topic", "feed"], "projects/PROJECT/topics/NAME"),
    (["stage", "fetch", "--source", "http://127.0.0.1:8090", "--date", "7 July"], "YYYY-MM-DD"),
    (["stage", "fetch", "--source", "http://no-such-host.invalid", "--date", "2026-07-07"], "cannot"),
    (["record", "--source", "racecenter.letour.fr", "--out", "x.json.gz"], "http(s) URL"),
    (["racecenter", "serve", str(STAGE4), "--drop-at", "ten"], "--drop-at"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("peloton: error:") and message in err[0], err


def test_race_center_base_accepts_the_stream_url():
    assert race_center_base("https://racecenter.letour.fr/live-stream") == "https://racecenter.letour.fr"
    assert race_center_base("http://127.0.0.1:8090/") == "http://127.0.0.1:8090"
    with pytest.raises(RaceCenterError):
        race_center_base("http://host:notaport")


def test_bridge_refuses_a_stream_that_is_not_there(pubsub_emulator, capsys, slice30):
    from google.cloud import pubsub_v1

    topic = f"projects/{PROJECT}/topics/feed-{uuid.uuid4().hex[:8]}"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    server = _serve(slice30)
    try:
        assert main(["-q", "bridge", "--source", server.url + "/elsewhere", "--topic", topic]) == 2
        assert "HTTP 404" in capsys.readouterr().err
    finally:
        server.stop()
    port = free_port()  # a port nothing listens on
    assert main(["-q", "bridge", "--source", f"http://127.0.0.1:{port}", "--topic", topic]) == 2
    assert "Connection refused" in capsys.readouterr().err
    assert main(["-q", "bridge", "--source", "http://127.0.0.1:1", "--topic", topic + "-none"]) == 2
    assert "pubsub init" in capsys.readouterr().err


def _pull_all(subscriber, subscription, want, timeout_s=60):
    got = []
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=500, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(subscription=subscription, ack_ids=[r.ack_id for r in response.received_messages])
        got.extend(r.message for r in response.received_messages)
        if len(got) >= want:
            time.sleep(1.0)
            response = subscriber.pull(subscription=subscription, max_messages=500, timeout=3)
            got.extend(r.message for r in response.received_messages)
            break
    return got


def test_bridge_publishes_signed_ticks_as_publish_does(pubsub_emulator, slice30, tmp_path):
    """The console script, as an operator runs it: messages equal to 'peloton publish's, signed, then Ctrl-C."""
    import signal

    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/feed-{tag}", f"projects/{PROJECT}/subscriptions/feed-{tag}"
    assert main(["-q", "pubsub", "init", "--topic", topic, "--subscription", sub]) == 0
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"k1": "00" * 32}))
    server = _serve(slice30, speed=0, faults=Faults(drop_at=(9,), other_every=10, chunk_quirks=True))
    bridge = subprocess.Popen([str(Path(sys.executable).parent / "peloton"), "bridge", "--source", server.url,
                               "--topic", topic, "--sign-key-id", "k1", "--feed-keys", str(keys), "--progress-s", "1",
                               "--stage-id", "2026-07-07"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got = _pull_all(pubsub_v1.SubscriberClient(), sub, len(slice30["events"]))
        time.sleep(1.5)
        bridge.send_signal(signal.SIGINT)
        out, err = bridge.communicate(timeout=60)
    finally:
        bridge.kill()
        server.stop()
    assert bridge.returncode == 0, err
    assert "ticks published:" in out and "bridge: 30 ticks published" in err and "reconnects 1" in err
    assert "pack-2026-4: 3" in out
    expected = {m.attributes["event_time"]: m for m in plan_messages(json.dumps(slice30), "2026-07-07")}
    assert sorted(m.attributes["event_time"] for m in got) == sorted(expected)  # each tick once
    for m in got:
        twin = expected[m.attributes["event_time"]]
        assert m.data == twin.data  # the very payload 'peloton publish' sends
        assert {k: m.attributes[k] for k in ("stage_id", "kind")} == {"stage_id": "2026-07-07", "kind": "tick"}
        assert m.attributes[ATTR_KEY_ID] == "k1"
        assert m.attributes[ATTR_SIGNATURE] == sign(m.data, dict(m.attributes), bytes(32))  # over every attribute


@pytest.mark.slow
def test_record_then_replay_gives_the_tables_of_the_original(slice30, tmp_path, capsys):
    from peloton.match.stage import stage_from_recording
    from pipelines.replay import build_replay
    from apache_beam.testing.test_pipeline import TestPipeline

    server = _serve(slice30, speed=0, faults=Faults(drop_at=(5, 17), chunk_quirks=True), keepalive_s=0.2)
    out = tmp_path / "recorded.json.gz"
    try:
        assert main(["-q", "record", "--source", server.url, "--out", str(out), "--date", "2026-07-07",
                     "--silence-s", "2"]) == 0
    finally:
        server.stop()
    assert "recorded 30 events (30 telemetry ticks)" in capsys.readouterr().out
    with gzip.open(out, "rt") as fh:
        recorded = json.load(fh)
    assert [e["data"] for e in recorded["events"]] == [e["data"] for e in slice30["events"]]
    assert recorded["rest"] == slice30["rest"] and recorded["meta"]["date"] == "2026-07-07"
    stage = stage_from_recording(slice30)
    tables = {}
    for name, rec in (("original", slice30), ("recorded", recorded)):
        path = write_recording(tmp_path / f"{name}.json.gz", rec)
        p = TestPipeline()
        build_replay(p, stage_from_recording(rec), str(path), str(tmp_path / f"out-{name}"))
        p.run().wait_until_finish()
        tables[name] = {t: read_table(str(tmp_path / f"out-{name}"), t) for t in ("rider_state", "groups")}
    assert stage_from_recording(recorded).to_json() == stage.to_json()
    for t in ("rider_state", "groups"):
        assert canonical_rows(tables["recorded"][t]) == canonical_rows(tables["original"][t])
    assert len(tables["original"]["rider_state"]) > 1000


def test_bridge_drops_the_oldest_ticks_when_pub_sub_stalls_and_says_so(slice30):
    """Pub/Sub stalled: its futures stay pending until the whole stretch is read (a stand-in for a slow
    service; the emulator cannot be made slow on demand). The bounded buffer keeps the newest ticks."""
    from concurrent.futures import Future

    from pipelines.bridge import Bridge

    pending, notes = [], []

    def stalled_publish(data, **attrs):
        future = Future()
        pending.append((future, attrs["event_time"]))
        return future

    server = _serve(slice30, speed=300)  # a tick every 20 ms
    bridge = Bridge(ResilientStream(server.url), stalled_publish, buffer_max=5, max_in_flight=2, progress_s=0,
                    say=notes.append)
    runner = threading.Thread(target=bridge.run, kwargs={"until": lambda: bridge.stats.ticks == 30})
    runner.start()
    try:
        deadline = time.time() + 30
        while bridge.stats.ticks < 30 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        # the reader went on while nothing was acknowledged: 2 in flight, 5 held, the rest dropped, oldest first
        assert bridge.stats.ticks == 30 and len(pending) == 2 and bridge.stats.dropped == 23
        assert any("dropping the oldest" in n for n in notes)
        while runner.is_alive() and time.time() < deadline:  # Pub/Sub recovers: the held ticks are flushed
            for future, _ in list(pending):
                if not future.done():
                    future.set_result("id")
            time.sleep(0.05)
    finally:
        server.stop()
    assert not runner.is_alive() and bridge.stats.published == 7
    times = sorted(int(json.loads(e["data"])["data"]["TimeStamp"]) * 1000 for e in slice30["events"])
    assert sorted(int(t) for _, t in pending) == times[:2] + times[-5:]
