"""Race day ingest: the official Race Center's live stream -> the pipeline's Pub/Sub topic.

    peloton racecenter serve RECORDING [--speed N] [--port P] [faults]   a local stand-in for rehearsals
    peloton bridge --source URL --topic T [--sign-key-id ID --feed-keys F]
    peloton stage fetch --source URL --date YYYY-MM-DD > stage.json
    peloton record --source URL --out RECORDING

The bridge publishes each telemetry tick as ``peloton publish`` does
(:func:`peloton.sim.publish.tick_message`: the same attributes, event time from
the tick's ``TimeStamp``, signed when asked). Reading and publishing are two
threads joined by a bounded buffer: a slow Pub/Sub never stalls the reading
(the server would drop a client that does not read), and when the buffer is
full the oldest tick is dropped and counted, said on stderr.
"""
from __future__ import annotations

import collections
import datetime
import gzip
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

from peloton.ingest.eventtime import seconds
from peloton.sim.publish import ATTR_EVENT_TIME, ATTR_MESSAGE_ID, sign_message, tick_message
from peloton.ingest.racecenter import (PARIS, Faults, RaceCenterError, RaceCenterServer, ResilientStream, classify_update,
                                fetch_rest, race_center_base, race_date, trace_base_for)

__all__ = ["Bridge", "BridgeStats", "make_publisher", "cmd_bridge", "cmd_racecenter_serve", "cmd_stage_fetch",
           "cmd_record", "window_events"]

log = logging.getLogger("peloton")

#: Message ids remembered to catch a tick resent after a reconnection (a stage is ~3,000 ticks).
SEEN_IDS = 50_000


@dataclass
class BridgeStats:
    ticks: int = 0  # telemetry ticks read (duplicates included)
    published: int = 0  # acknowledged by Pub/Sub
    duplicates: int = 0  # ticks seen before (resent after a reconnection): not published again
    malformed: dict = field(default_factory=collections.Counter)  # reason -> count
    other_binds: dict = field(default_factory=collections.Counter)  # bind -> count (not published)
    other_events: int = 0  # events of a type other than "update"
    dropped: int = 0  # oldest ticks dropped from a full buffer
    failed: int = 0  # publish attempts Pub/Sub refused (retried)
    lag_s: float | None = None  # wall clock minus event time of the last tick acknowledged
    last_ack_at: float = 0.0  # wall clock of the last acknowledgement
    last_tick_at: float = 0.0  # wall clock of the last tick read
    first_dropped: str = ""
    last_dropped: str = ""


class Bridge:
    """Read ticks from a :class:`ResilientStream`, publish each once through ``publish(data, **attrs) -> future``."""

    def __init__(self, stream, publish, stage_id: str | None = None, sign_key_id: str = "", sign_key: bytes = b"",
                 buffer_max: int = 1000, max_in_flight: int = 100, progress_s: float = 5.0, say=None):
        self.stream, self.publish = stream, publish
        self.stage_id, self.sign_key_id, self.sign_key = stage_id, sign_key_id, sign_key
        self.buffer_max, self.max_in_flight, self.progress_s = buffer_max, max_in_flight, progress_s
        self.say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.stats = BridgeStats()
        self._seen: collections.OrderedDict = collections.OrderedDict()
        self._buffer: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closing = False
        self._last_drop_note = 0.0

    # -- reading (the caller's thread: Ctrl-C lands here)

    def run(self, until=None) -> BridgeStats:
        """Bridge until interrupted (KeyboardInterrupt) or ``until()`` is true; flush; return the counts."""
        worker = threading.Thread(target=self._publish_loop, name="bridge-publish", daemon=True)
        worker.start()
        try:
            for event in self.stream:
                if event is not None:
                    self._handle(event)
                if until is not None and until():
                    break
        except KeyboardInterrupt:
            pass
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            worker.join(timeout=120)
        return self.stats

    def _handle(self, event) -> None:
        if event.event != "update":
            self.stats.other_events += 1
            return
        kind, what = classify_update(event.data)
        if kind == "other":
            self.stats.other_binds[what] += 1
            return
        if kind == "malformed":
            self.stats.malformed[what] += 1
            return
        self.stats.ticks += 1
        self.stats.last_tick_at = time.time()
        ts = float(what["data"]["TimeStamp"])
        data, attrs = tick_message(what, self.stage_id or race_date(ts))
        message_id = attrs[ATTR_MESSAGE_ID]
        if message_id in self._seen:
            self.stats.duplicates += 1
            return
        self._seen[message_id] = True
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        if self.sign_key:
            sign_message(data, attrs, self.sign_key_id, self.sign_key)
        with self._cond:
            if len(self._buffer) >= self.buffer_max:
                _, old = self._buffer.popleft()
                self.stats.dropped += 1
                when = _clock(seconds(int(old[ATTR_EVENT_TIME])))
                self.stats.first_dropped = self.stats.first_dropped or when
                self.stats.last_dropped = when
                if time.time() - self._last_drop_note > 10.0:
                    self._last_drop_note = time.time()
                    self.say(f"bridge: Pub/Sub is not keeping up: buffer full ({self.buffer_max} ticks), dropping "
                             f"the oldest (tick of {when}); {self.stats.dropped} dropped so far")
            self._buffer.append((data, attrs))
            self._cond.notify_all()

    # -- publishing (a worker thread)

    def _publish_loop(self) -> None:
        last_note = time.time()
        published_at_note = 0
        while True:
            with self._cond:
                while not self._buffer or self._in_flight >= self.max_in_flight:
                    if self._closing and not self._buffer and self._in_flight == 0:
                        return
                    self._cond.wait(timeout=0.5)
                    if self.progress_s and time.time() - last_note >= self.progress_s:
                        break
                item = self._buffer.popleft() if self._buffer and self._in_flight < self.max_in_flight else None
                if item is not None:
                    self._in_flight += 1
            if item is not None:
                data, attrs = item
                try:
                    future = self.publish(data, **attrs)
                except Exception as exc:  # the client refused at once (closed, bad argument): retried
                    self._done(item, exc)
                else:
                    future.add_done_callback(lambda f, item=item: self._done(item, f.exception()))
            now = time.time()
            if self.progress_s and now - last_note >= self.progress_s:
                rate = (self.stats.published - published_at_note) / (now - last_note)
                self.say(self.progress_line(rate))
                last_note, published_at_note = now, self.stats.published

    def _done(self, item, error) -> None:
        with self._cond:
            self._in_flight -= 1
            if error is None:
                self.stats.published += 1
                self.stats.last_ack_at = time.time()
                self.stats.lag_s = self.stats.last_ack_at - seconds(int(item[1][ATTR_EVENT_TIME]))
            else:
                self.stats.failed += 1
                if self.stats.failed in (1, 10, 100) or self.stats.failed % 1000 == 0:
                    self.say(f"bridge: Pub/Sub refused a tick ({error}); retrying")
                self._buffer.appendleft(item)
            self._cond.notify_all()
        if error is not None:
            time.sleep(0.5)

    def progress_line(self, rate: float) -> str:
        s = self.stats
        lag = f"{s.lag_s:.1f} s" if s.lag_s is not None else "-"
        last = f"{time.time() - s.last_tick_at:.0f} s ago" if s.last_tick_at else "none yet"
        return (f"bridge: {s.published:,} ticks published ({rate:.2f}/s), lag {lag}, last tick {last}, "
                f"buffer {len(self._buffer)}, "
                f"reconnects {self.stream.reconnects}, duplicates {s.duplicates}, "
                f"malformed {sum(s.malformed.values())}, other binds {sum(s.other_binds.values())}, "
                f"dropped {s.dropped}")


def _clock(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(epoch_s)) + " UTC"


def make_publisher():
    """The Pub/Sub client of the bridge: small batches, sent within 10 ms (a tick is one message every 6 s)."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=100,
                                                                                  max_latency=0.01))


def _sigterm_as_interrupt() -> None:
    """SIGTERM (a service manager's stop) ends the bridge the way Ctrl-C does: flushed, exit 0."""
    def handler(_signum, _frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def cmd_bridge(args, _beam_args) -> int:
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
    bridge = Bridge(stream, lambda data, **attrs: publisher.publish(topic, data, **attrs), stage_id=args.stage_id,
                    sign_key_id=args.sign_key_id or "", sign_key=sign_key, buffer_max=args.buffer,
                    progress_s=0 if args.quiet else args.progress_s, say=say)
    _sigterm_as_interrupt()
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
    unsent = stats.ticks - stats.duplicates - stats.published - stats.dropped
    if unsent:
        print(f"  not flushed:        {unsent:>9,}  (Pub/Sub did not acknowledge them before the stop)")
    return 0


def _parse_faults(args) -> Faults:
    try:
        drops = tuple(int(x) for x in args.drop_at.split(",") if x.strip()) if args.drop_at else ()
        stalls = tuple((int(a), float(b)) for a, b in (x.split(":") for x in args.stall_at.split(",") if x.strip())) \
            if args.stall_at else ()
    except ValueError:
        raise RaceCenterError("--drop-at takes event numbers (10,20); --stall-at EVENT:SECONDS (30:90)") from None
    return Faults(drop_at=drops, stall_at=stalls, malformed_every=args.malformed_every,
                  other_every=args.other_every, chunk_quirks=args.chunk_quirks, seed=args.seed)


def window_events(recording: dict, start_s: float, duration_s: float) -> dict:
    """The recording's events from ``start_s`` seconds in (by their ``dt``), for ``duration_s`` (0: to the end)."""
    kept, t = [], 0.0
    for i, e in enumerate(recording.get("events") or []):
        t += (float(e.get("dt") or 0) / 1000.0) if i and isinstance(e, dict) else 0.0
        if t >= start_s and (not duration_s or t < start_s + duration_s):
            kept.append(e)
    return {**recording, "events": kept}


def cmd_racecenter_serve(args, _beam_args) -> int:
    from peloton.ingest.recording import detect_format, load_recording, read_text

    text = read_text(args.recording)
    if detect_format(text) != "recording":
        raise RaceCenterError(f"{args.recording} is not a Race Center recording (JSON with events)")
    recording = load_recording(text)
    total_events = len(recording.get("events") or [])
    recording = window_events(recording, args.start_s, args.duration_s)
    if total_events and not recording["events"]:
        raise RaceCenterError(f"nothing to serve: no event from --start-s {args.start_s:g} on (the recording's "
                              f"{total_events:,} events)")
    faults = _parse_faults(args)
    try:
        server = RaceCenterServer(recording, args.host, args.port, speed=args.speed, faults=faults,
                                  keepalive_s=args.keepalive_s, shift_to_now=args.shift_to_now,
                                  max_gap_s=args.max_gap_s, shift_lead_s=args.lead_s).start()
    except OSError as exc:
        raise RaceCenterError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    total = server.due[-1] if server.due else 0.0
    print(f"race center stand-in of {server.date or 'the recording'} (stage {server.stage_number}): {server.url}  "
          f"{len(server.events):,} events over {total / 60:.1f} min at "
          f"{'full speed' if args.speed == 0 else f'{args.speed:g}x'}  (Ctrl-C to stop)", flush=True)
    print(f"  stream {server.url}/live-stream; REST {server.url}/api/stage-{server.year}, "
          f"/api/allCompetitors-{server.year}, /api/team-{server.year}, "
          f"/api/checkpoint-{server.year}-{server.stage_number}, "
          f"/tdf/{server.year}/stage-{server.stage_number}/trace.json", flush=True)
    _sigterm_as_interrupt()
    try:
        deadline = time.time() + args.serve_for_s if args.serve_for_s else None
        shift_said = False
        while deadline is None or time.time() < deadline:
            time.sleep(0.5)
            if server.shift_s and not shift_said:
                shift_said = True
                print(f"  tick times shifted by {server.shift_s:+.0f} s (the first tick is now)", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    st = server.stats
    print(f"served {st.sent:,} events on {st.connections} connections ({st.resumed} resumed); faults: "
          f"{st.drops} drops, {st.stalls} stalls, {st.malformed} malformed, {st.other} other binds")
    return 0


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _check_date(date: str) -> str:
    if not _DATE.match(date or ""):
        raise RaceCenterError(f"--date must be YYYY-MM-DD: got {date!r}")
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        raise RaceCenterError(f"--date {date} is not a day of the calendar") from None
    return date


def cmd_stage_fetch(args, _beam_args) -> int:
    """The stage file from the REST API, built by the same code as ``stage export`` builds it from a recording."""
    from peloton.ingest.recording import read_text
    from peloton.match.stage import parse_course_text, stage_from_recording

    date = _check_date(args.date)
    base = race_center_base(args.source)
    rest = fetch_rest(base, date, args.trace_base, log=lambda m: log.warning("stage fetch: %s", m))
    route = parse_course_text(read_text(args.course), args.course) if args.course else None
    if route is None and not (rest.get("trace") or {}).get("routePoints"):
        number = rest["stages"][date].get("stage")
        raise RaceCenterError(f"no trace of stage {number} at {args.trace_base or trace_base_for(base)} (a time "
                              f"trial has none): pass --course FILE")
    stage = stage_from_recording({"meta": {"date": date, "year": int(date[:4])}, "rest": rest}, route=route)
    stage.course()  # fail here, not on a worker, if the course is unusable
    sys.stdout.write(stage.to_json() + "\n")
    return 0


def _write_recording(path: str, recording: dict) -> None:
    data = json.dumps(recording, separators=(",", ":")).encode("utf-8")
    tmp = path + ".part"
    with open(tmp, "wb") as fh:
        fh.write(gzip.compress(data, 6) if path.endswith(".gz") else data)
    os.replace(tmp, path)


def cmd_record(args, _beam_args) -> int:
    """Record the stream and the REST snapshot in the shipped recordings' format (rewritten every minute)."""
    date = _check_date(args.date) if args.date else datetime.datetime.now(PARIS).date().isoformat()
    base = race_center_base(args.source)
    if os.path.isdir(args.out):
        raise RaceCenterError(f"--out {args.out} is a folder: give a file name")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise RaceCenterError(f"no folder for {args.out}")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    rest = fetch_rest(base, date, args.trace_base, log=lambda m: say(f"record: {m}"))
    recording = {"version": 1, "meta": {"date": date, "year": int(date[:4]), "source": base}, "rest": rest,
                 "events": []}
    events = recording["events"]
    stream = ResilientStream(base, idle_timeout_s=args.idle_timeout_s, log=lambda m: say(f"record: {m}"))
    started = last_event = last_write = time.time()
    previous = None
    ticks = 0
    _sigterm_as_interrupt()
    say(f"record: {base}/live-stream -> {args.out}  (Ctrl-C to stop)")
    reason = "interrupted"
    try:
        for event in stream:
            now = time.time()
            if event is not None:
                events.append({"dt": 0 if previous is None else int(round((now - previous) * 1000)),
                               "data": event.data})
                previous = last_event = now
                ticks += classify_update(event.data)[0] == "tick"
            if now - last_write >= args.write_every_s:
                recording["meta"]["recordedAt"] = _iso_now()
                _write_recording(args.out, recording)
                last_write = now
                say(f"record: {len(events):,} events ({ticks:,} ticks), {stream.reconnects} reconnects")
            if args.duration_s and now - started >= args.duration_s:
                reason = "duration reached"
                break
            if args.silence_s and now - last_event >= args.silence_s:
                reason = f"no event for {args.silence_s:g} s"
                break
    except KeyboardInterrupt:
        pass
    recording["meta"]["recordedAt"] = _iso_now()
    _write_recording(args.out, recording)
    print(f"recorded {len(events):,} events ({ticks:,} telemetry ticks) of {date} in {time.time() - started:.1f} s "
          f"({reason}; {stream.reconnects} reconnects) -> {args.out}")
    return 0


def _iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
