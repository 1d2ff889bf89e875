"""Parse tracker messages into columnar fixes, and say why anything is rejected.

Three message shapes arrive as text:

* ``tick``: one official feed message, ``{"data": {"TimeStamp": s, "Riders": [...]}}``
  (optionally wrapped the way the recordings store it);
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

__all__ = ["FixBatch", "Reason", "PLACEHOLDER_LAT", "PLACEHOLDER_LON", "parse_message",
           "dead_letter", "concat_batches"]

#: Where trackers that are not live yet report from (a depot near Barcelona).
PLACEHOLDER_LAT, PLACEHOLDER_LON = 41.4197, 2.2014
PLACEHOLDER_RADIUS_DEG = 0.002  # ~200 m


class Reason:
    """Dead-letter reason codes (stable strings: downstream consumers filter on them)."""

    MALFORMED_JSON = "malformed_json"
    BAD_SHAPE = "bad_shape"
    MISSING_FIELD = "missing_field"
    BAD_VALUE = "bad_value"
    IMPOSSIBLE_COORDINATES = "impossible_coordinates"
    PLACEHOLDER_POSITION = "placeholder_position"
    OFF_COURSE = "off_course"
    IMPOSSIBLE_JUMP = "impossible_jump"
    LATE = "late"


@dataclass
class FixBatch:
    """Fixes as parallel numpy arrays (one row per rider fix)."""

    stage_id: str
    bib: np.ndarray  # int64
    t: np.ndarray  # float64, epoch seconds (event time)
    lat: np.ndarray
    lon: np.ndarray
    sensor_kph: np.ndarray  # nan when absent

    def __len__(self) -> int:
        return int(self.bib.size)

    def take(self, idx) -> "FixBatch":
        return FixBatch(self.stage_id, self.bib[idx], self.t[idx], self.lat[idx], self.lon[idx],
                        self.sensor_kph[idx])

    @classmethod
    def empty(cls, stage_id: str) -> "FixBatch":
        f = np.zeros(0)
        return cls(stage_id, np.zeros(0, dtype=np.int64), f, f, f, f)


def concat_batches(batches, stage_id: str) -> FixBatch:
    batches = [b for b in batches if len(b)]
    if not batches:
        return FixBatch.empty(stage_id)
    return FixBatch(stage_id, *(np.concatenate([getattr(b, k) for b in batches])
                                for k in ("bib", "t", "lat", "lon", "sensor_kph")))


def dead_letter(stage_id: str, reason: str, raw: str, detail: str = "", bib=None, t=None,
                source: str = "") -> dict:
    """One dead-letter row (schema ``dead_letter``)."""
    return {
        "stage_id": stage_id,
        "event_time": None if t is None or not math.isfinite(t) else int(round(t * 1000)),
        "bib": None if bib is None else int(bib),
        "reason": reason,
        "detail": detail[:500],
        "raw": raw if len(raw) <= 20000 else raw[:20000],
        "source": source,
    }


def _column(rows: list, key: str, alt: str | None = None) -> np.ndarray:
    """A float column from a list of dicts; non-numbers become nan."""
    if alt is None:
        values = [r.get(key) for r in rows]
    else:
        values = [r.get(key, r.get(alt)) for r in rows]
    try:
        column = np.array(values, dtype=float)
        if column.ndim == 1:
            return column
    except (TypeError, ValueError, OverflowError):
        pass
    return np.array([_to_float(v) for v in values], dtype=float)  # lists or junk among the values


def _to_float(v) -> float:
    if isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond any float
        return math.nan


def _validate(stage_id: str, rows: list, bib, t, lat, lon, kph, raw_of, source: str):
    """Vectorised checks shared by every shape -> (FixBatch, dead letters)."""
    reason = np.full(bib.size, "", dtype=object)
    bad_bib = ~np.isfinite(bib) | (bib <= 0) | (bib != np.round(bib)) | (bib > 1e6)
    bad_t = ~np.isfinite(t) | (t < 1e9) | (t > 1e10)
    missing_pos = ~np.isfinite(lat) | ~np.isfinite(lon)
    impossible = ~missing_pos & ((np.abs(lat) > 90) | (np.abs(lon) > 180) | ((lat == 0) & (lon == 0)))
    placeholder = (np.abs(lat - PLACEHOLDER_LAT) < PLACEHOLDER_RADIUS_DEG) & \
                  (np.abs(lon - PLACEHOLDER_LON) < PLACEHOLDER_RADIUS_DEG)
    checks = [(bad_bib, Reason.MISSING_FIELD, "Bib missing or not a positive integer"),
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


def _parse_tick(stage_id: str, doc, payload: str, source: str):
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, str):  # the recordings wrap the feed message as JSON text
        try:
            data = json.loads(data)
        except ValueError as exc:
            return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.MALFORMED_JSON, payload, str(exc),
                                                          source=source)]
        data = data.get("data") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("Riders"), list):
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.BAD_SHAPE, payload,
                                                      "expected data.Riders to be a list", source=source)]
    ts = _to_float(data.get("TimeStamp"))
    rows = data["Riders"]
    shaped = [r if isinstance(r, dict) else {} for r in rows]
    n = len(rows)
    bib = _column(shaped, "Bib")
    t = np.full(n, ts)
    return _validate(stage_id, rows, bib, t, _column(shaped, "Latitude"), _column(shaped, "Longitude"),
                     _column(shaped, "kph"), lambda i: _raw_rider(rows[i], ts), source)


def _raw_rider(row, ts) -> str:
    """The rejected rider entry with its tick's time (plain dumps: the C encoder)."""
    try:
        return json.dumps({"TimeStamp": ts, "Rider": row})
    except (TypeError, ValueError):
        return repr(row)


def _parse_fix(stage_id: str, doc, payload: str, source: str):
    if not isinstance(doc, dict):
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.BAD_SHAPE, payload,
                                                      "expected a JSON object", source=source)]
    rows = [doc]
    return _validate(stage_id, rows, _column(rows, "bib", "Bib"), _column(rows, "time", "TimeStamp"),
                     _column(rows, "lat", "Latitude"), _column(rows, "lon", "Longitude"),
                     _column(rows, "kph"), lambda i: payload, source)


def _parse_csv(stage_id: str, payload: str, source: str):
    lines = payload.splitlines()
    reader = csv.DictReader(io.StringIO(payload))
    rows = list(reader)
    if not reader.fieldnames or "Latitude" not in reader.fieldnames:
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.BAD_SHAPE, payload[:2000],
                                                      "CSV without a Latitude column", source=source)]
    return _validate(stage_id, rows, _column(rows, "Bib"), _column(rows, "TimeStamp"), _column(rows, "Latitude"),
                     _column(rows, "Longitude"), _column(rows, "kph"),
                     lambda i: lines[i + 1] if i + 1 < len(lines) else "", source)


def parse_message(stage_id: str, kind: str, payload: str | bytes, source: str = ""):
    """Parse one message of the given shape -> (FixBatch, list of dead-letter rows)."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    if kind == "csv":
        return _parse_csv(stage_id, payload, source)
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the decoder's stack
        return FixBatch.empty(stage_id), [dead_letter(stage_id, Reason.MALFORMED_JSON, payload, str(exc),
                                                      source=source)]
    if kind == "auto":
        kind = "fix" if isinstance(doc, dict) and ("bib" in doc or "Bib" in doc) else "tick"
    if kind == "fix":
        return _parse_fix(stage_id, doc, payload, source)
    return _parse_tick(stage_id, doc, payload, source)
