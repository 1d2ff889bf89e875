"""peloton bridge: the Race Center's live telemetry published to the pipeline's Pub/Sub topic."""
from __future__ import annotations

import argparse
import sys
import time

import re

from peloton.ingest.racecenter import RaceCenterError, ResilientStream, race_center_base
from pipelines.bridge import Bridge, make_publisher, rankings_fetcher
from pipelines.commands.common import number, sigterm_as_interrupt

__all__ = ["add", "run"]


def add(sub) -> None:
    bridge = sub.add_parser("bridge", help="publish the Race Center's live telemetry to a Pub/Sub topic, as "
                                           "'peloton publish' does")
    bridge.add_argument("--source", required=True,
                        help="the Race Center (https://racecenter.letour.fr) or a stand-in (http://127.0.0.1:8090)")
    bridge.add_argument("--topic", required=True, help="projects/P/topics/T: the live pipeline's input topic")
    bridge.add_argument("--stage-id", help="the stage_id attribute (default: the tick's date in Europe/Paris)")
    bridge.add_argument("--sign-key-id", help="sign every message with this key (HMAC-SHA256)")
    bridge.add_argument("--feed-keys", help="JSON file {\"key id\": \"hex secret\"} (default: $PELOTON_FEED_KEYS)")
    bridge.add_argument("--buffer", type=number(int, low=1), default=1000,
                        help="ticks held while Pub/Sub is slow; beyond that the oldest are dropped (default 1000)")
    bridge.add_argument("--idle-timeout-s", type=number(above=0), default=60.0,
                        help="a stream silent this long (not even a keep-alive) is reopened (default 60)")
    bridge.add_argument("--progress-s", type=number(low=0), default=10.0,
                        help="progress line period on stderr (default 10)")
    bridge.add_argument("--duration-s", type=number(low=0), default=0.0, help="stop after this long (default: Ctrl-C)")
    bridge.add_argument("--rankings-after-s", type=number(low=0), default=120.0,
                        help="poll the official result once no tick came for this long: the stage is over "
                             "(default 120)")
    bridge.add_argument("--rankings-every-s", type=number(low=0), default=60.0,
                        help="poll the official result this often (default 60; 0: never)")
    bridge.add_argument("--rankings-stage", metavar="YEAR-STAGE",
                        help="the stage whose result to poll (default: the first tick's date in /api/stage-YEAR)")
    bridge.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    bridge.set_defaults(func=run)


def run(args, _beam_args) -> int:
    from google.api_core import exceptions

    from pipelines.pubsub import PubSubError, checked_topic, signing_key

    topic = checked_topic(args.topic)
    base = race_center_base(args.source)
    sign_key = signing_key(args.sign_key_id, args.feed_keys)
    publisher = make_publisher()
    try:
        publisher.get_topic(topic=topic, timeout=30)
    except exceptions.NotFound:
        raise PubSubError(f"no topic {topic}: create it with 'peloton pubsub init'") from None
    except exceptions.GoogleAPICallError as exc:
        raise PubSubError(f"Pub/Sub refused: {exc.message}") from None
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    stream = ResilientStream(base, idle_timeout_s=args.idle_timeout_s, log=lambda m: say(f"bridge: {m}"))
    year, number = year_stage(args.rankings_stage)
    fetch = rankings_fetcher(base, year, number) if args.rankings_every_s > 0 else None
    bridge = Bridge(stream, lambda data, **attrs: publisher.publish(topic, data, **attrs), stage_id=args.stage_id,
                    sign_key_id=args.sign_key_id or "", sign_key=sign_key, buffer_max=args.buffer,
                    progress_s=0 if args.quiet else args.progress_s, say=say, fetch_rankings=fetch,
                    rankings_every_s=args.rankings_every_s, rankings_after_s=args.rankings_after_s)
    sigterm_as_interrupt()
    say(f"bridge: {base}/live-stream -> {topic}  (Ctrl-C to stop)")
    started = time.time()
    deadline = started + args.duration_s if args.duration_s else None
    try:
        stats = bridge.run(until=(lambda: time.time() >= deadline) if deadline else None)
    finally:
        publisher.stop()
    print(f"bridged {base}/live-stream to {topic} for {time.time() - started:.1f} s")
    print(f"  ticks published:    {stats.published:>9,}")
    print(f"  duplicates skipped: {stats.duplicates:>9,}  (resent after a reconnection)")
    print(f"  other binds:        {sum(stats.other_binds.values()):>9,}  "
          + ", ".join(f"{b}: {n}" for b, n in stats.other_binds.most_common(5)))
    print(f"  malformed events:   {sum(stats.malformed.values()):>9,}  "
          + ", ".join(f"{r}: {n}" for r, n in stats.malformed.most_common()))
    print(f"  dropped (slow Pub/Sub): {stats.dropped:>5,}"
          + (f"  ticks of {stats.first_dropped} .. {stats.last_dropped}" if stats.dropped else ""))
    print(f"  reconnects:         {stream.reconnects:>9,}")
    print(f"  official result:    {'published (' + stats.rankings + ')' if stats.rankings else 'not out'}"
          f"  ({stats.rankings_polls} polls)")
    unsent = stats.ticks + bool(stats.rankings) - stats.duplicates - stats.published - stats.dropped
    if unsent:
        print(f"  not flushed:        {unsent:>9,}  (Pub/Sub did not acknowledge them before the stop)")
    return 0


def year_stage(text: str | None) -> tuple:
    if not text:
        return None, None
    m = re.match(r"^(\d{4})-(\d{1,2})$", text.strip())
    if not m:
        raise RaceCenterError(f"--rankings-stage must be YEAR-STAGE (2026-4): got {text!r}")
    return int(m.group(1)), int(m.group(2))
