"""peloton publish: a recording replayed into a topic as a live feed, with a real feed's faults."""
from __future__ import annotations

import collections
import logging
import math
import time

from peloton.ingest.windowing import WINDOWING
from pipelines.commands.common import number
from pipelines.pubsub import (PUBLISH_GIVE_UP_S, PubSubError, check_pubsub_reachable, checked_topic,
                              pubsub_host, signing_key)

__all__ = ["add", "run"]

log = logging.getLogger("peloton")


def add(sub) -> None:
    from peloton.sim.publish import PlanParams

    plan = PlanParams()  # the defaults are the dataclass'
    pub = sub.add_parser("publish", help="replay a recording into a topic as a live feed, with faults")
    pub.add_argument("recording")
    pub.add_argument("--topic", required=True)
    pub.add_argument("--course", help="course file when the recording has no trace")
    pub.add_argument("--speed", type=number(low=0), default=10.0, help="times real speed; 0 = as fast as possible")
    pub.add_argument("--per-fix", action="store_true", help="one message per rider fix, not per feed tick")
    pub.add_argument("--shift-to-now", action="store_true",
                     help="event times moved to the clock: at --speed N the first tick lands "
                          "D*(1-1/N) before now (D: the duration published), so no tick is ahead of the clock "
                          "when it goes out (now at speed 1)")
    pub.add_argument("--duplicate-rate", type=number(low=0, high=1), default=plan.duplicate_rate,
                     help="share of messages published twice")
    pub.add_argument("--disorder-s", type=number(low=0), default=plan.disorder_s,
                     help="publish each message up to S s late")
    pub.add_argument("--malformed-rate", type=number(low=0, high=1), default=plan.malformed_rate,
                     help="extra broken messages, as a share")
    pub.add_argument("--seed", type=number(int, low=0), default=plan.seed, help="seed of the fault draws")
    pub.add_argument("--sign-key-id", help="sign every message with this key (HMAC-SHA256)")
    pub.add_argument("--feed-keys", help="JSON file {\"key id\": \"hex secret\"} (default: $PELOTON_FEED_KEYS)")
    pub.add_argument("--start-s", type=number(low=0), default=plan.start_s,
                     help="start this many seconds into the recording")
    pub.add_argument("--duration-s", type=number(low=0), default=plan.duration_s,
                     help="publish this many seconds of it (0: all)")
    pub.set_defaults(func=run)


def run(args, _beam_args) -> int:
    """Replay a recording into a topic at N times real speed, with event-time attributes and faults."""
    from google.api_core import exceptions
    from google.api_core.retry import Retry
    from google.cloud import pubsub_v1

    from peloton.ingest.eventtime import ATTRIBUTE, seconds
    from peloton.ingest.recording import read_text
    from peloton.match.stage import resolve_stage
    from peloton.sim.publish import PlanParams, plan_messages, shift_to_now

    topic = checked_topic(args.topic)
    if not (args.speed >= 0 and math.isfinite(args.speed)):
        raise PubSubError("--speed must be 0 (as fast as possible) or more")
    for name in ("duplicate_rate", "malformed_rate"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise PubSubError(f"--{name.replace('_', '-')} must be between 0 and 1")
    for name in ("start_s", "duration_s", "disorder_s"):
        if not (getattr(args, name) >= 0 and math.isfinite(getattr(args, name))):
            raise PubSubError(f"--{name.replace('_', '-')} must be a number, 0 or more")
    check_pubsub_reachable(topic)  # before reading a recording that may take seconds
    text = read_text(args.recording)
    stage = resolve_stage(args.recording, getattr(args, "course", None), None)
    shift = 0.0
    sign_key = signing_key(args.sign_key_id, args.feed_keys)
    plan_params = PlanParams(per_fix=args.per_fix, duplicate_rate=args.duplicate_rate, disorder_s=args.disorder_s,
                             malformed_rate=args.malformed_rate, seed=args.seed, start_s=args.start_s,
                             duration_s=args.duration_s, sign_key_id=args.sign_key_id or "", sign_key=sign_key)
    plain = plan_messages(text, stage.stage_id, PlanParams(start_s=args.start_s, duration_s=args.duration_s))
    if not plain:
        span = _recording_span_s(text)
        raise PubSubError(f"nothing to publish: the recording's ticks span {span:.0f} s and --start-s is "
                          f"{args.start_s:g}" if span is not None and args.start_s >= span
                          else f"nothing to publish: no feed ticks in {args.recording} from --start-s "
                               f"{args.start_s:g} for --duration-s {args.duration_s:g}")
    if args.shift_to_now:
        event_s = [seconds(int(m.attributes[ATTRIBUTE])) for m in plain]
        shift = shift_to_now(min(event_s), max(event_s), args.speed, time.time(),
                             step_s=WINDOWING.window_s)  # whole windows of the live pipeline
        plan_params = PlanParams(**{**plan_params.__dict__, "shift_s": shift})
    plan = plan_messages(text, stage.stage_id, plan_params)
    log.info("publishing %d messages of stage %s to %s at %s", len(plan), stage.stage_id, topic,
             "full speed" if args.speed == 0 else f"{args.speed:g}x real time")
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.05))
    # a message Pub/Sub has not taken after this long means it is gone: say so, do not queue for hours
    give_up = Retry(initial=0.1, maximum=2.0, multiplier=1.5, timeout=PUBLISH_GIVE_UP_S)
    started = time.perf_counter()
    pending, faults = collections.deque(), {}
    try:
        for i, message in enumerate(plan):
            if args.speed > 0:
                wait = message.at_s / args.speed - (time.perf_counter() - started)
                if wait > 0:
                    time.sleep(wait)
            while pending and pending[0].done():  # a failure surfaces while publishing, not at the end
                pending.popleft().result()
            pending.append(publisher.publish(topic, message.data, retry=give_up, timeout=5.0,
                                             **message.attributes))
            faults[message.fault or "clean"] = faults.get(message.fault or "clean", 0) + 1
            if i and i % 1000 == 0:
                log.info("published %d of %d messages", i, len(plan))
        for f in pending:
            f.result(timeout=PUBLISH_GIVE_UP_S + 10)
    except (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError) as exc:
        raise PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: {exc.message}") from None
    except exceptions.GoogleAPICallError as exc:
        raise PubSubError(f"Pub/Sub refused: {exc.message}") from None
    except TimeoutError:
        raise PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: messages not accepted within "
                          f"{PUBLISH_GIVE_UP_S + 10:.0f} s") from None
    wall = time.perf_counter() - started
    print(f"published {len(plan):,} messages of stage {stage.stage_id} to {topic} in {wall:.1f} s")
    for kind, n in sorted(faults.items()):
        print(f"  {kind:<10}{n:>9,}")
    if shift:
        print(f"  event times shifted by {shift:+.0f} s (no tick ahead of the clock when published)")
    return 0


def _recording_span_s(text: str) -> float | None:
    """Seconds from a recording's first feed tick to its last (None without ticks)."""
    from peloton.sim.publish import tick_times

    times = tick_times(text)
    return (max(times) - times[0]) if times else None
