"""The official result end to end: ``peloton racecenter serve`` (a short simulated stage, its result built from
its truth) -> ``peloton bridge`` -> the Pub/Sub emulator -> ``peloton live``.

The stand-in serves the stage at once and its result (``/api/rankingTypeArrival-2026-5``) once the last event
is out; the bridge polls it after the ticks stop and publishes it. Before that, a hostile publisher puts on
the feed topic rankings of another stage, rankings naming riders not on the start list, and a malformed one;
after it, the bridge's rankings message comes once more (a redelivery). The archive of the live pipeline,
stopped with Ctrl-C, must hold every provisional row the causal replay gives (none lost), one official row per
rider of the result and per classified rider (none doubled), each bad document one dead letter with its
reason; the official rows equal ``replay --causal --rankings`` of the same recording.
"""
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from peloton.ingest.gate import Gate
from peloton.match.stage import stage_from_recording
from peloton.sim.evaluate import read_table
from pipelines.bridge import rankings_from_truth
from pipelines.cli import main as peloton
from tests.helpers import canonical_rows
from tests.test_official import simulated_stage

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

PROJECT = "peloton-test"


def _peloton(*args):
    return subprocess.Popen([str(Path(sys.executable).parent / "peloton"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _pull(subscriber, subscription, into):
    response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=5)
    if response.received_messages:
        subscriber.acknowledge(subscription=subscription, ack_ids=[r.ack_id for r in response.received_messages])
    into.extend(r.message for r in response.received_messages)


def test_the_official_result_arrives_after_the_finish_and_supersedes_the_provisional_rows(pubsub_emulator, tmp_path):
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/off-{tag}", f"projects/{PROJECT}/subscriptions/off-{tag}"
    counter = f"projects/{PROJECT}/subscriptions/count-{tag}"
    assert peloton(["-q", "pubsub", "init", "--topic", topic, "--subscription", sub]) == 0
    subscriber, publisher = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
    subscriber.create_subscription(name=counter, topic=topic, ack_deadline_seconds=60)

    recording, doc, truth = simulated_stage(tmp_path, time.time() - 660.0)
    stage = stage_from_recording(doc)
    stage_file = tmp_path / "stage.json"
    stage_file.write_text(stage.to_json())
    expected_doc = rankings_from_truth(truth, doc)
    assert expected_doc and stage.number == 5
    out = tmp_path / "out"

    # a hostile publisher first: another stage's rankings, riders not on the start list, not JSON
    first_tick_ms = str(int(json.loads(doc["events"][0]["data"])["data"]["TimeStamp"]) * 1000)
    attrs = {"kind": "rankings", "event_time": first_tick_ms, "stage_id": stage.stage_id}
    other_stage = json.dumps(expected_doc).replace("rankingTypeArrival-2026-5", "rankingTypeArrival-2026-6")
    strangers = json.dumps([{"type": "ite", "rankings": [{"bib": 901, "position": 1, "absolute": 1000},
                                                         {"bib": 902, "position": 2, "absolute": 2000}]}])
    for payload in (other_stage, strangers, "[{\"type\": \"ite\", \"rankings\": [{"):
        publisher.publish(topic, payload.encode(), **attrs).result()

    live = _peloton("live", "--subscription", sub, "--stage", str(stage_file), "--out", str(out),
                    "--allowed-lateness-s", "60", "--avro-flush-s", "2")
    server = _peloton("racecenter", "serve", str(recording), "--port", "0", "--speed", "0", "--keepalive-s", "1")
    url = server.stdout.readline().split(": ", 1)[1].split()[0]
    assert url.startswith("http://127.0.0.1:")
    bridge = _peloton("bridge", "--source", url, "--topic", topic, "--idle-timeout-s", "5", "--progress-s", "0",
                      "--rankings-after-s", "3", "--rankings-every-s", "1")
    published = []
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not any(m.attributes.get("kind") == "rankings" and "bind" in m.attributes
                                                 for m in published):
            _pull(subscriber, counter, published)
        official = [m for m in published if m.attributes.get("kind") == "rankings" and "bind" in m.attributes]
        assert len(official) == 1, [m.attributes for m in published][-5:]
        # Pub/Sub delivers at least once, a restarted bridge fetches again: the same message once more
        publisher.publish(topic, official[0].data, **dict(official[0].attributes)).result()
        bridge.send_signal(signal.SIGINT)
        bridge_out, bridge_err = bridge.communicate(timeout=60)
        # the operator stops the pipeline once the official result is archived (Avro files every 2 s): a drain
        # stops reading, so what is still unread stays in the subscription for the next run, not in this archive
        deadline = time.time() + 150
        while time.time() < deadline and not any(
                r["source"] == "official" for r in (read_table(str(out), "results") if (out / "results").exists()
                                                    else [])):
            time.sleep(2.0)
        time.sleep(5.0)  # and what came with it
        live.send_signal(signal.SIGINT)
        log, live_err = live.communicate(timeout=180)
    finally:
        for proc in (bridge, live, server):
            if proc.poll() is None:
                proc.kill()
    assert live.returncode == 0 and "Traceback" not in log + live_err, live_err[-3000:]
    assert bridge.returncode == 0 and "official result:    published (rankingTypeArrival-2026-5)" in bridge_out, \
        bridge_out + bridge_err
    ticks = [m for m in published if m.attributes.get("kind") == "tick"]
    assert len(ticks) == len(doc["events"])
    assert int(official[0].attributes["event_time"]) == max(int(m.attributes["event_time"]) for m in ticks)

    got = {t: read_table(str(out), t) for t in ("results", "classifications", "dead_letter")}
    # each bad document is one dead letter, with its reason
    reasons = sorted(d["reason"] for d in got["dead_letter"])
    assert reasons == ["malformed_json", "unknown_rider", "wrong_stage"], reasons
    # the reference: the causal replay of the same recording with the same official result
    Gate.of_stage(stage).check_rankings(official[0].data, "bridged")
    (tmp_path / "rk.json").write_bytes(official[0].data)
    ref = tmp_path / "ref"
    assert peloton(["-q", "replay", str(recording), "--stage", str(stage_file), "--causal", "--out", str(ref),
                    "--rankings", str(tmp_path / "rk.json")]) == 0
    want = {t: read_table(str(ref), t) for t in ("results", "classifications")}
    for table in ("results", "classifications"):
        rows, expected = got[table], want[table]
        official_rows = [r for r in rows if r["source"] == "official"]
        # nothing lost: every provisional row of the causal replay; nothing doubled: one row per key
        assert canonical_rows([r for r in rows if r["source"] == "provisional"]) == \
            canonical_rows([r for r in expected if r["source"] == "provisional"])
        assert canonical_rows(official_rows) == canonical_rows([r for r in expected if r["source"] == "official"])
        keys = [(r["event_time"], r.get("classification"), r["bib"], r.get("team"), r["source"]) for r in rows]
        assert len(keys) == len(set(keys)) and official_rows
    # the official result supersedes the provisional one: per rider, the official row is the one a consumer takes
    results = got["results"]
    finishers = sorted(int(b) for b in truth["finish"])
    by_rider = {}
    for r in sorted(results, key=lambda r: r["source"] == "official"):
        by_rider[r["bib"]] = r
    assert sorted(b for b, r in by_rider.items() if r["source"] == "official") == finishers
    assert sorted(r["position"] for r in by_rider.values() if r["source"] == "official") == \
        list(range(1, len(finishers) + 1))
    assert {r["bib"] for r in results if r["source"] == "provisional"} >= set(finishers)
    gc = [r for r in got["classifications"] if r["classification"] == "general" and r["source"] == "official"]
    assert sorted(r["bib"] for r in gc) == finishers and all(r["decided"] for r in gc)
    assert {r["classification"] for r in got["classifications"] if r["source"] == "official"} >= \
        {"general", "points", "young", "teams"}
