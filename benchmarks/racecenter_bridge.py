"""Race day ingest: bridge throughput into the Pub/Sub emulator, and latency from the Race Center to a live row.

    python benchmarks/racecenter_bridge.py [--ticks 600] [--repeat 3] [--latency-seconds 180] [--json FILE]

Throughput: the Race Center stand-in serves ``--ticks`` ticks of stage 4
(from tick 600: the race, ~180 riders a tick) as fast as it can, with
chunk quirks; the bridge (``pipelines.bridge.Bridge``, the code behind
``peloton bridge``) reads, parses and publishes them into the emulator. Ticks/s
= ticks acknowledged by Pub/Sub / wall time from the connection to the last
acknowledgement; a subscription on the topic checks that each arrived once.
The reader alone (stream + parse, no Pub/Sub) is timed too.

Latency: the race-day chain as the runbook runs it, at real speed: the
stand-in serves stage 4 from tick 700 with tick times moved to now,
``peloton stage fetch`` writes the stage file from it, ``peloton live`` (the
DirectRunner) reads the feed subscription and writes the output topics, and
``peloton bridge`` connects. Latency of a tick = publish time of its first
provisional rider_state row on the output topic (what ``peloton serve``'s
page reads) minus the moment the stand-in wrote the tick to the socket.
Starts the emulator with scripts/pubsub_emulator.sh unless PUBSUB_EMULATOR_HOST
is set.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.ingest.racecenter import ResilientStream, classify_update  # noqa: E402
from peloton.sim.racecenter import Faults, RaceCenterServer  # noqa: E402
from pipelines.bridge import Bridge, make_publisher  # noqa: E402
from benchmarks.emulator import pubsub_emulator  # noqa: E402

RECORDING = Path(os.environ.get("PELOTON_DATA", ROOT.parent / "shared" / "data")) / "racecenter-2026" / \
    "2026-07-07.json.gz"
PROJECT = "peloton-bench"
PELOTON = [sys.executable, "-m", "pipelines.cli", "-q"]


def _topic(subscriber_too: bool = True):
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/feed-{tag}", f"projects/{PROJECT}/subscriptions/feed-{tag}"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    if subscriber_too:
        pubsub_v1.SubscriberClient().create_subscription(name=sub, topic=topic, ack_deadline_seconds=60)
    return topic, sub, tag


def _count(sub: str, want: int, timeout_s: float = 60.0) -> dict:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    seen: dict = {}
    deadline = time.time() + timeout_s
    while time.time() < deadline and len(seen) < want:
        response = subscriber.pull(subscription=sub, max_messages=1000, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(subscription=sub, ack_ids=[r.ack_id for r in response.received_messages])
        for r in response.received_messages:
            seen.setdefault(r.message.attributes["event_time"], set()).add(r.message.message_id)
    return seen


def throughput(recording: dict, ticks: int) -> dict:
    part = {**recording, "events": recording["events"][600:600 + ticks]}
    # the reader alone: stream + SSE + JSON parse
    server = RaceCenterServer(part, port=0, speed=0, faults=Faults(chunk_quirks=True)).start()
    started, n = time.perf_counter(), 0
    for event in ResilientStream(server.url):
        if event is not None and classify_update(event.data)[0] == "tick":
            n += 1
            if n == len(part["events"]):
                break
    read_s = time.perf_counter() - started
    server.stop()
    # the bridge into the emulator
    topic, sub, _ = _topic()
    server = RaceCenterServer(part, port=0, speed=0, faults=Faults(chunk_quirks=True)).start()
    publisher = make_publisher()
    bridge = Bridge(ResilientStream(server.url), lambda d, **a: publisher.publish(topic, d, **a), progress_s=0,
                    buffer_max=10_000)
    started = time.time()
    stats = bridge.run(until=lambda: bridge.stats.published >= len(part["events"]))
    wall = stats.last_ack_at - started
    server.stop()
    publisher.stop()
    seen = _count(sub, len(part["events"]))
    mb = sum(len(e["data"]) for e in part["events"]) / 1e6
    return {"ticks": len(part["events"]), "published": stats.published, "arrived_once": sum(len(v) == 1 for v in
                                                                                             seen.values()),
            "wall_s": round(wall, 2), "ticks_per_s": round(stats.published / wall, 1),
            "mb_per_s": round(mb / wall, 2), "reader_only_ticks_per_s": round(n / read_s, 1)}


def latency(recording: dict, seconds: float, first: int = 700, lead_s: float = 0.0) -> dict:
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/feed-{tag}", f"projects/{PROJECT}/subscriptions/feed-{tag}"
    prefix = f"projects/{PROJECT}/topics/out-{tag}"
    subprocess.run(PELOTON + ["pubsub", "init", "--topic", topic, "--subscription", sub, "--output-topic-prefix",
                              prefix], check=True, capture_output=True, cwd=ROOT)
    subscriber = pubsub_v1.SubscriberClient()
    out_sub = f"projects/{PROJECT}/subscriptions/out-{tag}"
    subscriber.create_subscription(name=out_sub, topic=f"{prefix}-rider-state")
    feed_copy = f"projects/{PROJECT}/subscriptions/copy-{tag}"  # when the bridge's messages reached Pub/Sub
    subscriber.create_subscription(name=feed_copy, topic=topic)
    part = {**recording, "events": recording["events"][first:first + 400]}
    server = RaceCenterServer(part, port=0, speed=1.0, shift_to_now=True, shift_lead_s=lead_s).start()
    stage_file = ROOT / "bench-results" / f"stage-{tag}.json"
    stage_file.parent.mkdir(exist_ok=True)
    with open(stage_file, "w") as fh:
        subprocess.run(PELOTON + ["stage", "fetch", "--source", server.url, "--date", server.date], check=True,
                       stdout=fh, cwd=ROOT)
    live = subprocess.Popen(PELOTON + ["live", "--subscription", sub, "--stage", str(stage_file),
                                       "--output-topic-prefix", prefix, "--allowed-lateness-s", "30",
                                       "--duration-s", str(seconds + 90)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(12.0)  # the runner starts (as benchmarks/live_latency.py)
    bridge = subprocess.Popen(PELOTON + ["bridge", "--source", server.url, "--topic", topic], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_row: dict = {}
    rows = []
    published: dict = {}
    deadline = time.time() + seconds
    try:
        while time.time() < deadline + 20:
            response = subscriber.pull(subscription=out_sub, max_messages=1000, timeout=5)
            if response.received_messages:
                subscriber.acknowledge(subscription=out_sub, ack_ids=[r.ack_id for r in response.received_messages])
            for r in response.received_messages:
                if r.message.attributes.get("status") != "provisional":
                    continue
                row = json.loads(r.message.data)
                at = r.message.publish_time.timestamp()
                first_row[row["event_time"]] = min(first_row.get(row["event_time"], at), at)
                rows.append((row["event_time"], at))
            response = subscriber.pull(subscription=feed_copy, max_messages=100, timeout=1)
            if response.received_messages:
                subscriber.acknowledge(subscription=feed_copy, ack_ids=[r.ack_id for r in response.received_messages])
            for r in response.received_messages:
                published.setdefault(int(r.message.attributes["event_time"]), r.message.publish_time.timestamp())
            if time.time() >= deadline:
                bridge.terminate()
    finally:
        for proc in (bridge, live):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
        stage_file.unlink(missing_ok=True)
    sent = {}
    for i, at in server.stats.first_sent_at.items():
        kind, doc = classify_update(server.event_text(i))
        if kind == "tick":
            sent[int(round(doc["data"]["TimeStamp"] * 1000))] = at
    per_tick = np.array([first_row[t] - sent[t] for t in sorted(sent) if t in first_row])
    bridge_s = np.array([published[t] - sent[t] for t in sorted(sent) if t in published])
    event_vs_sent = np.array([t / 1000.0 - sent[t] for t in sorted(sent)])
    per_row = np.array([at - sent[t] for t, at in rows if t in sent])
    return {"lead_s": lead_s, "event_time_minus_send_p50_s": round(float(np.median(event_vs_sent)), 2),
            "ticks_sent": len(sent), "ticks_with_rows": int(per_tick.size),
            "bridge_send_to_pubsub_p50_s": round(float(np.median(bridge_s)), 3),
            "bridge_send_to_pubsub_max_s": round(float(bridge_s.max()), 3),
            "first_row_p50_s": round(float(np.median(per_tick)), 2),
            "first_row_p90_s": round(float(np.percentile(per_tick, 90)), 2),
            "first_row_max_s": round(float(per_tick.max()), 2),
            "all_rows_p50_s": round(float(np.median(per_row)), 2),
            "all_rows_p99_s": round(float(np.percentile(per_row, 99)), 2),
            "first_row_per_tick_s": [round(float(x), 2) for x in per_tick]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=600, help="ticks served for the throughput runs")
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs (the median is quoted)")
    ap.add_argument("--latency-seconds", type=float, default=180.0, help="wall seconds of the real-speed run (0: "
                                                                         "skip)")
    ap.add_argument("--lead-s", default="0", help="latency runs: tick times this far ahead of the send, comma-"
                                                  "separated (0: the first tick's time is its send time)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    with gzip.open(RECORDING, "rt", encoding="utf-8") as fh:
        recording = json.load(fh)
    results = {}
    with pubsub_emulator():
        if not args.skip_throughput:
            runs = [throughput(recording, args.ticks) for _ in range(args.repeat)]
            for r in runs:
                print(json.dumps({"throughput": r}), flush=True)
            results["throughput"] = runs
            results["throughput_median_ticks_per_s"] = float(np.median([r["ticks_per_s"] for r in runs]))
            results["reader_only_median_ticks_per_s"] = float(np.median([r["reader_only_ticks_per_s"]
                                                                         for r in runs]))
        if args.latency_seconds:
            results["latency"] = [latency(recording, args.latency_seconds, lead_s=float(lead))
                                  for lead in args.lead_s.split(",")]
            for r in results["latency"]:
                print(json.dumps({"latency": r}), flush=True)
    print(json.dumps({k: v for k, v in results.items() if k != "throughput"}))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
