"""An operator's afternoon, on the real Pub/Sub emulator: ``peloton live`` as a process, killed and restarted.

A stretch of stage 4 is published at real speed with its event times moved
to now (5 % duplicates, a few seconds of disorder). Mid-stream come poison
messages: an ``event_time`` of "abc", a tick without ``event_time``, 40
messages with unreadable event times and one of 9 MB. Halfway the pipeline
is killed with SIGKILL and started again 5 s later on the same subscription
and folder; at the end it is stopped with SIGINT and must drain. Its
archive must then hold exactly the causal replay's rows of the stretch:
none lost, none doubled, none extra; every poison message a dead letter.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from peloton.ingest.feed import concat_batches, parse_message
from peloton.ingest.recording import iter_messages
from peloton.match.matching import dedupe
from peloton.predict.model import StageModel
from peloton.sim.evaluate import read_table
from peloton.sim.publish import PlanParams, plan_messages
from peloton.state.engine import RaceEngine
from tests.conftest import slice_recording
from tests.helpers import canonical_rows

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

PROJECT = "peloton-test"
LATENESS_S = 20.0
FIRST_TICK, TICKS = 700, 15  # about three minutes of race
KILL_AFTER_S = 80.0


def _peloton(*args, **popen):
    return subprocess.Popen([str(Path(sys.executable).parent / "peloton"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def _live(sub, stage_file, out):
    return _peloton("live", "--subscription", sub, "--stage", str(stage_file), "--out", str(out),
                    "--allowed-lateness-s", str(LATENESS_S), "--avro-flush-s", "5")


def test_killed_restarted_and_stopped_live_pipeline_archives_exactly_the_causal_replay(
        pubsub_emulator, stage4_recording, stage4, stage4_course, tmp_path):
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/op-{tag}", f"projects/{PROJECT}/subscriptions/op-{tag}"
    init = _peloton("-q", "pubsub", "init", "--topic", topic, "--subscription", sub)
    assert init.wait(60) == 0, init.stdout.read()
    stage_file = tmp_path / "stage.json"
    stage_file.write_text(stage4.to_json())
    out = tmp_path / "out"

    text = json.dumps(slice_recording(stage4_recording, FIRST_TICK, FIRST_TICK + TICKS))
    first_ts = int(plan_messages(text, stage4.stage_id)[0].attributes["event_time"]) / 1000
    shift_s = 6.0 * round((time.time() + 10.0 - first_ts) / 6.0)
    plan = plan_messages(text, stage4.stage_id, PlanParams(shift_s=shift_s, duplicate_rate=0.05, disorder_s=3.0,
                                                          seed=5))
    genuine = next(m for m in plan if not m.fault and m.at_s > 30)
    poison = [(genuine.data, {**genuine.attributes, "event_time": "abc"}),
              (genuine.data, {k: v for k, v in genuine.attributes.items() if k != "event_time"})]
    bad_times = ["", "1e30", "12.5", "99999999999999999999", "-5", "abc"] * 6 + ["x", "y", "z", "0x1"]
    poison += [(b'{"bind": "x", "n": %d}' % i, {**genuine.attributes, "event_time": bad})
               for i, bad in enumerate(bad_times)]
    poison.append((b"x" * 9_000_000, dict(genuine.attributes)))
    assert len(poison) == 2 + 40 + 1

    publisher = pubsub_v1.PublisherClient()
    live = _live(sub, stage_file, out)
    started = time.time() + 8.0 - plan[0].at_s

    def feed():
        injected = False
        for m in plan:
            wait = m.at_s - (time.time() - started)
            if wait > 0:
                time.sleep(wait)
            publisher.publish(topic, m.data, **m.attributes).result()
            if not injected and m.at_s > 40:
                for data, attrs in poison:
                    publisher.publish(topic, data, **attrs).result()
                injected = True

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    time.sleep(started + KILL_AFTER_S - time.time())
    archived_before_kill = len(read_table(str(out), "rider_state"))
    live.send_signal(signal.SIGKILL)
    live.wait(10)
    time.sleep(5.0)
    restarted_at = time.time()
    live = _live(sub, stage_file, out)
    feeder.join()
    # the last tick is final after the settle time; then the operator stops it
    time.sleep(LATENESS_S + 6.0 + 5.0)
    live.send_signal(signal.SIGINT)
    stopping = time.time()
    log, _ = live.communicate(timeout=150)
    drain_s = time.time() - stopping
    assert live.returncode == 0, log
    assert "drained in" in log and "Traceback" not in log, log

    fixes = concat_batches([parse_message(stage4.stage_id, k, p)[0] for k, p in iter_messages(text)],
                           stage4.stage_id)
    fixes.t = fixes.t + shift_s
    expected = RaceEngine(stage4.stage_id, stage4_course.finish_km).advance(
        dedupe(fixes)[0], stage4_course, StageModel.of_stage(stage4, stage4_course))
    got = {t: read_table(str(out), t) for t in ("rider_state", "groups", "race_events", "predictions", "dead_letter")}
    assert 0 < archived_before_kill < len(expected.rider_state)  # the kill came mid-stream, after some rows
    assert canonical_rows(got["rider_state"]) == canonical_rows(expected.rider_state.to_json_rows())
    assert canonical_rows(got["groups"]) == canonical_rows(expected.groups.to_json_rows())
    assert canonical_rows(got["race_events"]) == canonical_rows(expected.race_events.to_json_rows())
    assert canonical_rows(got["predictions"]) == canonical_rows(expected.predictions.to_json_rows())
    # every poison message is a dead letter, once (the restart re-read them all)
    reasons = [d["reason"] for d in got["dead_letter"]]
    assert len(got["dead_letter"]) == len({json.dumps(canonical_rows([d])) for d in got["dead_letter"]})
    assert reasons.count("too_large") == 1
    assert len(reasons) >= 42, reasons
    first_final = min(os.path.getmtime(p) for p in (out / "rider_state").glob("*.avro")
                      if os.path.getmtime(p) > restarted_at)
    print(f"\noperator: {len(expected.rider_state)} rows, {archived_before_kill} archived before the kill; "
          f"first archive file {first_final - restarted_at:.1f} s after the restart; drained in {drain_s:.1f} s; "
          f"dead letters {dict(zip(*np.unique(reasons, return_counts=True)))}")
