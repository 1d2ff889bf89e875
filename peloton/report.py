"""The replay report: one self-contained HTML page that shows what happened in a stage.

Pure Python and numpy (no Beam): reads the Avro tables a replay wrote and the
stage spec beside them, boils them down to what a page needs (the course
projected to metres, the riders every 30 s as km along the course, the
groups, gaps, events, predictions, climbs), and writes one HTML file with
the data, the styles and the drawing code inlined: no CDN, no map tiles, it
works offline. The same page, fed by the live tables, is the live race page
(:mod:`pipelines.serve`).
"""
from __future__ import annotations

import json
from importlib import resources

import numpy as np

from peloton.evaluate import read_table
from peloton.profile import build_profile
from peloton.stage import Stage

__all__ = ["read_tables", "course_data", "report_data", "render_report", "write_report", "FRAME_S"]

FRAME_S = 30.0  # the slider's step
_TABLES = ("rider_state", "groups", "race_events", "predictions", "climb_efforts", "virtual_standings")


def _ms(v) -> int:
    return int(round(v.timestamp() * 1000)) if hasattr(v, "timestamp") else int(v)


def read_tables(out_dir: str, tables=_TABLES) -> dict:
    """Rows of each table under ``out_dir`` (missing tables are empty), event times in epoch ms."""
    out = {}
    for table in tables:
        rows = read_table(out_dir, table)
        for r in rows:
            for key in ("event_time", "eta_finish", "eta_finish_low", "eta_finish_high", "start_time"):
                if r.get(key) is not None:
                    r[key] = _ms(r[key])
        out[table] = rows
    return out


def course_data(stage: Stage) -> dict:
    """The course as the page draws it (the costly part: computed once per stage)."""
    course = stage.course()
    step = max(1, course.lat.size // 2500)
    idx = np.r_[np.arange(0, course.lat.size, step), course.lat.size - 1]
    x, y = course.x[idx], course.y[idx]
    km = course.km_at(course.cum_m[idx])
    profile = build_profile(course, stage.checkpoints)
    prof_km = np.arange(0.0, profile.finish_km, 0.5)
    return {
        "x": np.round(x).astype(int).tolist(), "y": np.round(y).astype(int).tolist(),
        "km": np.round(km, 3).tolist(), "finish_km": round(float(course.finish_km), 3),
        "profile_km": np.round(prof_km, 2).tolist(),
        "profile_ele": np.round(profile.altitude_at(prof_km), 1).tolist() if profile.has_elevation else [],
        "checkpoints": [{"name": c.name, "kind": c.kind, "km": round(c.km, 2), "category": c.category}
                        for c in profile.checkpoints],
        "climbs": [{"name": c.name, "category": c.category, "start_km": round(c.start_km, 2),
                    "summit_km": round(c.summit_km, 2)} for c in profile.climbs],
    }


def _frames(rows: list[dict], frame_s: float = FRAME_S) -> dict:
    """Every rider's km along the course and group every ``frame_s`` (his last fix of the minute before)."""
    usable = [r for r in rows if r.get("km_from_start") is not None and r.get("quality") in ("good", "off_route",
                                                                                             "finished", "neutral")]
    if not usable:
        return {"t": [], "bibs": [], "km": [], "group": []}
    bib = np.array([r["bib"] for r in usable])
    t = np.array([r["event_time"] for r in usable], dtype=float) / 1000.0
    km = np.array([r["km_from_start"] for r in usable], dtype=float)
    gid = np.array([-1 if r.get("group_id") is None else r["group_id"] for r in usable])
    times = np.arange(np.floor(t.min() / frame_s) * frame_s, t.max() + frame_s, frame_s)
    bibs = np.unique(bib)
    order = np.lexsort((t, bib))
    bib, t, km, gid = bib[order], t[order], km[order], gid[order]
    starts = np.searchsorted(bib, bibs)
    ends = np.r_[starts[1:], bib.size]
    km_out = np.full((times.size, bibs.size), np.nan)
    g_out = np.full((times.size, bibs.size), -1, dtype=np.int64)
    for j, (a, b) in enumerate(zip(starts, ends)):  # one iteration per rider, vectorised over frames
        last = np.searchsorted(t[a:b], times, side="right") - 1
        ok = (last >= 0) & (times - t[a:b][np.maximum(last, 0)] <= 60.0)
        km_out[ok, j] = km[a:b][last[ok]]
        g_out[ok, j] = gid[a:b][last[ok]]
    km_list = [[None if not np.isfinite(v) else round(float(v), 2) for v in row] for row in km_out]
    return {"t": (times * 1000).astype(np.int64).tolist(), "bibs": bibs.tolist(), "km": km_list,
            "group": g_out.tolist()}


def _sample(rows: list[dict], every_ms: int, key=lambda r: r.get("group_id")) -> list[dict]:
    """At most one row per ``key`` per ``every_ms``."""
    last: dict = {}
    out = []
    for r in sorted(rows, key=lambda r: r["event_time"]):
        k = key(r)
        if r["event_time"] - last.get(k, -10**15) >= every_ms:
            last[k] = r["event_time"]
            out.append(r)
    return out


def report_data(stage: Stage, tables: dict, course: dict | None = None) -> dict:
    """What the page draws, as plain JSON-able data (``course``: :func:`course_data`, if already made)."""
    course = course or course_data(stage)
    names = {int(r["bib"]): {"name": r.get("name") or f"#{r['bib']}", "team": r.get("team") or ""}
             for r in stage.riders}
    groups = tables.get("groups", [])
    ticks = {g["event_time"] for g in _sample(groups, 30_000, key=lambda r: 0)}  # whole ticks, every 30 s
    group_rows = [{k: g.get(k) for k in ("event_time", "group_id", "rank", "label", "size", "bibs",
                                         "km_to_finish_head", "gap_to_leader_s", "speed_kph")}
                  for g in groups if g["event_time"] in ticks]
    gap_series = [{k: g.get(k) for k in ("event_time", "group_id", "rank", "label", "size", "gap_to_leader_s")}
                  for g in _sample([g for g in groups if g["rank"] <= 6 and (g["km_to_finish_head"] or 0) > 0.5],
                                   60_000)]
    events = [{k: e.get(k) for k in ("event_time", "event_type", "km_to_finish", "bibs", "detail")}
              for e in tables.get("race_events", []) if e["event_type"] in ("split", "merge", "attack", "bridge",
                                                                             "crosswind_ahead")]
    preds = tables.get("predictions", [])
    head = [{k: p.get(k) for k in ("event_time", "eta_finish", "eta_finish_low", "eta_finish_high", "km_to_finish")}
            for p in _sample([p for p in preds if p["rank"] == 1], 60_000, key=lambda r: 0)]
    catch = [{k: p.get(k) for k in ("event_time", "group_id", "label", "size", "catch_probability")}
             for p in _sample([p for p in preds if p.get("catch_probability") is not None and p["rank"] <= 3
                               and not stage.is_time_trial], 60_000)]
    efforts = sorted(tables.get("climb_efforts", []), key=lambda e: (e["event_time"] - e["climb_time_s"] * 1000,
                                                                     e["climb_time_s"]))
    climbs: dict = {}
    for e in efforts:
        climbs.setdefault(e["climb"], []).append(e)
    best = [{k: e.get(k) for k in ("climb", "category", "bib", "climb_time_s", "vam_m_per_h", "power_wkg",
                                   "avg_gradient_pct", "length_km")}
            for rows in climbs.values() for e in sorted(rows, key=lambda e: e["climb_time_s"])[:5]]
    standings = [{k: s.get(k) for k in ("event_time", "bib", "km", "rank", "gap_to_best_s", "elapsed_s")}
                 for s in tables.get("virtual_standings", [])]
    return {
        "stage": {"id": stage.stage_id, "name": stage.name, "date": stage.date, "time_trial": stage.is_time_trial},
        "course": course, "riders": {str(k): v for k, v in names.items()},
        "frames": _frames(tables.get("rider_state", [])), "groups": group_rows, "gaps": gap_series,
        "events": events, "head_eta": head, "catch": catch, "climb_efforts": best, "standings": standings,
    }


def render_report(data: dict, live: bool = False) -> str:
    """The page: template, styles, script and data in one HTML text."""
    page = resources.files("peloton").joinpath("report.html").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = f"{data['stage'].get('name') or data['stage']['id']} — peloton"
    return (page.replace("__TITLE__", _escape(title)).replace("__LIVE__", "true" if live else "false")
            .replace("__DATA__", payload))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_report(out_dir: str, stage: Stage, path: str) -> dict:
    """Read a replay's tables, write its report to ``path``; returns a few counts for the command line."""
    tables = read_tables(out_dir)
    data = report_data(stage, tables)
    html = render_report(data)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(html)
    return {"frames": len(data["frames"]["t"]), "riders": len(data["frames"]["bibs"]), "bytes": len(html)}
