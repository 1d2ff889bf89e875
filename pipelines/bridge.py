"""Race day ingest: the official Race Center's live stream -> the pipeline's Pub/Sub topic.

The bridge (``peloton bridge``, :mod:`pipelines.commands.bridge`) publishes each telemetry tick as
``peloton publish`` does (:func:`peloton.sim.publish.tick_message`: the same attributes, event time from
the tick's ``TimeStamp``, signed when asked). Reading and publishing are two
threads joined by a bounded buffer: a slow Pub/Sub never stalls the reading
(the server would drop a client that does not read), and when the buffer is
full the oldest tick is dropped and counted, said on stderr.

After the finish the bridge also brings the organiser's result: once the ticks
have stopped for ``--rankings-after-s`` (the trackers are off: the stage is
over) it polls ``/api/rankingTypeArrival-YEAR-STAGE`` every
``--rankings-every-s`` until the Race Center has it (404 or an empty list
before), and publishes it once on the same topic, attribute ``kind`` =
``rankings`` (:mod:`peloton.ingest.official`), ``bind`` what it fetched, event time
the last tick's: the live pipeline's gate checks it and turns it into
official rows.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field

from peloton.ingest import eventtime
from peloton.ingest.eventtime import seconds
from peloton.ingest.official import ATTR_BIND, RANKINGS_KIND, compact_rankings, rankings_bind
from peloton.ingest.racecenter import RaceCenterError, classify_update, get_json, race_date
from peloton.sim.publish import ATTR_EVENT_TIME, ATTR_KIND, ATTR_MESSAGE_ID, ATTR_STAGE, sign_message, tick_message

__all__ = ["Bridge", "BridgeStats", "make_publisher", "rankings_fetcher", "rankings_from_truth"]

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
    first_tick_s: float | None = None  # event time of the first and the newest tick read
    newest_tick_s: float | None = None
    rankings: str = ""  # the rankings document published (its bind), once
    rankings_polls: int = 0  # polls of the rankings before it was out


class Bridge:
    """Read ticks from a :class:`ResilientStream`, publish each once through ``publish(data, **attrs) -> future``."""

    def __init__(self, stream, publish, stage_id: str | None = None, sign_key_id: str = "", sign_key: bytes = b"",
                 buffer_max: int = 1000, max_in_flight: int = 100, progress_s: float = 5.0, say=None,
                 fetch_rankings=None, rankings_every_s: float = 60.0, rankings_after_s: float = 120.0):
        """``fetch_rankings(first tick s) -> (bind, document) or None`` (not out yet): the organiser's result,
        polled every ``rankings_every_s`` once no tick came for ``rankings_after_s`` (None: not polled)."""
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
        self.fetch_rankings = fetch_rankings
        self.rankings_every_s, self.rankings_after_s = rankings_every_s, rankings_after_s

    # -- reading (the caller's thread: Ctrl-C lands here)

    def run(self, until=None) -> BridgeStats:
        """Bridge until interrupted (KeyboardInterrupt) or ``until()`` is true; flush; return the counts."""
        worker = threading.Thread(target=self._publish_loop, name="bridge-publish", daemon=True)
        worker.start()
        if self.fetch_rankings is not None:
            threading.Thread(target=self._rankings_loop, name="bridge-rankings", daemon=True).start()
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
        self.stats.first_tick_s = ts if self.stats.first_tick_s is None else min(self.stats.first_tick_s, ts)
        self.stats.newest_tick_s = ts if self.stats.newest_tick_s is None else max(self.stats.newest_tick_s, ts)
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
        self._enqueue(data, attrs)

    def _enqueue(self, data: bytes, attrs: dict) -> None:
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

    # -- the organiser's result (a worker thread)

    def _rankings_loop(self) -> None:
        """Once the ticks have stopped (the stage is over), poll the rankings until they are out; publish once."""
        while not self._closing:
            time.sleep(min(self.rankings_every_s, 1.0) if not self.stats.last_tick_at else self.rankings_every_s)
            s = self.stats
            if self._closing or not s.last_tick_at or time.time() - s.last_tick_at < self.rankings_after_s:
                continue
            s.rankings_polls += 1
            try:
                got = self.fetch_rankings(s.first_tick_s)
            except RaceCenterError as exc:
                if s.rankings_polls in (1, 10) or s.rankings_polls % 100 == 0:
                    self.say(f"bridge: rankings not out yet ({exc})")
                continue
            if got is None:
                continue
            bind, doc = got
            data = json.dumps(compact_rankings(doc), separators=(",", ":")).encode("utf-8")
            stage_id = self.stage_id or race_date(s.first_tick_s)
            attrs = {ATTR_EVENT_TIME: eventtime.attribute(s.newest_tick_s), ATTR_STAGE: stage_id,
                     ATTR_KIND: RANKINGS_KIND, ATTR_BIND: bind,
                     ATTR_MESSAGE_ID: f"{stage_id}-{bind}-{hashlib.sha256(data).hexdigest()[:16]}"}
            if self.sign_key:
                sign_message(data, attrs, self.sign_key_id, self.sign_key)
            self._enqueue(data, attrs)
            s.rankings = bind
            self.say(f"bridge: the official result is out ({bind}, {len(data):,} bytes): published")
            return

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


def rankings_fetcher(base: str, year: int | None = None, stage_number: int | None = None):
    """``fetch(first tick s) -> (bind, document) or None``: the stage's rankings at ``base``; the stage found by
    the first tick's date in ``/api/stage-YEAR`` unless given. None while it is not out (404, or empty)."""
    found: dict = {}

    def fetch(first_tick_s: float):
        if "bind" not in found:
            if year is not None and stage_number is not None:
                found["bind"] = rankings_bind(year, stage_number)
            else:
                date = race_date(first_tick_s)
                stages = get_json(f"{base}/api/stage-{date[:4]}") or []
                number = next((s.get("stage") for s in stages if isinstance(s, dict)
                               and str(s.get("date", ""))[:10] == date), None)
                if number is None:
                    raise RaceCenterError(f"no stage on {date} in {base}/api/stage-{date[:4]}")
                found["bind"] = rankings_bind(date[:4], number)
        try:
            doc = get_json(f"{base}/api/{found['bind']}")
        except RaceCenterError as exc:
            if "404" in str(exc):
                return None
            raise
        has_result = isinstance(doc, list) and any(isinstance(b, dict) and b.get("type") == "ite"
                                                   and b.get("rankings") for b in doc)
        return (found["bind"], doc) if has_result else None

    return fetch


def make_publisher():
    """The Pub/Sub client of the bridge: small batches, sent within 10 ms (a tick is one message every 6 s)."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=100,
                                                                                  max_latency=0.01))


def rankings_from_truth(truth: dict, recording: dict) -> list | None:
    """The rankings document of a simulated stage from its true finishes (:func:`peloton.ingest.official.
    rankings_from_finish`): the same-time gap, bonuses and finish points of its stage type; None without a
    stage number or finishes."""
    from peloton.ingest.official import rankings_from_finish
    from peloton.match.stage import stage_from_recording
    from peloton.state.classifications import FINISH_BONUS_S, FINISH_POINTS, TIME_TRIAL_TYPES, is_young
    from peloton.state.results import same_time_gap_s

    stage = stage_from_recording({**recording, "events": []})
    finish = {int(b): float(t) for b, t in (truth.get("finish") or {}).items()}
    info = ((recording.get("rest") or {}).get("stages") or {}).get(str((recording.get("meta") or {}).get("date")))
    number = (info or {}).get("stage")
    if not finish or stage.year is None or number is None:
        return None
    ticks = truth.get("ticks") or [min(finish.values())]
    teams = {int(r["bib"]): r["team"] for r in stage.riders if r.get("team")}
    young = {int(r["bib"]) for r, y in zip(stage.riders, is_young([r.get("birthdate") for r in stage.riders],
                                                                   stage.year)) if y}
    tt = stage.stage_type in TIME_TRIAL_TYPES
    return rankings_from_finish(stage.year, int(number), finish, float(ticks[0]), same_time_gap_s(stage.stage_type),
                                () if tt else FINISH_BONUS_S, FINISH_POINTS.get(stage.stage_type, ()), teams, young)

