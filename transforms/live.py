"""The live front half: Pub/Sub messages -> deduplicated fixes in event-time windows, late data set aside.

The element is a message's fixes as columns (a ``FixBatch``, one per tick window the message touches), from
the gate to the race engine: never one element per rider, so every step is vectorised and makes one state
call per message, and a tick reaches the engine as the columns it came in.

Event time comes from the tracker (the ``event_time`` attribute the
publisher sets, or the fix's own time), never from arrival. Windows and
triggers are chosen for live graphics:

* fixed windows of one feed tick (6 s): one window is one picture of the race;
* an early firing as soon as a message's fixes are in (a tick message
  carries the whole field), so a graphic updates within a second or two;
  the on-time firing when the watermark passes the window; a late firing
  for every late message within the allowed lateness (default 5 minutes);
* panes are discarding: each firing carries only what is new, and
  downstream state (per-rider history) accumulates it.

Data later than the allowed lateness would be dropped silently by the
windowed grouping, so the grouping keeps a day's grace and the lateness is
enforced by the steps that can say why: :class:`SplitLateFn` sets aside
what is behind the data's own progress, and the race engine
(:mod:`transforms.engine`) what arrives for a window already final; both
write it to the ``late`` table with its reason. Pub/Sub delivers at least
once and the local runner ignores ``id_label``, so :class:`DropDuplicatesFn`
keeps one fix per (bib, event time and position) however often it arrives (the dedup rule of the
replay, :func:`peloton.match.matching.deduped_rows`); a second,
different position for the same (bib, event time) is not a duplicate: it
goes on to the race engine, which keeps the one consistent with the rider's
track and dead-letters the other as ``conflicting_fix``.

Event time is validated here, whatever the runner stamped a message with:
:class:`ParsePubsubFn` checks every fix's payload time against the clock and
the ``event_time`` attribute and stamps each batch with its earliest time.
"""
from __future__ import annotations

import time
import typing
from typing import Callable, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from peloton.ingest.auth import ATTR_SIGNATURE, ENV_KEYS, Keyring, Limits, event_time_attribute_s
from peloton.ingest.feed import FixBatch, Reason, concat_batches, dead_letter, fix_raw
from peloton.ingest.gate import Gate
from peloton.ingest.windowing import Windowing, window_end, window_index
from peloton.match.matching import MAX_POSITIONS_PER_FIX, deduped_rows
from peloton.state.rows import dead_letter_columns

__all__ = ["LiveParams", "FeedSecurity", "ScreenMessagesFn", "RejectReplaysFn", "ParsePubsubFn",
           "SplitLateFn", "DropDuplicatesFn", "CheckMessages", "SetLateAside", "DropDuplicates", "GatherTicks",
           "IngestLive", "LATE", "DEAD_LETTER", "RANKINGS"]

LATE = Reason.LATE  # the tag of late rows is their reason
from peloton.output.tables import DEAD_LETTER  # noqa: E402 - the tag is the table

ACCEPTED = "accepted"  # tag of parsed signed messages on their way to replay protection
RANKINGS = "rankings"  # tag of the organiser's rankings documents, checked by the gate: (Rankings, event time s)
#: Extra lateness of the tick grouping, beyond which the runner would drop data without a trace.
GROUPING_GRACE_S = 86400.0


LiveParams = Windowing  # the ingest's windows, early firing and lateness: the one windowing spec


class FeedSecurity(NamedTuple):
    """What the gate checks (see RELIABILITY.md)."""

    limits: Limits = Limits()
    authenticate: bool = False  # signatures required; a repeated signature is a replay
    keys_text: str | None = None  # JSON or id:hex,...; None: the workers' PELOTON_FEED_KEYS
    check_clock: bool = True  # event times ahead of the wall clock are impossible live
    # with authentication, a signed message whose event time is older than this behind the clock is ``stale``
    # whatever the replay cache holds (so a restart with empty state cannot be fooled). None: the allowed
    # lateness. A warm-start catch-up that re-reads retained history relaxes it explicitly (math.inf: off).
    stale_after_s: float | None = None
    clock: Callable[[], float] | None = None  # the wall clock (None: time.time); tests pass a fixed one
    start_list: tuple | None = None  # the stage's bibs; others are ``unknown_rider`` (None: not checked)


def _now(security_clock, check_clock: bool) -> float | None:
    if not check_clock:
        return None
    return float(security_clock()) if security_clock is not None else time.time()


@beam.typehints.with_output_types(typing.Any)  # the message it was given (a PubsubMessage, or raw bytes)
class ScreenMessagesFn(beam.DoFn):
    """PubsubMessage -> the same message, or a dead letter when it breaks a limit or its signature is bad.

    Runs :meth:`peloton.ingest.gate.Gate.screen` before any parsing: size and
    attribute limits, event times in the future, and (with a keyring) the
    HMAC signature.
    """

    def __init__(self, gate: Gate, keys_text: str | None = None, require_signature: bool = False,
                 check_clock: bool = True, clock=None):
        self.gate = gate
        self.keys_text, self.require_signature, self.check_clock = keys_text, require_signature, check_clock
        self.clock = clock
        self.keyring = None

    def setup(self):
        if self.require_signature:  # keys from the pipeline, else the worker's environment (a secret there)
            self.keyring = Keyring.from_text(self.keys_text) if self.keys_text else Keyring.from_env()
            if self.keyring is None:
                raise ValueError(f"authentication is on but no keys were given (--feed-keys or {ENV_KEYS})")

    def process(self, message):
        data = getattr(message, "data", message)
        attrs = dict(getattr(message, "attributes", None) or {})
        dead = self.gate.screen(data, attrs, self.keyring, _now(self.clock, self.check_clock))
        if not dead:
            yield message
            return
        beam.metrics.Metrics.counter("peloton", f"dead_letter.{dead[0]['reason']}").inc()
        yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(dead))


class Accepted(NamedTuple):
    """A signed message once parsed, on its way to replay protection: nothing of it is out yet."""

    fixes: tuple  # FixBatch, one per tick window
    dead: list  # dead-letter rows of its bad entries
    event_time_s: float | None  # its event_time attribute
    raw: str  # the start of the payload, for a ``replayed`` or ``stale`` dead letter
    published_s: float | None = None  # when Pub/Sub received it (set by the service, not the publisher)


@beam.typehints.with_output_types(FixBatch)
class RejectReplaysFn(beam.DoFn):
    """(signature, Accepted) -> its fixes and dead letters, once per signature; else one ``replayed`` or
    ``stale`` dead letter for the whole message.

    A signature covers the payload and every attribute, so a repeat is either
    Pub/Sub delivering twice or someone replaying a captured message: with
    authentication on, both are set aside. Only a message that was verified
    and parsed reaches this step, so a forged or broken copy published first
    cannot make the genuine message look replayed. Signatures are remembered
    while the message could still be late; beyond that (``stale_after_s``
    behind the clock) a signed message is refused as ``stale`` whatever the
    state holds, so replaying old messages after a restart gains nothing.
    """

    SEEN = ReadModifyWriteStateSpec("seen", beam.coders.BooleanCoder())
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, stage_id: str, allowed_lateness_s: float, stale_after_s: float | None = None,
                 check_clock: bool = True, clock=None):
        self.stage_id, self.allowed_lateness_s = stage_id, allowed_lateness_s
        self.stale_after_s = allowed_lateness_s if stale_after_s is None else stale_after_s
        self.check_clock, self.clock = check_clock, clock

    def process(self, keyed, seen=beam.DoFn.StateParam(SEEN), expire=beam.DoFn.TimerParam(EXPIRE),
                ts=beam.DoFn.TimestampParam):
        _signature, message = keyed
        # age at publication when Pub/Sub says when that was: a restart re-reads the stage's history (sought
        # back), published in its time, while a replayed capture is published now
        now = message.published_s if message.published_s is not None else _now(self.clock, self.check_clock)
        age = None if now is None or message.event_time_s is None else now - message.event_time_s
        if age is not None and age > self.stale_after_s:
            yield self._refused(Reason.STALE, message, f"signed {age:.0f} s before it was published: older than "
                                                            f"replay protection remembers ({self.stale_after_s:.0f} s)")
            return
        if seen.read():
            yield self._refused(Reason.REPLAYED, message, "a message with this signature was accepted before")
            return
        seen.write(True)
        expire.set(ts + Duration(seconds=max(self.allowed_lateness_s, min(self.stale_after_s, 7 * 86400.0))
                                 + GROUPING_GRACE_S))
        if message.dead:
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(message.dead))
        for batch in message.fixes:
            yield stamped(batch)

    def _refused(self, reason: str, message: Accepted, detail: str):
        beam.metrics.Metrics.counter("peloton", f"dead_letter.{reason}").inc()
        return pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns([dead_letter(
            self.stage_id, reason, message.raw, detail, t=message.event_time_s, source="pubsub")]))

    @on_timer(EXPIRE)
    def forget(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


@beam.typehints.with_output_types(FixBatch)
class ParsePubsubFn(beam.DoFn):
    """PubsubMessage (or raw bytes) -> its fixes, as one FixBatch per tick window they fall in, stamped with the
    earliest of their event times; dead letters tagged.

    Parsing checks the start list and the rider limit; then every fix's time
    is checked against the clock and the ``event_time`` attribute, so no fix
    dated in the future or disagreeing with its attribute reaches the engine.
    With ``keyed`` (authentication on) a message that yields fixes comes out
    whole as ``(signature, Accepted)`` for :class:`RejectReplaysFn`. A rankings message (the organiser's result,
    attribute ``kind`` = ``rankings``) is checked by the gate too and comes out tagged ``rankings``, or as its
    dead letter.
    """

    def __init__(self, gate: Gate, window_s: float, check_clock: bool = True, clock=None, keyed: bool = False):
        self.gate, self.stage_id, self.window_s = gate, gate.stage_id, window_s
        self.check_clock, self.clock, self.keyed = check_clock, clock, keyed

    def process(self, message, ts=beam.DoFn.TimestampParam):
        data = getattr(message, "data", message)
        attrs = getattr(message, "attributes", None) or {}
        counter = beam.metrics.Metrics.counter
        if Gate.is_rankings(attrs):
            counter("peloton", "rankings_read").inc()
            official, dead = self.gate.rankings(data, attrs)
            for d in dead:
                counter("peloton", f"dead_letter.{d['reason']}").inc()
            if dead:
                yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(dead))
            if official is not None:
                yield pvalue.TaggedOutput(RANKINGS, official)
            return
        fixes, dead = self.gate.accept(data, attrs, _now(self.clock, self.check_clock))
        counter("peloton", "messages_read").inc()
        counter("peloton", "rows_in").inc(len(fixes) + len(dead))
        for d in dead:
            counter("peloton", f"dead_letter.{d['reason']}").inc()
        # when it was seen, by a clock no tracker sets: Pub/Sub's publish time (a reader without a timestamp
        # attribute stamps the element with it), for telling a tracker's clock off from a rider behind
        published = getattr(message, "publish_time", None)
        seen = published.timestamp() if published is not None else _seen_from_stamp(ts)
        fixes.seen_s = np.full(len(fixes), seen)
        out = per_window(fixes, self.window_s)
        if self.keyed and out:  # nothing of it is out until replay protection has seen it
            yield pvalue.TaggedOutput(ACCEPTED, (attrs[ATTR_SIGNATURE], Accepted(
                tuple(out), dead, event_time_attribute_s(attrs), data[:20000].decode("utf-8", errors="replace"),
                published.timestamp() if published is not None else None)))
            return
        if dead:
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(dead))
        for batch in out:
            yield stamped(batch)


def per_window(fixes: FixBatch, window_s: float) -> list[FixBatch]:
    """A message's fixes cut by tick window (a tick message: one batch; a late or hostile mix: one per window)."""
    if not len(fixes):
        return []
    w = window_index(fixes.t, window_s)
    if (w == w[0]).all():
        return [fixes]
    return [fixes.take(np.flatnonzero(w == i)) for i in np.unique(w)]


def stamped(batch: FixBatch):
    """A batch of one window as a Beam element: stamped with its earliest event time (inside its window)."""
    return window.TimestampedValue(batch, float(batch.t.min()))


def _seen_from_stamp(ts) -> float:
    """The element's timestamp as the time a message was seen (nan when there is none, as for raw bytes)."""
    try:
        t = float(ts)
    except (TypeError, ValueError):
        return float("nan")
    return t if 1e9 < t < 1e10 else float("nan")


@beam.typehints.with_output_types(FixBatch)
class SplitLateFn(beam.DoFn):
    """(stage_id, FixBatch) -> its fixes on time, and those behind the watermark by more than the lateness tagged
    ``late``.

    A DoFn cannot read the watermark, but an event-time timer fires only
    once the watermark has passed it: a timer that re-arms itself every
    ``step_s`` of event time, as long as there is data ahead of it, keeps in
    state a time the watermark is known to have passed.
    """

    FLOOR = ReadModifyWriteStateSpec("watermark_floor", beam.coders.FloatCoder())
    LATEST = ReadModifyWriteStateSpec("latest_event", beam.coders.FloatCoder())
    ARMED = ReadModifyWriteStateSpec("armed", beam.coders.BooleanCoder())
    TICK = TimerSpec("follow_watermark", TimeDomain.WATERMARK)

    def __init__(self, allowed_lateness_s: float, step_s: float = 1.0):
        self.allowed_lateness_s = allowed_lateness_s
        self.step_s = step_s

    def process(self, keyed, floor=beam.DoFn.StateParam(FLOOR), latest=beam.DoFn.StateParam(LATEST),
                armed=beam.DoFn.StateParam(ARMED), tick=beam.DoFn.TimerParam(TICK)):
        _stage, fixes = keyed
        known = floor.read()
        if known is None:  # first element of the stream: nothing is late yet
            known = float(fixes.t.min()) - self.allowed_lateness_s - self.step_s
            floor.write(known)
        late = fixes.t < known - self.allowed_lateness_s
        if late.any():
            beam.metrics.Metrics.counter("peloton", "late_beyond_allowed").inc(int(late.sum()))
            for i in np.flatnonzero(late):  # late data is rare: a row each, with its own delay
                yield pvalue.TaggedOutput(LATE, dead_letter(
                    fixes.stage_id, Reason.LATE, fix_raw(int(fixes.bib[i]), float(fixes.t[i]), float(fixes.lat[i]),
                                                         float(fixes.lon[i])),
                    f"{known - fixes.t[i]:.0f} s behind the watermark (allowed {self.allowed_lateness_s:.0f} s)",
                    bib=int(fixes.bib[i]), t=float(fixes.t[i]), source="live"))
            if late.all():
                return
            fixes = fixes.take(np.flatnonzero(~late))
        t_max = float(fixes.t.max())
        latest.write(max(latest.read() or t_max, t_max))
        if not armed.read():
            armed.write(True)
            tick.set(Timestamp.of(max(known + self.step_s, float(fixes.t.min()) - self.allowed_lateness_s)))
        yield stamped(fixes)

    @on_timer(TICK)
    def follow(self, floor=beam.DoFn.StateParam(FLOOR), latest=beam.DoFn.StateParam(LATEST),
               armed=beam.DoFn.StateParam(ARMED), tick=beam.DoFn.TimerParam(TICK), fired=beam.DoFn.TimestampParam):
        floor.write(float(fired))
        if float(fired) + self.step_s <= (latest.read() or 0.0):
            tick.set(fired + Duration(seconds=self.step_s))  # data ahead: keep following
        else:
            armed.write(False)  # caught up with the data: the next element re-arms


@beam.typehints.with_output_types(FixBatch)
class DropDuplicatesFn(beam.DoFn):
    """("stage@window", FixBatch) -> the fixes not seen before in the window (the dedup rule of
    :func:`peloton.match.matching.dedupe`: the same bib, time and position); repeats dropped.

    A different position for the same bib and time is a conflict: it is not
    dropped silently but passed on, and the race engine keeps the fix that
    agrees with the rider's track and dead-letters the other as
    ``conflicting_fix`` (here nothing says which one is genuine: the first
    to arrive may be the forgery). Beyond ``MAX_POSITIONS_PER_FIX`` positions
    a fix is a ``conflicting_fix`` dead letter at once.

    Keyed by stage and tick window (:func:`dedupe_key`), not by fix: one state
    read and write per message, and the local runner keeps a state and a timer
    per key and finds due timers by scanning every key. A key's state (the
    window's fixes let through) is cleared by an event-time timer once its
    window can no longer be late.
    """

    SEEN = ReadModifyWriteStateSpec("passed", beam.coders.PickleCoder())  # FixBatch: the window's fixes let through
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, allowed_lateness_s: float, window_s: float):
        self.allowed_lateness_s, self.window_s = allowed_lateness_s, window_s

    def process(self, keyed, seen=beam.DoFn.StateParam(SEEN), expire=beam.DoFn.TimerParam(EXPIRE)):
        _key, fixes = keyed
        passed = seen.read()
        if passed is None:
            passed = FixBatch.empty(fixes.stage_id)
            expire.set(Timestamp.of(float(window_end(fixes.t.min(), self.window_s)) + self.allowed_lateness_s + 60.0))
        new, repeats, crowded = new_fixes(passed, fixes)
        if repeats:
            beam.metrics.Metrics.counter("peloton", "duplicates_removed").inc(repeats)
        if crowded.size:
            beam.metrics.Metrics.counter("peloton", f"dead_letter.{Reason.CONFLICTING_FIX}").inc(int(crowded.size))
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns([dead_letter(
                fixes.stage_id, Reason.CONFLICTING_FIX, fix_raw(int(fixes.bib[i]), float(fixes.t[i]),
                                                                 float(fixes.lat[i]), float(fixes.lon[i])),
                f"more than {MAX_POSITIONS_PER_FIX} positions for bib {int(fixes.bib[i])} at one time",
                bib=int(fixes.bib[i]), t=float(fixes.t[i]), source="live") for i in crowded]))
        if new.size:
            out = fixes.take(new)
            seen.write(concat_batches([passed, out], fixes.stage_id))
            yield stamped(out)

    @on_timer(EXPIRE)
    def forget(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


def new_fixes(passed: FixBatch, fixes: FixBatch) -> tuple[np.ndarray, int, np.ndarray]:
    """Of ``fixes`` arriving after ``passed`` (the window's fixes let through so far): (the rows to let through, in
    arrival order; how many rows are repeats; the rows refused as one position too many for their bib and time)."""
    both = concat_batches([passed, fixes], fixes.stage_id)
    first_new = len(passed)
    kept = np.sort(deduped_rows(both))  # arrival order: what was let through, then the new rows
    kept_new = kept[kept >= first_new]
    # the rank of each kept row among the kept positions of its (bib, t), in arrival order
    order = kept[np.lexsort((kept, both.t[kept], both.bib[kept]))]
    first_of_key = np.r_[True, (np.diff(both.bib[order]) != 0) | (np.diff(both.t[order]) != 0)][:order.size]
    rank = np.arange(order.size) - np.flatnonzero(first_of_key)[np.cumsum(first_of_key) - 1]
    crowded = np.sort(order[(rank >= MAX_POSITIONS_PER_FIX) & (order >= first_new)])
    return np.setdiff1d(kept_new, crowded) - first_new, len(fixes) - kept_new.size, crowded - first_new


def dedupe_key(fixes: FixBatch, window_s: float) -> str:
    """The key :class:`DropDuplicatesFn` keeps a window's fixes under: its stage and tick window."""
    return f"{fixes.stage_id}@{int(window_index(fixes.t[0], window_s))}"


def _to_tick(keyed) -> tuple:
    """(stage_id, the pane's batches) -> (stage_id, one FixBatch sorted by bib and time, in arrival order within)."""
    stage_id, batches = keyed
    fixes = concat_batches(list(batches), stage_id)
    return stage_id, fixes.take(np.lexsort((fixes.t, fixes.bib)))


class CheckMessages(beam.PTransform):
    """Messages -> {'fixes', 'dead_letter', 'rankings'}: the gate (limits and signatures, then parsing against the
    start list, event times against the clock), then, with authentication on, replay protection."""

    def __init__(self, gate: Gate, params: LiveParams, security: FeedSecurity):
        super().__init__()
        self.gate, self.params, self.security = gate, params, security

    def expand(self, messages):
        sec = self.security
        screened = messages | "Screen" >> beam.ParDo(ScreenMessagesFn(
            self.gate, sec.keys_text, sec.authenticate, sec.check_clock, sec.clock)).with_outputs(
            DEAD_LETTER, main="passed")
        parsed = screened.passed | "Parse" >> beam.ParDo(ParsePubsubFn(
            self.gate, self.params.window_s, sec.check_clock, sec.clock, keyed=sec.authenticate)
        ).with_outputs(DEAD_LETTER, ACCEPTED, RANKINGS, main="fixes")
        dead, fixes = [screened[DEAD_LETTER], parsed[DEAD_LETTER]], parsed.fixes
        if sec.authenticate:
            fresh = (parsed[ACCEPTED]
                     | "KeyBySignature" >> beam.Map(lambda kv: kv).with_output_types(tuple[str, typing.Any])
                     | "RejectReplays" >> beam.ParDo(RejectReplaysFn(
                         self.gate.stage_id, self.params.allowed_lateness_s, sec.stale_after_s, sec.check_clock,
                         sec.clock)).with_outputs(DEAD_LETTER, main="fresh"))
            fixes = (fixes, fresh.fresh) | "AllFixes" >> beam.Flatten()
            dead.append(fresh[DEAD_LETTER])
        return {"fixes": fixes, DEAD_LETTER: dead | "DeadLetters" >> beam.Flatten(), RANKINGS: parsed[RANKINGS]}


class SetLateAside(beam.PTransform):
    """Fixes -> {'on_time', 'late'}: what is behind the watermark by more than the allowed lateness, with its
    reason (:class:`SplitLateFn`)."""

    def __init__(self, params: LiveParams):
        super().__init__()
        self.params = params

    def expand(self, fixes):
        checked = (fixes
                   | "KeyByStage" >> beam.Map(lambda f: (f.stage_id, f)).with_output_types(tuple[str, FixBatch])
                   | "SplitLate" >> beam.ParDo(SplitLateFn(self.params.allowed_lateness_s,
                                                           self.params.watermark_step_s))
                   .with_outputs(LATE, main="on_time"))
        return {"on_time": checked.on_time, LATE: checked[LATE] | "LateRows" >> beam.Map(
            lambda row: dead_letter_columns([row]))}


class DropDuplicates(beam.PTransform):
    """Fixes -> {'fixes', 'dead_letter'}: one fix per (bib, event time) however often Pub/Sub delivers it."""

    def __init__(self, params: LiveParams):
        super().__init__()
        self.params = params

    def expand(self, fixes):
        p = self.params
        unique = (fixes
                  | "KeyByWindow" >> beam.Map(lambda f: (dedupe_key(f, p.window_s), f))
                  .with_output_types(tuple[str, FixBatch])
                  | "DropDuplicates" >> beam.ParDo(DropDuplicatesFn(p.allowed_lateness_s, p.window_s))
                  .with_outputs(DEAD_LETTER, main="fixes"))
        return {"fixes": unique.fixes, DEAD_LETTER: unique[DEAD_LETTER]}


class GatherTicks(beam.PTransform):
    """Fixes -> (stage_id, FixBatch) per pane of a tick window: early, on time and late firings (module doc)."""

    def __init__(self, params: LiveParams):
        super().__init__()
        self.params = params

    def expand(self, fixes):
        p = self.params
        return (fixes
                | "TickWindows" >> beam.WindowInto(
                    window.FixedWindows(p.window_s),
                    # early: a picture within a second or two of the tick; on time: when the watermark
                    # passes; late: every late fix within the allowed lateness, as it comes
                    trigger=trigger.AfterWatermark(
                        early=trigger.AfterAny(trigger.AfterCount(p.early_after_messages),
                                               trigger.AfterProcessingTime(max(1, round(p.early_after_s)))),
                        late=trigger.AfterCount(1)),
                    accumulation_mode=trigger.AccumulationMode.DISCARDING,
                    # the grouping would drop data beyond its lateness silently: give it a day, and let
                    # SplitLateFn and the race engine (which sees the real watermark) set late data aside
                    allowed_lateness=Duration(seconds=p.allowed_lateness_s + GROUPING_GRACE_S))
                | "KeyByStage" >> beam.Map(lambda f: (f.stage_id, f))
                | "GatherTick" >> beam.GroupByKey()
                | "ToTick" >> beam.Map(_to_tick).with_output_types(tuple[str, typing.Any]))


class IngestLive(beam.PTransform):
    """Messages -> {'ticks': (stage_id, FixBatch) per window pane, 'late': Columns rows, 'dead_letter': Columns,
    'rankings': the organiser's checked rankings documents, (Rankings, event time s)}."""

    def __init__(self, stage_id: str, params: LiveParams = LiveParams(), security: FeedSecurity = FeedSecurity(),
                 start_list=None, year: int | None = None, stage_number: int | None = None):
        """``start_list``: the stage's bibs (``Stage.start_list()``), else ``security.start_list``; ``year``,
        ``stage_number``: the stage's, which a rankings document must be of."""
        super().__init__()
        self.params = params
        self.security = security
        self.gate = Gate.of(stage_id, security.start_list if start_list is None else start_list, security.limits,
                            year, stage_number)

    def expand(self, messages):
        checked = messages | "CheckMessages" >> CheckMessages(self.gate, self.params, self.security)
        timely = checked["fixes"] | "SetLateAside" >> SetLateAside(self.params)
        unique = timely["on_time"] | "DropDuplicates" >> DropDuplicates(self.params)
        ticks = unique["fixes"] | "GatherTicks" >> GatherTicks(self.params)
        dead = (checked[DEAD_LETTER], unique[DEAD_LETTER]) | "MergeDeadLetters" >> beam.Flatten()
        return {"ticks": ticks, LATE: timely[LATE], DEAD_LETTER: dead, RANKINGS: checked[RANKINGS]}
