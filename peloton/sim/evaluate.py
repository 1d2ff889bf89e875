"""Score a replay against the official values a recording carries (the answer key).

Only this module reads the official derived fields, and only to measure.
"""
from __future__ import annotations

import glob
import json
import os

import fastavro
import numpy as np

from peloton.ingest.recording import detect_format, iter_messages
from peloton.match.quality import Quality

__all__ = ["TableError", "NothingToEvaluate",
           "read_table", "official_values", "evaluate_replay", "format_report", "error_stats",
           "adjusted_rand_index", "group_accuracy"]


class TableError(ValueError):
    """A table file that cannot be read (truncated, not Avro)."""


class NothingToEvaluate(ValueError):
    """No rows to score: a missing or empty folder, or another stage's output."""


def read_table(out_dir: str, table: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(out_dir, table, "*.avro"))):
        try:
            with open(path, "rb") as fh:
                rows.extend(fastavro.reader(fh))
        except (EOFError, ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError, OSError) as exc:
            # fastavro's own errors on a cut or foreign file are these (its SchemaParseException is a ValueError)
            raise TableError(f"cannot read {path}: truncated or not an Avro table ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:120]})") from None
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
    """Errors against the official values: km_to_finish (metres) and gaps (seconds).

    The official gaps are whole seconds, truncated (riders less than a second
    behind the leader read 0), so a gap is scored against the middle of the
    second it names (official + 0.5 s); the raw difference is reported too.
    """
    if not os.path.isdir(out_dir):
        raise NothingToEvaluate(f"no folder {out_dir}: nothing to evaluate (the --out folder of a replay)")
    rows = read_table(out_dir, "rider_state")
    if not rows:
        raise NothingToEvaluate(f"no rider_state rows in {out_dir}: nothing to evaluate (the --out folder "
                                f"of a replay)")
    dead = read_table(out_dir, "dead_letter")
    official = official_values(recording_text)
    if not any((r["bib"], _epoch_s(r["event_time"])) in official for r in rows):
        raise NothingToEvaluate(f"none of the {len(rows):,} rider_state rows in {out_dir} is at a rider and "
                                f"second of this recording: the output of another stage?")
    bib = np.array([r["bib"] for r in rows], dtype=np.int64)
    t = np.array([r["event_time"].timestamp() if hasattr(r["event_time"], "timestamp") else r["event_time"] / 1000
                  for r in rows])

    def column(name):
        return np.array([np.nan if r.get(name) is None else r[name] for r in rows], dtype=float)

    def reference(field):
        return np.array([_get(official, b, ts, field) for b, ts in zip(bib.tolist(), t.tolist())])

    quality = np.array([r["quality"] for r in rows], dtype=object)
    ref_km = reference("kmToFinish")
    err = (column("km_to_finish") - ref_km) * 1000.0
    on_course = quality == Quality.GOOD
    reasons: dict = {}
    for d in dead:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    report = {
        "rows": len(rows),
        "dead_letter": reasons,
        "with_official_km": int(np.isfinite(ref_km).sum()),
        "km_to_finish_error_m": {
            "on_course": error_stats(err[on_course]),
            "all_matched": error_stats(err),
        },
    }
    gap = column("gap_to_leader_s")
    first_crossing = _first_crossing_s(out_dir)
    before_line = t < first_crossing
    for field, name in (("secToFirstRider", "gap_to_leader_error_s"), ("secToITTLead", "itt_gap_error_s")):
        ref = reference(field)
        both = np.isfinite(ref) & np.isfinite(gap)
        if both.any():
            report[name] = {"vs_official_plus_half": error_stats((gap - ref - 0.5)[both]),
                            "vs_official_raw": error_stats((gap - ref)[both]),
                            "official_rows": int(np.isfinite(ref).sum()), "ours_missing": int(
                                (np.isfinite(ref) & ~np.isfinite(gap)).sum())}
            if field == "secToFirstRider" and (both & ~before_line).any():
                report[name]["before_the_line_plus_half"] = error_stats((gap - ref - 0.5)[both & before_line])
    return report


def _first_crossing_s(out_dir: str) -> float:
    """When the first rider crossed the line (the results table), +inf when nobody did or there is no table."""
    try:
        rows = read_table(out_dir, "results")
    except Exception:  # an older replay without the table
        return np.inf
    times = [_epoch_s(r["finish_time"]) for r in rows if r.get("finish_time") is not None]
    return min(times) if times else np.inf


def adjusted_rand_index(truth: np.ndarray, found: np.ndarray) -> float:
    """Agreement of two partitions of the same items, corrected for chance (1 = identical, ~0 = random)."""
    truth, found = np.unique(truth, return_inverse=True)[1], np.unique(found, return_inverse=True)[1]
    n = truth.size
    if n < 2:
        return 1.0
    table = np.zeros((truth.max() + 1, found.max() + 1), dtype=np.int64)
    np.add.at(table, (truth, found), 1)

    def pairs(x):
        return float((x * (x - 1) // 2).sum())

    both, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), n * (n - 1) / 2
    expected = rows * cols / total
    best = (rows + cols) / 2
    if best == expected:  # both partitions trivial (all together, or all apart)
        return 1.0 if rows == cols else 0.0
    return (both - expected) / (best - expected)


def group_accuracy(truth: dict, rows: list[dict]) -> dict:
    """Adjusted Rand index per tick between the true groups of a simulated race and ``rider_state.group_id``.

    Compared over the riders both sides place on the road at that tick.
    """
    true_group = {}
    for j, ts in enumerate(truth["ticks"]):
        for bib, g in zip(truth["bibs"], truth["group"][j]):
            if g >= 0:
                true_group[(bib, ts)] = g
    found: dict = {}
    for r in rows:
        if r.get("group_id") is None:
            continue
        ts = int(round(r["event_time"].timestamp() if hasattr(r["event_time"], "timestamp")
                       else r["event_time"] / 1000))
        if (r["bib"], ts) in true_group:
            found.setdefault(ts, []).append((true_group[(r["bib"], ts)], r["group_id"]))
    scores = np.array([adjusted_rand_index(np.array([a for a, _ in v]), np.array([b for _, b in v]))
                       for _, v in sorted(found.items()) if len(v) >= 2])
    if scores.size == 0:
        return {"ticks": 0}
    return {"ticks": int(scores.size), "median": float(np.median(scores)), "mean": float(scores.mean()),
            "p10": float(np.percentile(scores, 10)), "share_at_least_0_95": float((scores >= 0.95).mean())}


def _epoch_s(event_time) -> int:
    """A row's event time as whole epoch seconds (the official values' key)."""
    return int(round(event_time.timestamp() if hasattr(event_time, "timestamp") else event_time / 1000))


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
    if "group_accuracy" in report and report["group_accuracy"].get("ticks"):
        g = report["group_accuracy"]
        lines.append(f"groups vs the simulation's truth ({g['ticks']:,} ticks): adjusted Rand index median "
                     f"{g['median']:.3f}, mean {g['mean']:.3f}, p10 {g['p10']:.3f}, "
                     f"{100 * g['share_at_least_0_95']:.1f} % of ticks at 0.95 or more")
    for key, what in (("gap_to_leader_error_s", "gap_to_leader_s vs secToFirstRider"),
                      ("itt_gap_error_s", "gap_to_leader_s vs secToITTLead")):
        if key in report:
            s = report[key]["vs_official_plus_half"]
            lines.append(f"{what} (+0.5 s, {s['n']:,} rows): median {s['median']:.2f} s, p90 {s['p90']:.2f} s, "
                         f"p99 {s['p99']:.2f} s, max {s['max']:.0f} s; {report[key]['ours_missing']:,} official "
                         f"values without ours")
            b = report[key].get("before_the_line_plus_half")
            if b:
                lines.append(f"  before the first rider crossed the line ({b['n']:,} rows): median {b['median']:.2f} s, "
                             f"p90 {b['p90']:.2f} s, p99 {b['p99']:.2f} s (after it our reference stays the winner; "
                             f"a feed may measure against whoever leads on the road)")
    return "\n".join(lines)
