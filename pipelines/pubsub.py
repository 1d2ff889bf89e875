"""Pub/Sub plumbing of the command line: create a stage's topics, publish a recording as a live feed.

Works against Google Cloud or, with ``PUBSUB_EMULATOR_HOST`` set, the local
emulator (``scripts/pubsub_emulator.sh start``).
"""
from __future__ import annotations

import collections
import logging
import math
import os
import re
import socket
import threading
import time

from peloton.ingest.windowing import WINDOWING
from peloton.output.tables import LIVE, table_of, written_by

__all__ = ["OUTPUT_TABLES", "output_topic", "cmd_pubsub_init", "cmd_publish", "PubSubError",
           "check_pubsub_reachable", "checked_topic", "checked_subscription", "pubsub_host", "PROBE_TIMEOUT_S"]

log = logging.getLogger("peloton")

#: Tables the live pipeline writes to topics, from the registry (one topic each; late data is a dead letter
#: with reason "late").
OUTPUT_TABLES = written_by(LIVE)
#: a Google Cloud project id as Beam's Pub/Sub IO accepts it (6-63 characters, domain-scoped ids with ':')
_PROJECT = r"[a-z][-a-z0-9:.]{4,61}[a-z0-9]"
_TOPIC = re.compile(rf"^projects/{_PROJECT}/topics/[A-Za-z][\w.~+%-]{{2,254}}$")
_SUBSCRIPTION = re.compile(rf"^projects/{_PROJECT}/subscriptions/[A-Za-z][\w.~+%-]{{2,254}}$")
#: the whole reachability/credentials probe answers within this (the operator's "within 10 s")
PROBE_TIMEOUT_S = 4.0
#: publish gives up (one error line, exit 2) when Pub/Sub has not taken a message for this long
PUBLISH_GIVE_UP_S = 15.0


class PubSubError(ValueError):
    """A bad topic or subscription path, or a Pub/Sub call that failed."""


def _check(path: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.match(path or ""):
        kind = "topics" if pattern is _TOPIC else "subscriptions"
        raise PubSubError(f"{what} must look like projects/PROJECT/{kind}/NAME (PROJECT: 6-63 lowercase "
                          f"letters, digits and '-'; NAME: 3-255 characters, starting with a letter): got {path!r}")
    return path


def checked_topic(path: str, what: str = "--topic") -> str:
    """``path`` if it is a topic path Pub/Sub accepts, else :class:`PubSubError` naming ``what``: a bad path is
    one error line at the command, not a failure inside a running pipeline."""
    return _check(path, _TOPIC, what)


def checked_subscription(path: str, what: str = "--subscription") -> str:
    """``path`` if it is a subscription path Pub/Sub accepts, else :class:`PubSubError` naming ``what``."""
    return _check(path, _SUBSCRIPTION, what)


def pubsub_host() -> str:
    """Where the Pub/Sub clients go: the emulator's host:port, or Google Cloud's endpoint."""
    return os.environ.get("PUBSUB_EMULATOR_HOST") or "pubsub.googleapis.com:443"


def _probe(paths: tuple[str, ...], timeout_s: float) -> None:
    """The body of :func:`check_pubsub_reachable` (run under its deadline)."""
    from google.api_core import exceptions

    deadline = time.monotonic() + timeout_s
    host = pubsub_host()
    emulator = bool(os.environ.get("PUBSUB_EMULATOR_HOST"))
    if emulator:  # a refused or silent port fails here in milliseconds, before any client retries
        name, _, port = host.rpartition(":")
        try:
            socket.create_connection((name.strip("[]") or "localhost", int(port)), timeout=timeout_s / 2).close()
        except (OSError, ValueError) as exc:
            raise PubSubError(f"cannot reach Pub/Sub at {host} (PUBSUB_EMULATOR_HOST): "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    else:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        # its "No project ID could be determined" warning is not ours to print: the paths name the project
        logging.getLogger("google.auth._default").setLevel(logging.ERROR)
        try:
            google.auth.default(scopes=["https://www.googleapis.com/auth/pubsub"])
        except DefaultCredentialsError:
            raise PubSubError("no Google Cloud credentials (set PUBSUB_EMULATOR_HOST for the emulator, or "
                              "GOOGLE_APPLICATION_CREDENTIALS / 'gcloud auth application-default login')") from None
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), None
    path = paths[0]
    try:
        for path in paths:
            left = max(0.2, deadline - time.monotonic())
            if "/topics/" in path:
                publisher.get_topic(request={"topic": path}, timeout=left, retry=None)
            elif "/subscriptions/" in path:
                subscriber = subscriber or pubsub_v1.SubscriberClient()
                subscriber.get_subscription(request={"subscription": path}, timeout=left, retry=None)
            else:
                parts = path.split("/")
                project = parts[1] if len(parts) > 1 and parts[0] == "projects" else path
                next(iter(publisher.list_topics(request={"project": f"projects/{project}", "page_size": 1},
                                                timeout=left, retry=None)), None)
    except exceptions.NotFound:
        what = "topic" if "/topics/" in path else "subscription"
        raise PubSubError(f"no {what} {path} at {host} (create it with 'peloton pubsub init')") from None
    except (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError) as exc:
        raise PubSubError(f"cannot reach Pub/Sub at {host}: {exc.message or type(exc).__name__}") from None
    except (exceptions.Unauthenticated, exceptions.PermissionDenied) as exc:
        raise PubSubError(f"Pub/Sub at {host} refused the credentials: {exc.message}") from None
    except exceptions.GoogleAPICallError as exc:
        raise PubSubError(f"Pub/Sub at {host} refused: {exc.message}") from None
    finally:
        if subscriber is not None:
            subscriber.close()


def check_pubsub_reachable(*paths: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, in one line, when Pub/Sub cannot serve ``paths``: unreachable, no credentials, or missing.

    Each path is a project id, a topic or a subscription path; a topic or subscription must exist. Every
    command that talks to Pub/Sub calls this first: without it the client libraries retry for a minute or
    more and end in tracebacks. Raises :class:`PubSubError`; the whole probe takes at most ``timeout_s``
    (plus half a second), whatever the network does.
    """
    outcome: list = []

    def run():
        try:
            _probe(paths, timeout_s)
            outcome.append(None)
        except PubSubError as exc:
            outcome.append(exc)
        except Exception as exc:  # noqa: BLE001 - any client failure is "cannot reach", said once
            outcome.append(PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: {type(exc).__name__}: {exc}"))

    worker = threading.Thread(target=run, name="pubsub-probe", daemon=True)  # a hung resolver cannot hold us
    worker.start()
    worker.join(timeout_s + 0.5)
    if not outcome:
        raise PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: no answer in {timeout_s + 0.5:g} s")
    if outcome[0] is not None:
        raise outcome[0]


def output_topic(prefix: str, table: str) -> str:
    return table_of(table).topic(prefix)


def cmd_pubsub_init(args, _beam_args) -> int:
    """Create (idempotently) the input topic, its subscription and one output topic per table."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    topic = checked_topic(args.topic)
    subscription = checked_subscription(args.subscription)
    outputs = [output_topic(checked_topic(args.output_topic_prefix, "--output-topic-prefix"), t)
               for t in OUTPUT_TABLES] if args.output_topic_prefix else []
    check_pubsub_reachable(topic.split("/")[1])
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    calls = {"timeout": 2 * PROBE_TIMEOUT_S}  # reachable a moment ago: a call that hangs now is an outage
    try:
        for name in [topic, *outputs]:
            try:
                publisher.create_topic(name=name, **calls)
                print(f"created topic {name}")
            except exceptions.AlreadyExists:
                print(f"topic {name} exists")
        try:
            # acknowledged messages are kept (7 days): 'peloton live' seeks back to the stage's first message at
            # every start, to rebuild the race state after a restart or when started mid-race
            subscriber.create_subscription(request={
                "name": subscription, "topic": topic, "ack_deadline_seconds": 60, "retain_acked_messages": True,
                "message_retention_duration": {"seconds": 7 * 86400}}, **calls)
            print(f"created subscription {subscription}")
        except exceptions.AlreadyExists:
            print(f"subscription {subscription} exists")
    except (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError) as exc:
        raise PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: {exc.message}") from None
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
    from peloton.ingest.auth import ENV_KEYS, Keyring

    text = feed_keys_text(source)
    try:
        keyring = Keyring.from_text(text) if text else Keyring.from_env()
    except ValueError as exc:
        raise PubSubError(str(exc)) from None
    if keyring is None:
        raise PubSubError(f"no feed keys: give --feed-keys FILE or set {ENV_KEYS}")
    return keyring


def signing_key(key_id: str | None, source: str | None) -> bytes:
    """The secret that ``--sign-key-id`` names among the feed keys; empty when messages go unsigned."""
    if not key_id:
        return b""
    keyring = feed_keyring(source)
    if key_id not in keyring.keys:
        raise PubSubError(f"--sign-key-id {key_id!r} is not among the feed keys")
    return keyring.keys[key_id]


def cmd_publish(args, _beam_args) -> int:
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
