"""Publish-to-output latency of the live pipeline on the DirectRunner with the Pub/Sub emulator.

    python benchmarks/live_latency.py [--seconds 60] [--tick-speeds 1,10,30] [--fix-speeds 1,3,10]

For each message shape (one tick per message, one fix per message) and each
speed (1 = the real feed: a tick of ~180 riders every 6 s), a stretch of
stage 4 (from one hour in) is published for ``--seconds`` of wall time with
its event times moved to now, into a fresh topic read by a fresh
``peloton live`` process. Latency of a row = the output message's publish
time on the rider_state topic minus the time its input message was
published. Provisional rows are what a graphic shows; final rows come
``allowed lateness + one window`` later by design, and are reported at the
real rate only.

A rate is *sustained* when (nearly) every row came out and the latency of
the last third of the run is not growing: p50 of the last third at most
twice that of the first third plus one second.
Starts the emulator with scripts/pubsub_emulator.sh unless
PUBSUB_EMULATOR_HOST is set.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.sim.publish import PlanParams, plan_messages, shift_to_now  # noqa: E402
from benchmarks.emulator import pubsub_emulator  # noqa: E402

RECORDING = ROOT.parent / "shared" / "data" / "racecenter-2026" / "2026-07-07.json.gz"
PROJECT = "peloton-bench"
LATENESS_S = 30.0


def _keys(message):
    """(bib, event ms) of every fix a message carries."""
    body = json.loads(message.data)
    ms = int(message.attributes["event_time"])
    if "bib" in body:
        return [(int(body["bib"]), ms)]
    return [(int(r["Bib"]), ms) for r in body["data"]["Riders"] if isinstance(r, dict) and r.get("Bib") is not None]


def run_one(text: str, stage_file: str, per_fix: bool, speed: float, seconds: float, disorder_s: float = 0.0) -> dict:
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/feed-{tag}", f"projects/{PROJECT}/subscriptions/feed-{tag}"
    prefix = f"projects/{PROJECT}/topics/out-{tag}"
    peloton = [sys.executable, "-m", "pipelines.cli", "-q"]
    subprocess.run(peloton + ["pubsub", "init", "--topic", topic, "--subscription", sub,
                              "--output-topic-prefix", prefix], check=True, capture_output=True, cwd=ROOT)
    subscriber = pubsub_v1.SubscriberClient()
    out_sub = f"projects/{PROJECT}/subscriptions/out-{tag}"
    subscriber.create_subscription(name=out_sub, topic=f"{prefix}-rider-state")
    # the stretch: `seconds` of wall time at this speed, from an hour into the stage
    base = PlanParams(per_fix=per_fix, start_s=3600.0, duration_s=seconds * speed, disorder_s=disorder_s)
    unshifted = plan_messages(text, "x", base)
    times = [int(m.attributes["event_time"]) / 1000 for m in unshifted]
    # as 'peloton publish --shift-to-now' does: event times never ahead of the clock when published (the gate
    # refuses those); the publisher starts 12 s from now
    shift = shift_to_now(min(times), max(times), speed, time.time() + 12.0)
    plan = plan_messages(text, "x", PlanParams(**{**base.__dict__, "shift_s": shift}))
    live = subprocess.Popen(peloton + ["live", "--subscription", sub, "--stage", stage_file, "--output-topic-prefix",
                                       prefix, "--allowed-lateness-s", str(LATENESS_S),
                                       "--duration-s", str(seconds + 120)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sent: dict = {}
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.01))

    def publish():
        time.sleep(12.0)  # the runner starts
        started = time.time()
        for m in plan:
            wait = m.at_s / speed - (time.time() - started)
            if wait > 0:
                time.sleep(wait)
            now = time.time()
            for key in _keys(m):
                sent.setdefault(key, now)
            publisher.publish(topic, m.data, **m.attributes)

    feeder = threading.Thread(target=publish, daemon=True)
    feeder.start()
    received = {"provisional": {}, "final": {}}
    expected = sum(len(_keys(m)) for m in plan)
    deadline = time.time() + 12.0 + seconds + 100.0
    while time.time() < deadline:
        response = subscriber.pull(subscription=out_sub, max_messages=1000, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(subscription=out_sub, ack_ids=[r.ack_id for r in response.received_messages])
        for r in response.received_messages:
            row = json.loads(r.message.data)
            key = (row["bib"], row["event_time"])
            received[r.message.attributes["status"]].setdefault(key, r.message.publish_time.timestamp())
        if not feeder.is_alive() and len(received["provisional"]) >= expected and (
                speed > 1 or len(received["final"]) >= expected):
            break
    live.terminate()
    try:
        live.wait(timeout=30)
    except subprocess.TimeoutExpired:
        live.kill()
    result = {"shape": "fix" if per_fix else "tick", "speed": speed, "disorder_s": disorder_s, "messages": len(plan),
              "msg_per_s": round(len(plan) / seconds, 1), "fixes_sent": expected}
    for status, got in received.items():
        keys = [k for k in got if k in sent]
        if not keys:
            result[status] = None
            continue
        order = np.argsort([sent[k] for k in keys])
        lat = np.array([got[k] - sent[k] for k in keys])[order]
        third = max(1, lat.size // 3)
        early, late = np.median(lat[:third]), np.median(lat[-third:])
        result[status] = {"rows": len(keys), "share": round(len(keys) / expected, 4),
                          "p50_s": round(float(np.median(lat)), 2), "p99_s": round(float(np.percentile(lat, 99)), 2),
                          "first_third_p50_s": round(float(early), 2), "last_third_p50_s": round(float(late), 2),
                          "sustained": bool(len(keys) >= 0.99 * expected and late <= 2 * early + 1.0)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="wall seconds of publishing per run")
    ap.add_argument("--tick-speeds", default="1,10,30")
    ap.add_argument("--fix-speeds", default="1,3,10")
    ap.add_argument("--disorder-s", default="0", help="comma-separated: each run publishes messages up to S s late")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    from peloton.match.stage import resolve_stage

    text = __import__("peloton.ingest.recording", fromlist=["read_local"]).read_local(str(RECORDING))
    stage_file = ROOT / "bench-results" / "stage04.json"
    stage_file.parent.mkdir(exist_ok=True)
    stage_file.write_text(resolve_stage(str(RECORDING)).to_json())
    results = []
    with pubsub_emulator():
        runs = [(False, float(s)) for s in args.tick_speeds.split(",") if s] + \
               [(True, float(s)) for s in args.fix_speeds.split(",") if s]
        disorders = [float(d) for d in args.disorder_s.split(",") if d]
        for (per_fix, speed), disorder in [(r, d) for d in disorders for r in runs]:
            r = run_one(text, str(stage_file), per_fix, speed, args.seconds, disorder)
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
