"""Parse tracker messages into columnar fixes, and say why anything is rejected.

Three message shapes arrive as text:

* ``tick``: one official feed message, ``{"data": {"TimeStamp": s, "Riders": [...]}}``
  (optionally wrapped the way the recordings store it); a rider entry may carry its tracker's own
  ``TimeStamp`` (else it is at the tick's);
* ``fix``: one fix per message, ``{"bib", "time" (epoch s), "lat", "lon", "kph"?}``
  (a single tracker gateway);
* ``csv``: lines of the flat CSV export, header first.

Only position, time and sensor speed are read. The feed's own derived values
(km to finish, gaps, altitude, gradient) are the answer key and are ignored.
Every rejected row becomes a dead-letter row with a reason code.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass

import numpy as np

from peloton.ingest import eventtime
from peloton.ingest.reasons import KNOWN_REASONS, Reason

__all__ = ["FixBatch", "Reason", "PLACEHOLDER_LAT", "PLACEHOLDER_LON", "parse_message", "check_event_times",
           "dead_letter", "fix_json", "fix_raw", "concat_batches", "in_sink_range", "KNOWN_REASONS"]

#: Where trackers that are not live yet report from (a depot near Barcelona).
PLACEHOLDER_LAT, PLACEHOLDER_LON = 41.4197, 2.2014
PLACEHOLDER_RADIUS_DEG = 0.002  # ~200 m
#: What the sinks can hold (BigQuery TIMESTAMP: years 0001 to 9999; Avro timestamp-millis is a long, wider).
SINK_MIN_S, SINK_MAX_S = -62_135_596_800.0, 253_402_300_799.0
#: Fix times the feed can carry: epoch seconds from 2001 to 2286 (inside the sinks' range).
FIX_MIN_S, FIX_MAX_S = 1e9, 1e10


def in_sink_range(t) -> np.ndarray:
    """Epoch seconds the sinks can store (finite, BigQuery TIMESTAMP's years 0001-9999)."""
    t = np.asarray(t, dtype=float)
    return np.isfinite(t) & (t >= SINK_MIN_S) & (t <= SINK_MAX_S)


@dataclass
class FixBatch:
    """Fixes as parallel numpy arrays (one row per rider fix)."""

    stage_id: str
    bib: np.ndarray  # int64
    t: np.ndarray  # float64, epoch seconds (event time)
    lat: np.ndarray
    lon: np.ndarray
    sensor_kph: np.ndarray  # nan when absent
    # live only (None elsewhere): when the fix was seen (its message's publish time), and whether its tracker's
    # clock is off from the field's (peloton.ingest.clock): the row is then flagged ``clock_off``
    seen_s: np.ndarray | None = None
    clock_off: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.bib.size)

    def take(self, idx) -> "FixBatch":
        return FixBatch(self.stage_id, self.bib[idx], self.t[idx], self.lat[idx], self.lon[idx],
                        self.sensor_kph[idx], None if self.seen_s is None else self.seen_s[idx],
                        None if self.clock_off is None else self.clock_off[idx])

    @classmethod
    def empty(cls, stage_id: str) -> "FixBatch":
        f = np.zeros(0)
        return cls(stage_id, np.zeros(0, dtype=np.int64), f, f, f, f)


def concat_batches(batches, stage_id: str) -> FixBatch:
    batches = [b for b in batches if len(b)]
    if not batches:
        return FixBatch.empty(stage_id)
    seen = clock_off = None
    if any(b.seen_s is not None for b in batches):
        seen = np.concatenate([np.full(len(b), np.nan) if b.seen_s is None else b.seen_s for b in batches])
    if any(b.clock_off is not None for b in batches):
        clock_off = np.concatenate([np.zeros(len(b), bool) if b.clock_off is None else b.clock_off
                                    for b in batches])
    return FixBatch(stage_id, *(np.concatenate([getattr(b, k) for b in batches])
                                for k in ("bib", "t", "lat", "lon", "sensor_kph")), seen, clock_off)


def dead_letter(stage_id: str, reason: str, raw: str, detail: str = "", bib=None, t=None,
                source: str = "") -> dict:
    """One dead-letter row (schema ``dead_letter``)."""
    return {
        "stage_id": stage_id,
        "event_time": None if t is None or not in_sink_range(t) else eventtime.ms(t),
        "bib": None if bib is None else int(bib),
        "reason": reason,
        "detail": detail[:500],
        "raw": raw if len(raw) <= 20000 else raw[:20000],
        "source": source,
    }


def _column(rows: list, key: str, alt: str | None = None) -> np.ndarray:
    """A float column from a list of parsed JSON objects; non-numbers (true, lists, junk) become nan."""
    if alt is None:
        values = [r.get(key) for r in rows]
    else:
        values = [r.get(key, r.get(alt)) for r in rows]
    if {type(v) for v in values} <= {float, int}:  # the usual case, in one conversion
        try:
            return np.array(values, dtype=float)
        except OverflowError:  # a JSON integer beyond any float
            pass
    return np.array([_to_float(v) for v in values], dtype=float)


def _bib_column(rows: list, key: str, alt: str | None = None) -> np.ndarray:
    """Bibs are JSON integers and nothing else: true, 12.0 and "12" become nan (a missing bib)."""
    values = [r.get(key) if alt is None else r.get(key, r.get(alt)) for r in rows]
    if {type(v) for v in values} <= {int} and all(0 < v <= 1_000_000 for v in values):
        return np.array(values, dtype=float)
    return np.array([float(v) if type(v) is int and 0 < v <= 1_000_000 else math.nan for v in values], dtype=float)


def _text_column(rows: list, key: str) -> np.ndarray:
    """A float column from CSV text (the CSV export is all text)."""
    try:
        column = np.array([r.get(key) for r in rows], dtype=float)
        if column.ndim == 1:
            return column
    except (TypeError, ValueError, OverflowError):
        pass
    return np.array([_to_float(r.get(key)) for r in rows], dtype=float)


def _text_bib_column(rows: list, key: str) -> np.ndarray:
    """CSV bibs: digits only."""
    return np.array([float(v) if isinstance(v, str) and v.strip().isdigit() and len(v.strip()) < 8 else math.nan
                     for v in (r.get(key) for r in rows)], dtype=float)


def _to_float(v) -> float:
    if isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond any float
        return math.nan


def _validate(stage_id: str, rows: list, bib, t, lat, lon, kph, raw_of, source: str, start_list=None):
    """Vectorised checks shared by every shape -> (FixBatch, dead letters).

    ``start_list``: the bibs of the stage (sorted int array); None: not checked (an old stage file).
    """
    reason = np.full(bib.size, "", dtype=object)
    bad_bib = ~np.isfinite(bib) | (bib <= 0) | (bib != np.round(bib)) | (bib > 1e6)
    unknown = np.zeros(bib.size, dtype=bool)
    if start_list is not None and start_list.size:
        ints = np.where(bad_bib, 0, bib).astype(np.int64)
        at = np.minimum(np.searchsorted(start_list, ints), start_list.size - 1)  # sorted: cheaper than isin
        unknown = ~bad_bib & (start_list[at] != ints)
    bad_t = ~np.isfinite(t) | (t < FIX_MIN_S) | (t > FIX_MAX_S)
    missing_pos = ~np.isfinite(lat) | ~np.isfinite(lon)
    impossible = ~missing_pos & ((np.abs(lat) > 90) | (np.abs(lon) > 180) | ((lat == 0) & (lon == 0)))
    placeholder = (np.abs(lat - PLACEHOLDER_LAT) < PLACEHOLDER_RADIUS_DEG) & \
                  (np.abs(lon - PLACEHOLDER_LON) < PLACEHOLDER_RADIUS_DEG)
    checks = [(bad_bib, Reason.MISSING_FIELD, "Bib missing or not a positive JSON integer"),
              (unknown, Reason.UNKNOWN_RIDER, "Bib not on the stage's start list"),
              (bad_t, Reason.MISSING_FIELD, "event time missing or not epoch seconds"),
              (missing_pos, Reason.MISSING_FIELD, "Latitude/Longitude missing or not numbers"),
              (impossible, Reason.IMPOSSIBLE_COORDINATES, "coordinates outside the globe or at 0,0"),
              (placeholder, Reason.PLACEHOLDER_POSITION, "tracker not live yet (placeholder position)")]
    details = np.full(bib.size, "", dtype=object)
    for mask, code, text in reversed(checks):  # first failing check wins
        reason[mask] = code
        details[mask] = text
    bad = reason != ""
    good = np.flatnonzero(~bad)
    kph = np.where(np.isfinite(kph) & (kph >= 0) & (kph < 200), kph, np.nan)
    batch = FixBatch(stage_id, bib[good].astype(np.int64), t[good], lat[good], lon[good], kph[good])
    letters = [dead_letter(stage_id, reason[i], raw_of(i), details[i],
                           bib=None if bad_bib[i] else bib[i], t=None if bad_t[i] else t[i], source=source)
               for i in np.flatnonzero(bad)]
    return batch, letters


def _too_many(stage_id: str, n: int, max_riders: int | None, payload: str, source: str):
    """A whole-message dead letter when it holds more parsed rider entries than the limit (None: no limit)."""
    if max_riders is None or n <= max_riders:
        return None
    return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.TOO_MANY_RIDERS, payload[:20000],
                                                  f"{n:,} rider entries (limit {max_riders:,})", source=source)]


def _parse_tick(stage_id: str, doc, payload: str, source: str, start_list=None, max_riders=None):
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, str):  # the recordings wrap the feed message as JSON text
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.MALFORMED_JSON, payload, str(exc),
                                                          source=source)]
        data = data.get("data") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("Riders"), list):
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.BAD_SHAPE, payload,
                                                      "expected data.Riders to be a list", source=source)]
    ts = _to_float(data.get("TimeStamp"))
    rows = data["Riders"]
    refused = _too_many(stage_id, len(rows), max_riders, payload, source)
    if refused:
        return refused
    shaped = [r if isinstance(r, dict) else {} for r in rows]
    n = len(rows)
    t = np.full(n, ts)  # every rider of a tick is at the tick's time (checked by check_event_times) ...
    if any("TimeStamp" in r for r in shaped):  # ... unless the gateway passes on his tracker's own fix time
        own = np.array([r.get("TimeStamp", ts) for r in shaped], dtype=object)
        t = _column([{"t": v} for v in own], "t")
    batch, letters = _validate(stage_id, rows, _bib_column(shaped, "Bib"), t, _column(shaped, "Latitude"),
                               _column(shaped, "Longitude"), _column(shaped, "kph"),
                               lambda i: _raw_rider(rows[i], ts), source, start_list)
    return batch, letters


def _raw_rider(row, ts) -> str:
    """The rejected rider entry with its tick's time (plain dumps: the C encoder)."""
    try:
        return json.dumps({"TimeStamp": ts, "Rider": row})
    except (TypeError, ValueError):
        return repr(row)


def _parse_fix(stage_id: str, doc, payload: str, source: str, start_list=None):
    if not isinstance(doc, dict):
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.BAD_SHAPE, payload,
                                                      "expected a JSON object", source=source)]
    rows = [doc]
    return _validate(stage_id, rows, _bib_column(rows, "bib", "Bib"), _column(rows, "time", "TimeStamp"),
                     _column(rows, "lat", "Latitude"), _column(rows, "lon", "Longitude"),
                     _column(rows, "kph"), lambda i: payload, source, start_list)


def _parse_csv(stage_id: str, payload: str, source: str, start_list=None, max_riders=None):
    lines = payload.splitlines()
    reader = csv.DictReader(io.StringIO(payload))
    rows = list(reader)
    if not reader.fieldnames or "Latitude" not in reader.fieldnames:
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.BAD_SHAPE, payload[:2000],
                                                      "CSV without a Latitude column", source=source)]
    refused = _too_many(stage_id, len(rows), max_riders, payload, source)
    if refused:
        return refused
    return _validate(stage_id, rows, _text_bib_column(rows, "Bib"), _text_column(rows, "TimeStamp"),
                     _text_column(rows, "Latitude"), _text_column(rows, "Longitude"), _text_column(rows, "kph"),
                     lambda i: lines[i + 1] if i + 1 < len(lines) else "", source, start_list)


def parse_message(stage_id: str, kind: str, payload: str | bytes, source: str = "", start_list=None,
                  max_riders: int | None = None):
    """Parse one message of the given shape -> (FixBatch, list of dead-letter rows).

    ``start_list``: the stage's bibs (any other bib is ``unknown_rider``; None: not checked).
    ``max_riders``: the most rider entries a message may hold, counted after parsing (so no spelling of the
    keys escapes it); more is one ``too_many_riders`` dead letter for the whole message.
    """
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    if start_list is not None:
        start_list = np.unique(np.asarray(start_list, dtype=np.int64))
    if kind == "csv":
        return _parse_csv(stage_id, payload, source, start_list, max_riders)
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the decoder's stack
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.MALFORMED_JSON, payload, str(exc),
                                                      source=source)]
    if kind == "auto":
        kind = "fix" if isinstance(doc, dict) and ("bib" in doc or "Bib" in doc) else "tick"
    if kind == "fix":
        return _parse_fix(stage_id, doc, payload, source, start_list)
    return _parse_tick(stage_id, doc, payload, source, start_list, max_riders)


def check_event_times(fixes: FixBatch, attribute_t: float | None, now_s: float | None, future_tolerance_s: float,
                      skew_tolerance_s: float, source: str = "pubsub"):
    """Fix times against the clock and against the message's ``event_time`` attribute -> (kept, dead letters).

    Whatever the payload says, a fix dated ahead of the clock (``now_s``; None in a replay) by more than
    ``future_tolerance_s`` is ``future_time``: trackers take GPS time, so a fix from the future is a clock
    ahead of the field's (or a forgery), and it must never reach the engine's state. A fix whose time
    disagrees with the attribute by more than ``skew_tolerance_s`` is ``time_mismatch``: one of the two
    lies, and the runner may have stamped the message with either.
    """

    ahead = fixes.t - now_s if now_s is not None else np.zeros(len(fixes))
    future = ahead > future_tolerance_s
    mismatch = (~future & (np.abs(fixes.t - attribute_t) > skew_tolerance_s) if attribute_t is not None
                else np.zeros(len(fixes), dtype=bool))
    if not (future.any() or mismatch.any()):
        return fixes, []
    letters = [dead_letter(fixes.stage_id, Reason.FUTURE_TIME, fix_json(fixes, i),
                           f"fix time {ahead[i]:.0f} s ahead of the clock (tolerance {future_tolerance_s:.0f} s)",
                           bib=fixes.bib[i], t=fixes.t[i], source=source) for i in np.flatnonzero(future)]
    letters += [dead_letter(fixes.stage_id, Reason.TIME_MISMATCH, fix_json(fixes, i),
                            f"fix time {fixes.t[i] - attribute_t:+.0f} s from the event_time attribute "
                            f"(tolerance {skew_tolerance_s:.0f} s)", bib=fixes.bib[i], t=fixes.t[i], source=source)
                for i in np.flatnonzero(mismatch)]
    return fixes.take(np.flatnonzero(~(future | mismatch))), letters


def fix_json(batch: FixBatch, i: int) -> str:
    """One fix of a batch as the ``raw`` of its dead letter."""
    return fix_raw(batch.bib[i], batch.t[i], batch.lat[i], batch.lon[i])


def fix_raw(bib, t, lat, lon) -> str:
    """A fix set aside after parsing, as its dead letter's ``raw``: one shape wherever it was set aside (the
    engine, the matcher, the live ingest's late and duplicate steps), the ``fix`` message's own fields."""
    return '{"bib":%d,"time":%.3f,"lat":%.6f,"lon":%.6f}' % (bib, t, lat, lon)
