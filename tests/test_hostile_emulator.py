"""The hostile gateway through the real Pub/Sub emulator, with the real clock.

A stretch of stage 4 is published at real speed, signed, its event times
moved to now, with every attack of ``tests/hostile.py`` but one mixed in (the
event_time beyond any date is left to the TestStream suite: the runner's
own reader would have to stamp it). The graph reads the subscription the way
the live pipeline does, without a timestamp attribute (our steps validate
and stamp event time), and runs IngestLive and the live race engine with the
wall clock. Final rows must be the causal replay's of the genuine fixes, and
the rows of a tracker whose clock is off flagged ``clock_off``: the delays
are measured against the emulator's own publish times.
"""
import json
import threading
import time
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import pytest

from peloton.sim.publish import PlanParams, plan_messages
from pipelines.cli import main as peloton
from tests import hostile
from tests.conftest import slice_recording
from tests.helpers import publish_at_pace
from transforms.engine import DEAD_LETTER, LATE, LiveRaceState
from transforms.live import FeedSecurity, IngestLive, LiveParams

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

PROJECT = "peloton-test"
LATENESS_S = 30.0
TICKS = 16  # 96 s of feed
_GOT: dict = {}


def _keep(columns, name):
    _GOT.setdefault(name, []).extend(columns.to_rows())


def test_attacks_through_the_emulator_lose_double_and_corrupt_nothing(pubsub_emulator, stage4_recording, stage4,
                                                                      stage4_course):
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/hostile-{tag}", f"projects/{PROJECT}/subscriptions/hostile-{tag}"
    assert peloton(["-q", "pubsub", "init", "--topic", topic, "--subscription", sub]) == 0
    text = json.dumps(slice_recording(stage4_recording, 700, 700 + TICKS))
    old_text = json.dumps(slice_recording(stage4_recording, 550, 554))
    first_ts = int(plan_messages(text, stage4.stage_id)[0].attributes["event_time"]) / 1000
    shift_s = 6.0 * round((time.time() + 10.0 - first_ts) / 6.0)  # whole windows, the first tick ~now
    sign = dict(sign_key_id=hostile.KEY_ID, sign_key=hostile.KEY)
    plan = plan_messages(text, stage4.stage_id, PlanParams(shift_s=shift_s, **sign))
    old = plan_messages(old_text, stage4.stage_id, PlanParams(shift_s=shift_s, **sign))  # 15 min before now
    attacks = [a for a in hostile.attacks(plan, old, stage4_course, stage4.start_list())
               if a.name != "huge_event_time"]
    messages = hostile.merge(plan, attacks)
    withheld = set().union(*(a.withheld for a in attacks))
    victims = set().union(*(a.victims for a in attacks))

    _GOT.clear()
    params = LiveParams(allowed_lateness_s=LATENESS_S)
    security = FeedSecurity(authenticate=True, keys_text=hostile.KEYS_TEXT)  # the wall clock
    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    read = pipeline | beam.io.ReadFromPubSub(subscription=sub, with_attributes=True)
    ingest = read | IngestLive(stage4.stage_id, params, security, stage4.start_list())
    race = ingest["ticks"] | LiveRaceState(stage4, LATENESS_S + params.window_s)
    race.rider_state | "KeepRows" >> beam.Map(_keep, "rider_state")
    ((ingest[DEAD_LETTER], ingest[LATE], race[DEAD_LETTER], race[LATE]) | beam.Flatten()
     | "KeepDead" >> beam.Map(_keep, "dead"))
    result = pipeline.run()
    try:
        started = time.time() + 5.0 - messages[0].at_s
        publisher = pubsub_v1.PublisherClient()
        feeder = threading.Thread(target=publish_at_pace, args=(publisher, topic, messages, started), daemon=True)
        feeder.start()
        reference, baseline = hostile.reference(plan, stage4, stage4_course, withheld)
        wanted = {(r["bib"], r["event_time"]) for r in reference}
        deadline = time.time() + 420
        while time.time() < deadline:
            time.sleep(5.0)
            got = {(r["bib"], int(r["event_time"].timestamp() * 1000) if hasattr(r["event_time"], "timestamp")
                    else r["event_time"]) for r in _GOT.get("rider_state", [])}
            if len(got & wanted) >= len(wanted - withheld):
                break
        time.sleep(3.0)
    finally:
        result.cancel()
    rows, dead = list(_GOT.get("rider_state", [])), list(_GOT.get("dead", []))
    outcome = hostile.score(hostile.Attack("all", "", messages, set(), withheld, victims), rows, dead, reference,
                            baseline)
    assert outcome["lost"] == 0 and outcome["doubled"] == 0 and outcome["forged"] == 0, outcome
    assert outcome["corrupted"] == 0, outcome
    for reason in ("stale", "replayed", "bad_signature", "too_many_riders", "unknown_rider", "missing_field",
                   "future_time", "time_mismatch", "conflicting_fix", "impossible_jump"):
        assert outcome["dead"].get(reason, 0) >= 1, (reason, outcome["dead"])
    # trackers whose clock is off (slow 20 s, fast 10 s; own messages and tick entries) come out flagged, no gaps
    assert outcome["flagged"] > 0 and outcome["flagged_with_gap"] == 0, outcome
    genuine = {(r["bib"], hostile._ms(r["event_time"])) for r in reference}
    for attack in attacks:
        if hostile.CLOCK_OFF in attack.reasons:
            (bib,) = attack.victims
            mine = [r for r in rows if r["bib"] == bib and (bib, hostile._ms(r["event_time"])) not in genuine]
            assert mine and all(r["quality"] == hostile.CLOCK_OFF for r in mine), attack.name
