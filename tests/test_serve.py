"""The live race page in headless chromium, fed through the real Pub/Sub emulator.

Rows go out on the output topics as ``peloton live`` publishes them (the same
message builder, the causal engine's rows of stage 4 ticks), a stretch at a
time: the page must follow each new tick, and say so when the feed stalls.
"""
import json
import time
import uuid

from peloton.engine import RaceEngine
from peloton.feed import concat_batches, parse_message
from peloton.matching import dedupe
from peloton.predict import StageModel
from peloton.recording import iter_messages
from pipelines.cli import main as peloton
from pipelines.pubsub import output_topic
from pipelines.serve import LivePage
from tests.conftest import slice_recording
from tests.pages import ARTIFACTS, dots, errors
from transforms.sinks import _table_messages

PROJECT = "peloton-test"


def _wait_for(predicate, timeout_s: float = 30.0, every_s: float = 0.5):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return predicate()


def _publish_step(publisher, prefix, step):
    futures = []
    for table, cols in (("rider_state", step.rider_state), ("groups", step.groups), ("predictions", step.predictions),
                        ("race_events", step.race_events)):
        for status in ("provisional", "final"):
            for m in _table_messages(cols, status):
                futures.append(publisher.publish(output_topic(prefix, table), m.data, **m.attributes))
    for f in futures:
        f.result(timeout=30)


def test_the_live_page_follows_the_feed_and_says_when_it_stalls(pubsub_emulator, stage4, stage4_course,
                                                                 stage4_recording, browser):
    from google.cloud import pubsub_v1

    tag = uuid.uuid4().hex[:8]
    prefix = f"projects/{PROJECT}/topics/page-{tag}"
    assert peloton(["-q", "pubsub", "init", "--topic", f"projects/{PROJECT}/topics/feed-{tag}",
                    "--subscription", f"projects/{PROJECT}/subscriptions/feed-{tag}",
                    "--output-topic-prefix", prefix]) == 0
    text = json.dumps(slice_recording(stage4_recording, 700, 730))
    fixes, _ = dedupe(concat_batches([parse_message(stage4.stage_id, k, p)[0] for k, p in iter_messages(text)],
                                     stage4.stage_id))
    forecast = StageModel.of_stage(stage4, stage4_course)
    engine = RaceEngine(stage4.stage_id, stage4_course.finish_km)
    cut = float(fixes.t.min()) + 90.0
    first = engine.advance(fixes.take(fixes.t < cut), stage4_course, forecast)
    second = engine.advance(fixes.take(fixes.t >= cut), stage4_course, forecast)

    page = LivePage(stage4, prefix, port=0, stall_after_s=4.0).start()
    publisher = pubsub_v1.PublisherClient()
    try:
        browser.get(page.url)
        assert "Stage 4" in browser.title
        status = lambda: browser.find_element("id", "status").text  # noqa: E731
        clock = lambda: browser.find_element("id", "clock").text  # noqa: E731
        assert "waiting for the feed" in status() or "stalled" in status()
        _publish_step(publisher, prefix, first)
        last_first = time.strftime("%H:%M", time.gmtime(float(first.rider_state.data["event_time"].max()) / 1000))
        assert _wait_for(lambda: clock().startswith(last_first[:4])), clock()
        assert status().startswith("live: last update")
        shown_first = clock()
        riders_first = dots(browser)
        assert len(riders_first) > 100
        assert len(browser.find_elements("css selector", "#groups-table tr")) > 2
        _publish_step(publisher, prefix, second)
        assert _wait_for(lambda: clock() != shown_first and clock() > shown_first), (shown_first, clock())
        riders_second = dots(browser)
        moved = [b for b in set(riders_first) & set(riders_second) if riders_first[b] != riders_second[b]]
        assert len(moved) > 100  # the riders moved on with the new ticks
        # the group events the engine confirmed are marked on the gaps chart
        said = [e for step in (first, second) for e in step.race_events.to_rows()
                if e["event_type"] in ("split", "merge", "attack", "bridge")]
        assert said and _wait_for(lambda: len(page.data()["events"]) == len(said))
        marks = lambda: [t.get_attribute("textContent") for t in  # noqa: E731
                         browser.find_elements("css selector", "#gaps line title")]
        assert _wait_for(lambda: sum(any(k in m for k in ("split", "merge", "attack", "bridge")) for m in marks())
                         == len(said)), marks()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "live-page.png"))
        # nothing more comes: the page says the feed stalled
        assert _wait_for(lambda: "stalled" in status(), timeout_s=15.0), status()
        browser.save_screenshot(str(ARTIFACTS / "live-page-stalled.png"))
        assert errors(browser) == []
    finally:
        page.stop()
