"""Score a replay against the official values a recording carries (the answer key).

Only this module reads the official derived fields, and only to measure.
"""
from __future__ import annotations

import glob
import json
import os

import fastavro
import numpy as np

from peloton.recording import detect_format, iter_messages

__all__ = ["read_table", "official_values", "evaluate_replay", "format_report", "error_stats"]


def read_table(out_dir: str, table: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(out_dir, table, "*.avro"))):
        with open(path, "rb") as fh:
            rows.extend(fastavro.reader(fh))
    return rows


def official_values(text: str, fields=("kmToFinish", "secToFirstRider", "secToITTLead")) -> dict:
    """(bib, epoch s) -> {field: value} from a recording or flat CSV (first occurrence wins)."""
    out: dict = {}
    if detect_format(text) == "csv":
        import csv
        import io

        for r in csv.DictReader(io.StringIO(text)):
            try:
                key = (int(r["Bib"]), int(float(r["TimeStamp"])))
            except (KeyError, ValueError):
                continue
            out.setdefault(key, {f: float(r[f]) if r.get(f) not in (None, "") else None for f in fields})
        return out
    for _kind, payload in iter_messages(text):
        try:
            data = json.loads(payload)["data"]
            ts = int(data["TimeStamp"])
            riders = data["Riders"]
        except (ValueError, KeyError, TypeError):
            continue
        for r in riders:
            if isinstance(r, dict) and "Bib" in r:
                out.setdefault((int(r["Bib"]), ts), {f: r.get(f) for f in fields})
    return out


def error_stats(err_m: np.ndarray) -> dict:
    e = np.abs(err_m[np.isfinite(err_m)])
    if e.size == 0:
        return {"n": 0}
    return {"n": int(e.size), "median": float(np.median(e)), "p90": float(np.percentile(e, 90)),
            "p95": float(np.percentile(e, 95)), "p99": float(np.percentile(e, 99)), "max": float(e.max()),
            "over_1km": int((e > 1000).sum())}


def evaluate_replay(recording_text: str, out_dir: str) -> dict:
    """Error of km_to_finish (metres) against the official kmToFinish."""
    rows = read_table(out_dir, "rider_state")
    dead = read_table(out_dir, "dead_letter")
    official = official_values(recording_text)
    bib = np.array([r["bib"] for r in rows], dtype=np.int64)
    t = np.array([r["event_time"].timestamp() if hasattr(r["event_time"], "timestamp") else r["event_time"] / 1000
                  for r in rows])
    ours = np.array([np.nan if r["km_to_finish"] is None else r["km_to_finish"] for r in rows])
    quality = np.array([r["quality"] for r in rows], dtype=object)
    ref = np.array([_get(official, b, ts, "kmToFinish") for b, ts in zip(bib.tolist(), t.tolist())])
    err = (ours - ref) * 1000.0
    on_course = quality == "good"
    reasons: dict = {}
    for d in dead:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    return {
        "rows": len(rows),
        "dead_letter": reasons,
        "with_official_km": int(np.isfinite(ref).sum()),
        "km_to_finish_error_m": {
            "on_course": error_stats(err[on_course]),
            "all_matched": error_stats(err),
        },
    }


def _get(official: dict, bib: int, ts: float, field: str) -> float:
    v = official.get((bib, int(round(ts))), {}).get(field)
    return np.nan if v is None else float(v)


def format_report(report: dict) -> str:
    lines = [f"rider_state rows: {report['rows']:,} ({report['with_official_km']:,} with an official kmToFinish)",
             "dead letters: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report["dead_letter"].items()))]
    for name, s in report["km_to_finish_error_m"].items():
        if s.get("n"):
            lines.append(f"km_to_finish error, {name.replace('_', ' ')} ({s['n']:,} fixes): median {s['median']:.1f} m, "
                         f"p90 {s['p90']:.1f} m, p95 {s['p95']:.1f} m, p99 {s['p99']:.1f} m, max {s['max']:.0f} m, "
                         f"{s['over_1km']} over 1 km")
    return "\n".join(lines)
