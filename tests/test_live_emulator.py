"""The live pipeline end to end on the real Pub/Sub emulator and the DirectRunner.

A stretch of stage 4 is published at real speed with its event times moved
to now, 10 % of messages twice and every message up to 30 s late; the
pipeline reads the subscription and writes its tables to output topics. The
final rows of the first minute must be the causal replay's rows, none lost,
none doubled; the provisional rows must have come out too. Meanwhile the live
race page (``peloton serve``) reads the same topics in headless chromium and
must follow the race tick by tick.
"""
import json
import re
import threading
import time
import uuid

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
import pytest

from peloton.sim.publish import PlanParams, plan_messages
from pipelines.cli import main as peloton
from pipelines.live import LIVE_TABLES, build_live
from pipelines.pubsub import output_topic
from pipelines.serve import LivePage
from tests.conftest import slice_recording
from tests.helpers import canonical_rows, causal_step, publish_at_pace
from tests.pages import dots, errors
from transforms.live import LiveParams

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

PROJECT = "peloton-test"
LATENESS_S = 40.0
COMPARED_TICKS = 6  # the first minute of the stretch (ticks 0..60 s)
FED_TICKS = 18  # the feed goes on for three minutes: its ticks move the runner's watermark
#: Tables whose rows are said once decided, not per tick.
DECIDED_TABLES = ("race_events", "results", "virtual_standings", "climb_efforts", "classifications")


def _pull(subscriber, subscription, into):
    response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=5)
    if response.received_messages:
        subscriber.acknowledge(subscription=subscription, ack_ids=[r.ack_id for r in response.received_messages])
    for r in response.received_messages:
        into.append((r.message.attributes["status"], json.loads(r.message.data), r.message.publish_time))


def test_a_stage_published_through_the_emulator_gives_the_causal_replay_rows(pubsub_emulator, stage4_recording,
                                                                               stage4, stage4_course, capsys, browser):
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/feed-{tag}", f"projects/{PROJECT}/subscriptions/feed-{tag}"
    prefix = f"projects/{PROJECT}/topics/out-{tag}"
    assert peloton(["-q", "pubsub", "init", "--topic", topic, "--subscription", sub,
                    "--output-topic-prefix", prefix]) == 0
    subscriber = pubsub_v1.SubscriberClient()
    outputs = {}
    for table in [t for t in LIVE_TABLES if t != "dead_letter"]:  # every table the pipeline writes but dead letters
        outputs[table] = f"projects/{PROJECT}/subscriptions/out-{tag}-{table}"
        subscriber.create_subscription(name=outputs[table], topic=output_topic(prefix, table))

    compared = json.dumps(slice_recording(stage4_recording, 700, 700 + COMPARED_TICKS))
    fed = json.dumps(slice_recording(stage4_recording, 700, 700 + FED_TICKS))
    first_ts = plan_messages(compared, stage4.stage_id)[0].attributes["event_time"]
    shift_s = 6.0 * round((time.time() + 8.0 - int(first_ts) / 1000) / 6.0)  # whole windows, the first tick ~now
    plan = plan_messages(fed, stage4.stage_id, PlanParams(shift_s=shift_s, duplicate_rate=0.1, disorder_s=30.0,
                                                          seed=2))
    assert any(m.fault == "duplicate" for m in plan)

    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    build_live(pipeline, stage4, sub, topic_prefix=prefix, params=LiveParams(allowed_lateness_s=LATENESS_S))
    result = pipeline.run()
    page = LivePage(stage4, prefix, port=0).start()  # the live race page on the same topics, in chromium
    browser.get(page.url)
    clocks = set()
    try:
        started = time.time() + 5.0 - plan[0].at_s  # let the reader start
        publisher = pubsub_v1.PublisherClient()
        feeder = threading.Thread(target=publish_at_pace, args=(publisher, topic, plan, started), daemon=True)
        feeder.start()
        # the reference: the causal replay of the compared ticks (later ticks cannot change them)
        expected = causal_step(compared, stage4, stage4_course, shift_s)
        # the tables said once decided (events, results, ...) may say a row of the first minute later: the
        # causal replay of all the fed ticks has every row the pipeline can say before it is stopped
        fed_rows = causal_step(fed, stage4, stage4_course, shift_s)
        wanted = set(expected.rider_state.data["event_time"].tolist())
        got = {table: [] for table in outputs}
        deadline = time.time() + 300
        while time.time() < deadline:
            for table in ("rider_state", "groups", "predictions"):  # the rest once, below: an empty pull waits 5 s
                _pull(subscriber, outputs[table], got[table])
            final = [row for status, row, _ in got["rider_state"] if status == "final" and row["event_time"] in wanted]
            clocks.add(browser.find_element("id", "clock").text)
            if len(final) >= len(expected.rider_state):
                break
        time.sleep(3.0)
        for table, subscription in outputs.items():
            _pull(subscriber, subscription, got[table])
        riders_on_page = len(dots(browser))
        page_status = browser.find_element("id", "status").text
        page_errors = errors(browser)
    finally:
        result.cancel()
        page.stop()
    rows = {table: [row for status, row, _ in got[table] if status == "final" and row["event_time"] in wanted]
            for table in outputs}
    assert canonical_rows(rows["rider_state"]) == canonical_rows(expected.rider_state.to_json_rows())
    assert canonical_rows(rows["groups"]) == canonical_rows(expected.groups.to_json_rows())
    assert canonical_rows(rows["predictions"]) == canonical_rows(expected.predictions.to_json_rows())
    for table in DECIDED_TABLES:  # every final row said is the causal replay's, once
        said = [row for status, row, _ in got[table] if status == "final"]
        causal = canonical_rows(getattr(fed_rows, table).to_json_rows())
        assert all(canonical_rows([row])[0] in causal for row in said), table
        assert len(set(canonical_rows(said))) == len(said), table
    assert len(rows["predictions"]) == len(rows["groups"]) > 0
    # the page followed the race as the ticks came in: several moments shown, riders on the map, no errors
    assert len({c for c in clocks if re.fullmatch(r"\d\d:\d\d:\d\d CES?T", c)}) >= 3, clocks  # the race's local time
    # the badge names the newest row's event time (live, or stalled once that is 30 s old: the finals come later)
    assert riders_on_page > 100 and " newest data " in page_status and page_errors == []
    keys = [(r["bib"], r["event_time"]) for r in rows["rider_state"]]
    assert len(keys) == len(set(keys))  # none doubled
    provisional = {(r["bib"], r["event_time"]) for status, r, _ in got["rider_state"] if status == "provisional"}
    # provisional skips a fix that arrives after a newer one of its rider: with 30 s disorder, a tick or two
    assert len(provisional & set(keys)) >= 0.6 * len(keys)
    # provisional rows came out seconds after their tick was published (which was up to 30 s after its event
    # time: the disorder; about 10 s here, with this test's reader, page and browser), final ones after the
    # settle time
    published = {}
    for m in plan:
        at = started + m.at_s
        published[int(m.attributes["event_time"])] = min(published.get(int(m.attributes["event_time"]), at), at)
    after_publish = np.median([p.timestamp() - published[row["event_time"]] for s, row, p in got["rider_state"]
                               if s == "provisional" and row["event_time"] in wanted])
    final_lag = np.median([p.timestamp() - row["event_time"] / 1000 for s, row, p in got["rider_state"]
                           if s == "final" and row["event_time"] in wanted])
    assert after_publish < 15.0 and LATENESS_S < final_lag
