"""Pub/Sub plumbing of the command line: create a stage's topics, publish a recording as a live feed.

Works against Google Cloud or, with ``PUBSUB_EMULATOR_HOST`` set, the local
emulator (``scripts/pubsub_emulator.sh start``).
"""
from __future__ import annotations

import logging
import re
import time

__all__ = ["OUTPUT_TABLES", "output_topic", "cmd_pubsub_init", "cmd_publish", "PubSubError"]

log = logging.getLogger("peloton")

#: Tables the live pipeline writes to topics (one topic each; late data is a dead letter with reason "late").
OUTPUT_TABLES = ("rider_state", "groups", "race_events", "virtual_standings", "predictions", "climb_efforts",
                 "results", "dead_letter")
#: --shift-to-now moves event times by a whole number of these (the live pipeline's window).
SHIFT_STEP_S = 6.0
_TOPIC = re.compile(r"^projects/[^/]+/topics/[A-Za-z][\w.~+%-]{2,254}$")
_SUBSCRIPTION = re.compile(r"^projects/[^/]+/subscriptions/[A-Za-z][\w.~+%-]{2,254}$")


class PubSubError(ValueError):
    """A bad topic or subscription path, or a Pub/Sub call that failed."""


def _check(path: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.match(path or ""):
        kind = "topics" if pattern is _TOPIC else "subscriptions"
        raise PubSubError(f"{what} must look like projects/PROJECT/{kind}/NAME (NAME: 3-255 characters, "
                          f"starting with a letter): got {path!r}")
    return path


def output_topic(prefix: str, table: str) -> str:
    return f"{prefix}-{table.replace('_', '-')}"


def cmd_pubsub_init(args, _beam_args) -> int:
    """Create (idempotently) the input topic, its subscription and one output topic per table."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    topic = _check(args.topic, _TOPIC, "--topic")
    subscription = _check(args.subscription, _SUBSCRIPTION, "--subscription")
    outputs = [output_topic(_check(args.output_topic_prefix, _TOPIC, "--output-topic-prefix"), t)
               for t in OUTPUT_TABLES] if args.output_topic_prefix else []
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        for name in [topic, *outputs]:
            try:
                publisher.create_topic(name=name)
                print(f"created topic {name}")
            except exceptions.AlreadyExists:
                print(f"topic {name} exists")
        try:
            subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
            print(f"created subscription {subscription}")
        except exceptions.AlreadyExists:
            print(f"subscription {subscription} exists")
    except exceptions.GoogleAPICallError as exc:
        raise PubSubError(f"Pub/Sub refused: {exc.message}") from None
    finally:
        subscriber.close()
    return 0


def feed_keys_text(source: str | None) -> str | None:
    """--feed-keys: a file holding the keys, or None for the environment (PELOTON_FEED_KEYS)."""
    if not source:
        return None
    try:
        with open(source, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise PubSubError(f"cannot read the feed keys: {exc}") from None


def feed_keyring(source: str | None):
    from peloton.auth import ENV_KEYS, Keyring

    text = feed_keys_text(source)
    try:
        keyring = Keyring.from_text(text) if text else Keyring.from_env()
    except ValueError as exc:
        raise PubSubError(str(exc)) from None
    if keyring is None:
        raise PubSubError(f"no feed keys: give --feed-keys FILE or set {ENV_KEYS}")
    return keyring


def cmd_publish(args, _beam_args) -> int:
    """Replay a recording into a topic at N times real speed, with event-time attributes and faults."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    from peloton.publish import PlanParams, plan_messages
    from pipelines.cli import _read_text, resolve_stage

    topic = _check(args.topic, _TOPIC, "--topic")
    if args.speed < 0:
        raise PubSubError("--speed must be 0 (as fast as possible) or more")
    for name in ("duplicate_rate", "malformed_rate"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise PubSubError(f"--{name.replace('_', '-')} must be between 0 and 1")
    text = _read_text(args.recording)
    stage = resolve_stage(args.recording, getattr(args, "course", None), None)
    shift = 0.0
    if args.start_s < 0 or args.duration_s < 0:
        raise PubSubError("--start-s and --duration-s must not be negative")
    sign_key = b""
    if args.sign_key_id:
        keyring = feed_keyring(args.feed_keys)
        if args.sign_key_id not in keyring.keys:
            raise PubSubError(f"--sign-key-id {args.sign_key_id!r} is not among the feed keys")
        sign_key = keyring.keys[args.sign_key_id]
    plan_params = PlanParams(per_fix=args.per_fix, duplicate_rate=args.duplicate_rate, disorder_s=args.disorder_s,
                             malformed_rate=args.malformed_rate, seed=args.seed, start_s=args.start_s,
                             duration_s=args.duration_s, sign_key_id=args.sign_key_id or "", sign_key=sign_key)
    if args.shift_to_now:
        first = plan_messages(text, stage.stage_id, PlanParams(start_s=args.start_s, duration_s=args.duration_s))[:1]
        if first:
            # whole 6 s windows: the live windows then cut the race where the replay's do
            shift = SHIFT_STEP_S * round((time.time() - int(first[0].attributes["event_time"]) / 1000.0)
                                         / SHIFT_STEP_S)
        plan_params = PlanParams(**{**plan_params.__dict__, "shift_s": shift})
    plan = plan_messages(text, stage.stage_id, plan_params)
    log.info("publishing %d messages of stage %s to %s at %s", len(plan), stage.stage_id, topic,
             "full speed" if args.speed == 0 else f"{args.speed:g}x real time")
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.05))
    started = time.perf_counter()
    futures, faults = [], {}
    try:
        for i, message in enumerate(plan):
            if args.speed > 0:
                wait = message.at_s / args.speed - (time.perf_counter() - started)
                if wait > 0:
                    time.sleep(wait)
            futures.append(publisher.publish(topic, message.data, **message.attributes))
            faults[message.fault or "clean"] = faults.get(message.fault or "clean", 0) + 1
            if i and i % 1000 == 0:
                log.info("published %d of %d messages", i, len(plan))
        for f in futures:
            f.result(timeout=60)
    except exceptions.GoogleAPICallError as exc:
        raise PubSubError(f"Pub/Sub refused: {exc.message}") from None
    wall = time.perf_counter() - started
    print(f"published {len(plan):,} messages of stage {stage.stage_id} to {topic} in {wall:.1f} s")
    for kind, n in sorted(faults.items()):
        print(f"  {kind:<10}{n:>9,}")
    if shift:
        print(f"  event times shifted by {shift:+.0f} s (now = the first tick)")
    return 0
