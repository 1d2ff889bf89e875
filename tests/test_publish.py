"""The feed publisher: messages planned from a recording, faults counted, and published to the real emulator."""
import json
import uuid

import numpy as np
import pytest

from peloton.ingest.feed import parse_message
from peloton.sim.publish import ATTR_EVENT_TIME, ATTR_MESSAGE_ID, PlanParams, plan_messages
from pipelines.cli import main
from tests.conftest import slice_recording, write_recording


@pytest.fixture(scope="module")
def small(stage4_recording):
    return slice_recording(stage4_recording, 600, 640)


def _text(recording):
    return json.dumps(recording)


def _fixes(messages, stage_id="s"):
    out = set()
    for m in messages:
        f, _ = parse_message(stage_id, "auto", m.data)
        out |= set(zip(f.bib.tolist(), f.t.tolist()))
    return out


def test_one_message_per_tick_with_its_event_time(small):
    plan = plan_messages(_text(small), "s")
    assert len(plan) == len(small["events"])
    stamps = [json.loads(e["data"])["data"]["TimeStamp"] for e in small["events"]]
    assert [int(m.attributes[ATTR_EVENT_TIME]) for m in plan] == [ts * 1000 for ts in stamps]
    assert [m.at_s for m in plan] == sorted(m.at_s for m in plan)
    assert plan[-1].at_s == pytest.approx(stamps[-1] - stamps[0])


def test_per_fix_messages_carry_the_same_fixes(small):
    ticks = plan_messages(_text(small), "s")
    fixes = plan_messages(_text(small), "s", PlanParams(per_fix=True))
    assert len(fixes) == sum(len(json.loads(e["data"])["data"]["Riders"]) for e in small["events"])
    assert _fixes(fixes) == _fixes(ticks)


def test_faults_are_drawn_and_labelled(small):
    params = PlanParams(duplicate_rate=0.3, disorder_s=30.0, malformed_rate=0.2, seed=3)
    plan = plan_messages(_text(small), "s", params)
    kinds = [m.fault for m in plan]
    n = len(small["events"])
    assert kinds.count("") == n
    assert 0.1 * n < kinds.count("duplicate") < 0.5 * n
    assert 0.05 * n < kinds.count("malformed") < 0.4 * n
    dupes = [m for m in plan if m.fault == "duplicate"]
    originals = {m.attributes[ATTR_MESSAGE_ID]: m for m in plan if not m.fault}
    assert all(d.data == originals[d.attributes[ATTR_MESSAGE_ID]].data for d in dupes)  # same id, same bytes
    event = np.array([int(m.attributes[ATTR_EVENT_TIME]) / 1000 for m in plan if not m.fault])
    assert np.any(np.diff(event) < 0)  # publish order no longer follows event time ...
    lateness = np.array([m.at_s for m in plan if not m.fault]) - (event - event.min())
    assert lateness.min() >= 0 and lateness.max() <= 30.0  # ... by at most the disorder asked for
    for m in plan:
        if m.fault == "malformed":
            fixes, dead = parse_message("s", "auto", m.data)
            assert len(fixes) == 0 and dead and dead[0]["reason"] in ("malformed_json", "bad_shape")
    shifted = plan_messages(_text(small), "s", PlanParams(shift_s=1000.0))
    assert int(shifted[0].attributes[ATTR_EVENT_TIME]) == int(plan_messages(_text(small), "s")[0]
                                                              .attributes[ATTR_EVENT_TIME]) + 1_000_000


def test_publish_to_the_emulator_and_read_back(pubsub_emulator, tmp_path, small, capsys):
    from google.cloud import pubsub_v1

    name = f"feed-{uuid.uuid4().hex[:8]}"
    topic, sub = f"projects/peloton-test/topics/{name}", f"projects/peloton-test/subscriptions/{name}"
    assert main(["pubsub", "init", "--topic", topic, "--subscription", sub,
                 "--output-topic-prefix", f"projects/peloton-test/topics/{name}-out"]) == 0
    assert main(["pubsub", "init", "--topic", topic, "--subscription", sub]) == 0  # idempotent
    path = write_recording(tmp_path / "small.json.gz", small)
    assert main(["-q", "publish", str(path), "--topic", topic, "--speed", "0", "--duplicate-rate", "0.2",
                 "--malformed-rate", "0.1", "--seed", "5"]) == 0
    expected = plan_messages(_text(small), small["meta"]["date"], PlanParams(duplicate_rate=0.2, malformed_rate=0.1,
                                                                              seed=5))
    subscriber = pubsub_v1.SubscriberClient()
    got = []
    try:
        for _ in range(50):
            resp = subscriber.pull(subscription=sub, max_messages=1000, timeout=10)
            got += [m.message for m in resp.received_messages]
            if resp.received_messages:
                subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
            if len(got) >= len(expected):
                break
        extra = subscriber.pull(subscription=sub, max_messages=10, timeout=2)  # and nothing more
        assert not extra.received_messages
    finally:
        subscriber.close()
    assert len(got) == len(expected)
    assert sorted(m.attributes[ATTR_MESSAGE_ID] for m in got) == sorted(m.attributes[ATTR_MESSAGE_ID]
                                                                        for m in expected)
    assert all(m.attributes["stage_id"] == small["meta"]["date"] for m in got)
    assert _fixes([type("M", (), {"data": m.data})() for m in got]) == _fixes(plan_messages(_text(small), "s"))


def test_publish_rejects_a_bad_topic(capsys, tmp_path, small):
    path = write_recording(tmp_path / "small.json.gz", small)
    assert main(["publish", str(path), "--topic", "feed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--topic must look like projects/PROJECT/topics/NAME" in err[0]


def test_a_stretch_of_the_recording_starts_at_zero(small):
    whole = plan_messages(_text(small), "s4")
    times = np.array([int(m.attributes[ATTR_EVENT_TIME]) for m in whole]) / 1000
    part = plan_messages(_text(small), "s4", PlanParams(start_s=60.0, duration_s=60.0))
    part_times = np.array([int(m.attributes[ATTR_EVENT_TIME]) for m in part]) / 1000
    inside = (times - times[0] >= 60.0) & (times - times[0] < 120.0)
    assert np.array_equal(part_times, times[inside]) and 0 < len(part) < len(whole)
    assert part[0].at_s == pytest.approx(part_times[0] - times[0] - 60.0) and all(m.at_s < 60.0 for m in part)


def test_shift_to_now_never_puts_an_event_time_ahead_of_the_clock():
    from peloton.sim.publish import shift_to_now

    first, last, now = 1_783_400_000.0, 1_783_400_000.0 + 1800.0, 1_800_000_000.0
    ticks = np.linspace(first, last, 301)
    for speed in (0.5, 1.0, 2.0, 10.0, 20.0, 0.0):
        shift = shift_to_now(first, last, speed, now, step_s=6.0)
        assert shift % 6.0 == 0.0
        published = now + ((ticks - first) / speed if speed > 0 else 0.0)  # when each tick goes out
        ahead = ticks + shift - published
        assert ahead.max() <= 0.0, speed  # never ahead of the clock ...
        assert ahead.max() > -6.0, speed  # ... and as close to it as whole 6 s steps allow
    # the first tick lands D * (1 - 1/N) before now: now at real speed, 27 min early at 10x for 30 min
    assert now - 6.0 < first + shift_to_now(first, last, 1.0, now) <= now
    assert first + shift_to_now(first, last, 10.0, now) == pytest.approx(now - 1800 * 0.9, abs=6.0)


@pytest.mark.slow
@pytest.mark.realtime
def test_shift_to_now_at_10x_into_the_emulator_is_never_in_the_future(pubsub_emulator, tmp_path, stage4_recording):
    """What 'peloton live' checks (--future-tolerance-s): each event time against the clock when it arrives."""
    from google.cloud import pubsub_v1

    name = f"shift-{uuid.uuid4().hex[:8]}"
    topic, sub = f"projects/peloton-test/topics/{name}", f"projects/peloton-test/subscriptions/{name}"
    assert main(["-q", "pubsub", "init", "--topic", topic, "--subscription", sub]) == 0
    path = write_recording(tmp_path / "slice.json.gz", slice_recording(stage4_recording, 700, 760))
    assert main(["-q", "publish", str(path), "--topic", topic, "--speed", "10", "--shift-to-now",
                 "--duration-s", "90"]) == 0
    subscriber = pubsub_v1.SubscriberClient()
    got = []
    try:
        while True:
            resp = subscriber.pull(subscription=sub, max_messages=1000, timeout=10)
            if not resp.received_messages:
                break
            got += [m.message for m in resp.received_messages]
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
    finally:
        subscriber.close()
    ahead = np.array([int(m.attributes[ATTR_EVENT_TIME]) / 1000 - m.publish_time.timestamp() for m in got])
    assert len(got) >= 6  # a tick every ~12 s
    assert ahead.max() <= 0.5  # none ahead of the clock (0.5 s: the emulator's clock vs ours)
    assert ahead.max() > -6.0 - 3.0  # the last tick close to now (a 6 s step, and a loaded machine)
    assert ahead.min() < ahead.max() - 60  # the first ones well behind: 90 s of race published in 9 s
