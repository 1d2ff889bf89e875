"""Issue 27, live: the operator's afternoon on a Flink session cluster, with Flink's own faults.

``peloton live --runner FlinkRunner`` reads the real Pub/Sub emulator on a local Flink cluster (a JobManager and
two TaskManagers, checkpoints every 2 s) while a stretch of stage 4 is published at the race's own pace with its
event times moved to now (5 % duplicates, a few seconds of disorder) and poison messages mid-stream. A third of
the way in, the TaskManager running the job is killed with SIGKILL (its Python worker with it): Flink restarts
the job from its last checkpoint on the other one. Two thirds in, the operator stops it with a savepoint (SIGINT)
and starts it again from that savepoint. The archive must then hold exactly the causal replay's rows of the
stretch: none lost, none doubled; every poison message a dead letter, once.

At the race's pace, as a real feed: every tick reaches Pub/Sub within seconds of its event time, always the same,
so the trackers' delays are steady (at three times the pace, 30 ticks, it passes too since a message's fixes
reach the engine as one element; BENCHMARKS, "Live on Flink").
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from peloton.ingest.feed import concat_batches, parse_message
from peloton.ingest.recording import iter_messages
from peloton.match.matching import dedupe
from peloton.predict.model import StageModel
from peloton.sim.evaluate import read_table
from peloton.sim.publish import PlanParams, plan_messages
from peloton.state.classifications import StageClassifier
from peloton.state.engine import RaceEngine
from peloton.state.results import same_time_gap_s
from pipelines.flink import _rest
from tests.conftest import slice_recording
from tests.helpers import canonical_rows, flink_session

# realtime: published on the wall clock at the race's pace, so it runs with the other wall-clock tests, not beside
# the CPU-bound ones
pytestmark = [pytest.mark.flink, pytest.mark.slow, pytest.mark.realtime]

PROJECT = "peloton-test"
PELOTON = str(Path(sys.executable).parent / "peloton")
LATENESS_S = 20.0
FIRST_TICK, TICKS = 703, 10  # 84 s of race: two blocks of five ticks around one of the feed's 36 s holes


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory):
    """(REST address, state folder) of a cluster of our own: the test kills one of its TaskManagers."""
    state = tmp_path_factory.mktemp("flink-state")
    with flink_session(state) as master:
        yield master, state


def _running_job(master: str, timeout_s: float) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        running = [j["jid"] for j in _rest(master, "/jobs/overview")["jobs"] if j["state"] == "RUNNING"]
        if running:
            job = _rest(master, f"/jobs/{running[0]}")
            if all(v["status"] == "RUNNING" for v in job["vertices"]):
                return running[0]
        time.sleep(1.0)
    raise AssertionError(f"no live job running on {master} after {timeout_s:.0f} s")


def _completed_checkpoints(master: str, job: str) -> int:
    return _rest(master, f"/jobs/{job}/checkpoints")["counts"]["completed"]


def _busy_taskmanager(state: Path) -> int:
    """The pid of the TaskManager running the job: the one whose Python SDK worker runs in its session
    (scripts/flink.sh starts each JVM with setsid)."""
    taskmanagers = {int(p.read_text()) for p in state.glob("taskmanager-*.pid")}
    table = subprocess.run(["ps", "-ww", "-eo", "sid=,args="], capture_output=True, text=True).stdout
    for line in table.splitlines():
        sid, _, args = line.strip().partition(" ")
        if "peloton-flink-worker" in args and int(sid) in taskmanagers:
            return int(sid)
    raise AssertionError(f"no TaskManager of {sorted(taskmanagers)} runs a Python worker:\n{table}")


def test_operator_afternoon_on_flink_equals_the_causal_replay(
        flink_cluster, pubsub_emulator, stage4_recording, stage4, stage4_course, tmp_path):
    from google.cloud import pubsub_v1

    master, state = flink_cluster
    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/fl-{tag}", f"projects/{PROJECT}/subscriptions/fl-{tag}"
    init = subprocess.run([PELOTON, "-q", "pubsub", "init", "--topic", topic, "--subscription", sub],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    stage_file = tmp_path / "stage.json"
    stage_file.write_text(stage4.to_json())
    out = tmp_path / "out"
    env = {**os.environ, "PELOTON_FLINK_STATE": str(state)}

    def live(*extra):
        return subprocess.Popen([PELOTON, "live", "--subscription", sub, "--stage", str(stage_file), "--out", str(out),
                                 "--allowed-lateness-s", str(LATENESS_S), "--avro-flush-s", "3",
                                 "--runner", "FlinkRunner", "--flink-master", master, "--parallelism", "1", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    first = live()
    job = _running_job(master, 240)
    text = json.dumps(slice_recording(stage4_recording, FIRST_TICK, FIRST_TICK + TICKS))
    first_ts = int(plan_messages(text, stage4.stage_id)[0].attributes["event_time"]) / 1000
    # published at the race's pace, each tick within a few seconds of its event time, as tests/test_live_operator.py
    # does (a steady delay: the clock watch flags no one; the gate's future tolerance is 30 s)
    shift_s = 6.0 * round((time.time() + 10.0 - first_ts) / 6.0)
    plan = plan_messages(text, stage4.stage_id, PlanParams(shift_s=shift_s, duplicate_rate=0.05, disorder_s=3.0,
                                                          seed=5))
    publishing_s = max(m.at_s for m in plan) - plan[0].at_s
    genuine = plan[len(plan) // 2]
    poison = [(genuine.data, {**genuine.attributes, "event_time": "abc"}),
              (genuine.data, {k: v for k, v in genuine.attributes.items() if k != "event_time"})]
    poison += [(b'{"bind": "x", "n": %d}' % i, {**genuine.attributes, "event_time": bad})
               for i, bad in enumerate(["", "1e30", "12.5", "-5", "x", "0x1"])]
    poison.append((b"x" * 9_000_000, dict(genuine.attributes)))

    publisher = pubsub_v1.PublisherClient()
    published = threading.Event()
    started = time.time() + 8.0 - plan[0].at_s  # plan[0] published 8 s from now
    begin = time.time()
    timeline = {}

    def feed():
        for i, m in enumerate(plan):
            wait = m.at_s - (time.time() - started)
            if wait > 0:
                time.sleep(wait)
            publisher.publish(topic, m.data, **m.attributes).result()
            if i == len(plan) // 2:
                for data, attrs in poison:
                    publisher.publish(topic, data, **attrs).result()
        published.set()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    # a third of the way: a checkpoint holds some of the stream; the TaskManager running the job dies
    time.sleep(max(0.0, started + plan[0].at_s + publishing_s / 3 - time.time()))
    checkpoints = _completed_checkpoints(master, job)
    while _completed_checkpoints(master, job) < checkpoints + 1:
        time.sleep(0.5)
    archived_before_kill = len(read_table(str(out), "rider_state")) if (out / "rider_state").exists() else 0
    victim = _busy_taskmanager(state)
    os.killpg(victim, signal.SIGKILL)
    timeline["killed"] = time.time()
    # Flink restarts the job from its last checkpoint on the other TaskManager
    deadline = time.time() + 180
    while time.time() < deadline:
        restored = _rest(master, f"/jobs/{job}/checkpoints")["counts"]["restored"]
        if restored and _rest(master, f"/jobs/{job}")["state"] == "RUNNING":
            break
        time.sleep(1.0)
    assert restored >= 1, _rest(master, f"/jobs/{job}/exceptions")
    after_restore = _completed_checkpoints(master, job)
    while _completed_checkpoints(master, job) <= after_restore:  # every task running again, checkpointing
        assert time.time() < deadline + 120, "no checkpoint after the restore"
        time.sleep(1.0)
    timeline["restored"] = time.time()
    # two thirds: the operator stops it with a savepoint and starts it again from there
    time.sleep(max(0.0, started + plan[0].at_s + 2 * publishing_s / 3 - time.time()))
    first.send_signal(signal.SIGINT)
    log, _ = first.communicate(timeout=330)
    assert first.returncode == 0, log
    said = [line for line in log.splitlines() if "resume with --savepoint-path" in line]
    assert said, log
    savepoint = said[-1].rsplit(" ", 1)[1]
    timeline["savepoint"] = time.time()
    second = live("--savepoint-path", savepoint)
    try:
        _running_job(master, 240)
        timeline["resumed"] = time.time()
        feeder.join()

        fixes = concat_batches([parse_message(stage4.stage_id, k, p)[0] for k, p in iter_messages(text)],
                               stage4.stage_id)
        fixes.t = fixes.t + shift_s
        # the engine as the live step makes it (transforms.engine._new_engine): its virtual GC says leader changes
        expected = RaceEngine(stage4.stage_id, stage4_course.finish_km, time_trial=stage4.is_time_trial,
                              same_time_gap_s=same_time_gap_s(stage4.stage_type),
                              classifier=StageClassifier(stage4)).advance(
            dedupe(fixes)[0], stage4_course, StageModel.of_stage(stage4, stage4_course))
        # the last tick is final once the watermark (the wall clock, the feed quiet) has passed it by the settle time
        deadline = time.time() + 150
        while time.time() < deadline:
            if (out / "rider_state").exists() and len(read_table(str(out), "rider_state")) >= len(
                    expected.rider_state):
                break
            time.sleep(2.0)
        time.sleep(8.0)  # a last flush: anything beyond the expected rows would be here now
        second.send_signal(signal.SIGINT)
        log2, _ = second.communicate(timeout=330)
        assert second.returncode == 0, log2
    finally:
        if second.poll() is None:
            second.kill()

    got = {t: read_table(str(out), t) for t in ("rider_state", "groups", "race_events", "predictions", "dead_letter")}
    assert 0 < archived_before_kill < len(expected.rider_state) or archived_before_kill == 0
    for table in ("rider_state", "groups", "race_events", "predictions"):
        assert canonical_rows(got[table]) == canonical_rows(getattr(expected, table).to_json_rows()), table
    reasons = sorted(d["reason"] for d in got["dead_letter"])
    assert len(got["dead_letter"]) == len({json.dumps(canonical_rows([d])) for d in got["dead_letter"]}), reasons
    assert reasons.count("too_large") == 1 and reasons.count("bad_attribute") == 7, reasons
    assert set(reasons) == {"too_large", "bad_attribute"}, reasons  # nothing late, nothing from the future
    print(f"\nflink afternoon: {len(plan)} messages + {len(poison)} poison; {len(expected.rider_state)} rider_state "
          f"rows; {archived_before_kill} archived before the kill; restored {timeline['restored'] - timeline['killed']:.0f} s "
          f"after the kill; resumed {timeline['resumed'] - timeline['savepoint']:.0f} s after the savepoint; "
          f"{time.time() - begin:.0f} s from the job running")
