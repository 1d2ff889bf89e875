"""Turn a recording back into the messages a live feed sends, with the faults a real feed has.

Pure planning, no Pub/Sub import: :func:`plan_messages` returns what to
publish and when (seconds after the first message at real speed); the
command line publishes the plan. Event time travels in the ``event_time``
attribute (milliseconds since the epoch, what Beam's ``timestamp_attribute``
reads), so the pipeline never has to trust arrival time.

Faults, each drawn from a seeded generator so a test can count them:

* duplicates: a share of messages is published twice (Pub/Sub delivers at
  least once; the pipeline must not double rows);
* disorder: each message is published up to ``disorder_s`` seconds late
  (publish order no longer follows event time);
* malformed payloads: a share of extra messages whose payload is cut short,
  not JSON, or JSON of the wrong shape (they must reach the dead letter).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import numpy as np

from peloton.ingest import eventtime
from peloton.ingest.auth import ATTR_KEY_ID, ATTR_SIGNATURE, sign
from peloton.ingest.recording import iter_messages
from peloton.ingest.windowing import WINDOWING, Windowing

__all__ = ["Message", "PlanParams", "plan_messages", "shift_to_now", "tick_times", "tick_message", "sign_message",
           "ATTR_EVENT_TIME", "ATTR_STAGE", "ATTR_KIND", "ATTR_MESSAGE_ID"]

ATTR_EVENT_TIME = eventtime.ATTRIBUTE  # ms since the epoch
ATTR_STAGE = "stage_id"
ATTR_KIND = "kind"  # tick | fix | unknown
ATTR_MESSAGE_ID = "message_id"  # stable per original message: the same on a duplicate (id_label)


@dataclass(frozen=True)
class PlanParams:
    per_fix: bool = False  # one message per rider fix instead of one per feed tick
    shift_s: float = 0.0  # added to every event time (--shift-to-now)
    duplicate_rate: float = 0.0
    disorder_s: float = 0.0
    malformed_rate: float = 0.0
    seed: int = 0
    sign_key_id: str = ""  # with sign_key: every message signed (HMAC-SHA256, peloton.ingest.auth)
    sign_key: bytes = b""
    start_s: float = 0.0  # skip the ticks of the first start_s seconds of the recording ...
    duration_s: float = 0.0  # ... and stop after this many seconds of it (0: to the end)


@dataclass
class Message:
    at_s: float  # when to publish, seconds after the start at real speed
    data: bytes
    attributes: dict = field(default_factory=dict)
    fault: str = ""  # "", "duplicate" or "malformed"


def _tick_messages(text: str):
    """(event time s, payload dict) of every feed tick of a recording, in recording order."""
    for _kind, payload in iter_messages(text):
        try:
            doc = json.loads(payload)
            ts = float(doc["data"]["TimeStamp"])
        except (ValueError, KeyError, TypeError):
            continue  # the recording's own broken ticks are not replayed (the replay counts them)
        yield ts, doc


def tick_times(text: str) -> list[float]:
    """Event times (s) of a recording's feed ticks, in recording order."""
    return [ts for ts, _doc in _tick_messages(text)]


def shift_to_now(first_s: float, last_s: float, speed: float, now_s: float,
                 step_s: float = WINDOWING.window_s) -> float:
    """The shift (s) that puts event times as close to the wall clock as they can be, and never ahead of it.

    Published at ``speed`` times real time from ``now_s``, the tick of event time ``t`` goes out at
    ``now_s + (t - first_s) / speed``; shifted by ``shift`` its event time is ``t + shift``. A live pipeline
    dead-letters event times ahead of the clock (``--future-tolerance-s``), so every tick must satisfy
    ``t + shift <= now_s + (t - first_s) / speed``: the last one binds, and the first tick lands at
    ``now_s - D * (1 - 1 / speed)`` for a duration ``D`` (exactly now at speed 1; ``now_s - D`` at speed 0,
    as fast as possible). The shift is a whole number of ``step_s``, the windowing spec's window (the live
    windows then cut the race where the replay's do), rounded down: never ahead.
    """
    duration = max(0.0, last_s - first_s)
    lag = duration if speed <= 0 else duration * max(0.0, 1.0 - 1.0 / speed)
    shift = now_s - lag - first_s
    return Windowing(window_s=step_s).whole_windows(shift)


def plan_messages(text: str, stage_id: str, params: PlanParams = PlanParams()) -> list[Message]:
    """Every message to publish for a recording, in publish order."""
    rng = np.random.default_rng(params.seed)
    originals = []
    first_ts = None
    for ts, doc in _tick_messages(text):
        first_ts = ts if first_ts is None else first_ts
        if ts - first_ts < params.start_s or (params.duration_s and ts - first_ts >= params.start_s + params.duration_s):
            continue
        shifted = ts + params.shift_s
        if params.per_fix:
            for r in doc["data"].get("Riders") or []:
                if not isinstance(r, dict):
                    continue
                fix = {"bib": r.get("Bib"), "time": shifted, "lat": r.get("Latitude"), "lon": r.get("Longitude")}
                if r.get("kph") is not None:
                    fix["kph"] = r["kph"]
                originals.append((ts - first_ts - params.start_s, shifted, "fix", fix))
        else:
            originals.append((ts - first_ts - params.start_s, shifted, "tick", _tick_body(doc, params.shift_s)))
    messages = []
    for i, (offset, event_ts, kind, body) in enumerate(originals):
        data, attrs = _encode(body, event_ts, stage_id, kind, f"{stage_id}-{i}")
        delay = float(rng.uniform(0, params.disorder_s)) if params.disorder_s > 0 else 0.0
        messages.append(Message(offset + delay, data, attrs))
        if params.duplicate_rate > 0 and rng.random() < params.duplicate_rate:
            again = float(rng.uniform(0, max(params.disorder_s, 5.0)))
            messages.append(Message(offset + delay + again, data, dict(attrs), "duplicate"))
        if params.malformed_rate > 0 and rng.random() < params.malformed_rate:
            messages.append(Message(offset + delay, _malformed(data, rng),
                                    {**attrs, ATTR_MESSAGE_ID: f"{stage_id}-{i}-bad", ATTR_KIND: "unknown"},
                                    "malformed"))
    messages.sort(key=lambda m: m.at_s)
    if params.sign_key:
        for m in messages:  # a broken message from the feed is still the feed's: signed too
            sign_message(m.data, m.attributes, params.sign_key_id, params.sign_key)
    return messages


def _tick_body(doc: dict, shift_s: float = 0.0) -> dict:
    """The published form of a feed tick: its bind and data, the time moved by ``shift_s`` (if any)."""
    data = {**doc["data"], "TimeStamp": doc["data"]["TimeStamp"] + shift_s} if shift_s else doc["data"]
    return {"bind": doc.get("bind", "telemetryCompetitor"), "data": data}


def _encode(body: dict, event_ts: float, stage_id: str, kind: str, message_id: str) -> tuple[bytes, dict]:
    """The payload and attributes of one message (one rule for the replayed and the bridged feed)."""
    attrs = {ATTR_EVENT_TIME: eventtime.attribute(event_ts), ATTR_STAGE: stage_id, ATTR_KIND: kind,
             ATTR_MESSAGE_ID: message_id}
    return json.dumps(body, separators=(",", ":")).encode("utf-8"), attrs


def sign_message(data: bytes, attributes: dict, key_id: str, key: bytes) -> dict:
    """Add the key id and the HMAC signature (over the payload and every attribute) to ``attributes``."""
    attributes[ATTR_KEY_ID] = key_id
    attributes[ATTR_SIGNATURE] = sign(data, attributes, key)
    return attributes


def tick_message(doc: dict, stage_id: str) -> tuple[bytes, dict]:
    """One feed tick as it is published: ``(payload, attributes)``, event time from its ``TimeStamp``.

    The message id is the tick's time and a digest of its payload, so the same
    tick seen twice (a stream that resends after a reconnection) gets the same
    id, and two ticks of one second that differ do not. Raises ``KeyError``,
    ``TypeError`` or ``ValueError`` for a tick without a usable ``TimeStamp``.
    """
    ts = float(doc["data"]["TimeStamp"])
    if not math.isfinite(ts):
        raise ValueError(f"TimeStamp {ts} is not a time")
    data, attrs = _encode(_tick_body(doc), ts, stage_id, "tick", "")
    attrs[ATTR_MESSAGE_ID] = f"{stage_id}-{eventtime.ms(ts)}-{hashlib.sha256(data).hexdigest()[:16]}"
    return data, attrs


def _malformed(data: bytes, rng: np.random.Generator) -> bytes:
    """A broken payload of one of the kinds a real feed sends."""
    kind = int(rng.integers(3))
    if kind == 0:
        return data[: max(1, int(len(data) * rng.uniform(0.1, 0.9)))]  # cut short
    if kind == 1:
        return b"\x00\xffnot json at all"
    return b'{"data": "no riders here"}'
