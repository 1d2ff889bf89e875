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

import bisect
import json
import unicodedata
from importlib import resources

import numpy as np

from peloton.ingest.eventtime import row_ms
from peloton.match.profile import build_profile
from peloton.match.quality import Quality
from peloton.match.stage import Stage
from peloton.output.tables import drawn
from peloton.sim.evaluate import read_table
from peloton.state.virtual_gc import VIRTUAL_GENERAL

__all__ = ["read_tables", "course_data", "report_data", "render_report", "write_report", "FRAME_S",
           "race_timezone", "decisive_moment", "stage_result", "classifications_view", "virtual_gc_view", "attack_stuck", "ETA_HORIZON_S"]

FRAME_S = 30.0  # the slider's step
_TABLES = drawn()  # what the page draws, from the registry
ETA_HORIZON_S = 8 * 3600.0  # a predicted finish further ahead than this (or in the past) is a first-tick artefact
STUCK_AFTER_S = 300.0  # an attack "stuck" if its riders were still clear of the group they left this long after

# The race's clock: the time zone of where the course starts. A bounding box per country that has hosted a
# grand tour stage (first match wins; the boxes are rough, which is enough for a start town), else the nautical
# zone of the longitude. Checked in order, so the small countries come before France's box that contains them.
# Near a border a box can name the neighbour's zone: between the CET countries that changes the name, not the clock;
# at the Spanish-Portuguese border it can be an hour out (a start town within ~50 km of it).
_ZONE_BOXES = (  # (zone, lat_min, lat_max, lon_min, lon_max)
    ("Europe/Monaco", 43.72, 43.76, 7.40, 7.44),
    ("Europe/Andorra", 42.42, 42.66, 1.40, 1.79),
    ("Europe/Luxembourg", 49.44, 50.19, 5.73, 6.53),
    ("Europe/Brussels", 49.49, 51.51, 2.54, 6.41),
    ("Europe/Amsterdam", 50.75, 53.56, 3.36, 7.23),
    ("Europe/Zurich", 45.82, 47.81, 5.96, 10.49),
    ("Europe/Madrid", 41.90, 43.80, -9.30, -1.80),  # the Basque coast and Galicia, west of France
    ("Europe/Rome", 43.80, 45.90, 7.60, 13.00),  # Piedmont and Liguria, east of the Alps
    ("Europe/London", 50.00, 51.09, -6.00, -2.00),  # Devon and Cornwall, north of Brittany
    ("Europe/London", 50.55, 51.09, -2.00, 1.45),  # the English south coast, north of Normandy and west of Calais
    ("Europe/Paris", 42.33, 51.09, -4.80, 8.23),
    ("Europe/Lisbon", 36.96, 42.15, -9.50, -6.19),
    ("Europe/Madrid", 36.00, 43.79, -9.30, 3.33),
    ("Europe/Rome", 36.62, 47.09, 6.63, 18.52),
    ("Europe/London", 49.90, 58.70, -8.20, 1.77),
    ("Europe/Dublin", 51.42, 55.39, -10.48, -5.99),
    ("Europe/Copenhagen", 54.56, 57.75, 8.07, 12.69),
    ("Europe/Berlin", 47.27, 55.06, 5.87, 15.04),
    ("Europe/Budapest", 45.74, 48.59, 16.11, 22.90),
    ("Europe/Ljubljana", 45.42, 46.88, 13.38, 16.61),
    ("Europe/Oslo", 57.96, 71.19, 4.65, 31.10),
)


def read_tables(out_dir: str, tables=_TABLES) -> dict:
    """Rows of each table under ``out_dir`` (missing tables are empty), event times in epoch ms."""
    out = {}
    for table in tables:
        rows = read_table(out_dir, table)
        for r in rows:
            for key in ("event_time", "eta_finish", "eta_finish_low", "eta_finish_high", "start_time"):
                if r.get(key) is not None:
                    r[key] = row_ms(r[key])
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
    usable = [r for r in rows if r.get("km_from_start") is not None and r.get("quality") in Quality.TRUSTED]
    if not usable:
        return {"t": [], "bibs": [], "km": [], "group": []}
    bib = np.array([r["bib"] for r in usable])
    t = np.array([r["event_time"] for r in usable], dtype=float) / 1000.0
    km = np.array([r["km_from_start"] for r in usable], dtype=float)
    gid = np.array([-1 if r.get("group_id") is None else r["group_id"] for r in usable])
    times = np.arange(np.floor(t.min() / frame_s) * frame_s, t.max(), frame_s)
    times = np.r_[times, t.max()]  # the last moment is where the data ends: "now" on the live page
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


def race_timezone(stage: Stage) -> str:
    """The IANA zone of the race's clock, from where the course starts (see ``_ZONE_BOXES``)."""
    if not stage.route:
        return stage.timezone or "UTC"
    lat, lon = float(stage.route[0][0]), float(stage.route[0][1])
    for zone, lat0, lat1, lon0, lon1 in _ZONE_BOXES:
        if lat0 <= lat <= lat1 and lon0 <= lon <= lon1:
            return zone
    hours = int(round(lon / 15.0))  # POSIX signs: Etc/GMT-2 is two hours ahead of UTC
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"


class _Ticks:
    """The groups table by tick, to look up the groups of any moment quickly."""

    def __init__(self, groups: list[dict]):
        self.by_t: dict = {}
        for g in groups:
            self.by_t.setdefault(g["event_time"], []).append(g)
        self.times = sorted(self.by_t)

    def at_or_before(self, t) -> list[dict]:
        i = bisect.bisect_right(self.times, t) - 1
        return self.by_t[self.times[i]] if i >= 0 else []

    def at_or_after(self, t) -> list[dict]:
        i = bisect.bisect_left(self.times, t)
        return self.by_t[self.times[i]] if i < len(self.times) else []


def attack_stuck(event: dict, ticks: _Ticks, after_s: float = STUCK_AFTER_S) -> bool | None:
    """Were the attackers still clear of the group they left ``after_s`` later? None if the data ends before.

    "Clear": at the first tick ``after_s`` on, most of the attackers ride in one group, ahead of the group that
    then holds most of the other riders of the biggest group they were in before.
    """
    bibs = set(event.get("bibs") or [])
    before, then = ticks.at_or_before(event["event_time"] - 1), ticks.at_or_after(event["event_time"] + after_s * 1000)
    if not bibs or not before or not then:
        return None
    left = max(before, key=lambda g: len(bibs & set(g["bibs"])) * 10000 + g["size"])
    chasers = set(left["bibs"]) - bibs
    if not chasers:
        return None
    attackers_now = max(then, key=lambda g: len(bibs & set(g["bibs"])))
    chasers_now = max(then, key=lambda g: len(chasers & set(g["bibs"])))
    if len(bibs & set(attackers_now["bibs"])) * 2 < len(bibs):
        return False  # the attackers were split up again
    return attackers_now["rank"] < chasers_now["rank"]


def decisive_moment(stage: Stage, tables: dict, frames_t: list[int]) -> dict | None:
    """Where a replay opens: the last split or catch before the head of the race finished, else its finish.

    A time trial opens when the last rider crossed the line (every time is in).
    The head finished at the first ``finished`` event (or when its group's km to go reached 0); a split or a
    catch ("merge"/"bridge") of the last 30 km before that is the story of the finale. None without data.
    """
    if not frames_t:
        return None
    events = sorted(tables.get("race_events", []), key=lambda e: e["event_time"])
    done = [e["event_time"] for e in events if e["event_type"] == "finished"]
    done += [g["event_time"] for g in tables.get("groups", []) if g["rank"] == 1
             and g.get("km_to_finish_head") is not None and g["km_to_finish_head"] <= 0.05]
    finish = min(done) if done else None
    if stage.is_time_trial:  # the last rider home: the standings are complete
        standings = tables.get("virtual_standings", [])
        line = max((s["km"] for s in standings), default=None)
        last = max((s["event_time"] for s in standings if s["km"] == line), default=None)
        return {"event_time": last if last is not None else frames_t[-1],
                "why": "the last finish" if last is not None else "the end of the data"}
    if finish is None:
        return {"event_time": frames_t[-1], "why": "the end of the data"}
    story = [e for e in events if e["event_type"] in ("split", "merge", "bridge") and e["event_time"] <= finish
             and (e.get("km_to_finish") is None or e["km_to_finish"] <= 30.0)]
    if story:
        last = story[-1]
        why = "the last split before the finish" if last["event_type"] == "split" else "the last catch before the finish"
        return {"event_time": last["event_time"], "why": why}
    return {"event_time": finish, "why": "the finish"}


def family_name(name: str, fold: bool = True) -> str:
    """The family name of a start-list name ("Raul GARCIA PIERNA" -> "GARCIA PIERNA": its trailing words in
    capitals; else its last word); ``fold``: for sorting (no accents, upper case)."""
    words = name.split()
    k = len(words)
    while k > 0 and words[k - 1] == words[k - 1].upper() and any(c.isalpha() for c in words[k - 1]):
        k -= 1
    family = " ".join(words[k:] if k < len(words) else words[-1:])
    if not fold:
        return family
    return "".join(c for c in unicodedata.normalize("NFKD", family) if not unicodedata.combining(c)).upper()


def official_first(table: str, rows: list[dict]) -> list[dict]:
    """The rows a reader shows: where the organiser's (``source`` = official) are in, they supersede the trackers'
    (provisional). ``results``: the official rows are the finishers; a provisional row stays only for a rider
    the official result does not list and who did not finish (DNF, still racing). ``classifications``: per
    classification, its official rows where there are any."""
    official = [r for r in rows if r.get("source") == "official"]
    if not official:
        return rows
    if table == "results":
        listed = {r["bib"] for r in official}
        return official + [r for r in rows if r.get("source") != "official" and r["bib"] not in listed
                           and r.get("status") != "finished"]
    kinds = {r["classification"] for r in official}
    return official + [r for r in rows if r.get("source") != "official" and r["classification"] not in kinds]


def stage_result(rows: list[dict], limit: int = 10, names: dict | None = None) -> dict | None:
    """The stage result from the ``results`` table (schemas/results.avsc): winner, first ``limit``, same-time groups.

    None if there is no result yet. Each place carries the credited gap and whether it is the same time as the
    rider before (the UCI time rule: "s.t." on a results sheet), and the range of places it may hold: where the
    data does not decide the order (``order_decided`` false) there is no winner, only the front group
    (``front``: the riders who may be first). ``provisional``: the rows are the trackers', not the organiser's.

    No hint of an order the data does not decide: the riders of a same-time group whose places it does not tell
    apart (consecutive, their place ranges overlapping) are listed alphabetically by family name (``names``:
    {bib: "First FAMILY"}; by bib without it), and so is ``front``; ``neutral_order`` says which.
    """
    def first_place(r):
        return r.get("place_min") if r.get("place_min") is not None else r.get("position")

    def last_place(r):
        return r.get("place_max") if r.get("place_max") is not None else r.get("position")

    def decided(r):
        return bool(r.get("order_decided", r.get("position") is not None) and r.get("position") is not None)

    def neutral(bib):
        return (family_name(names[bib]), bib) if names and bib in names else ("", bib)

    finished = sorted((r for r in rows if r.get("status") == "finished" and first_place(r) is not None),
                      key=lambda r: (first_place(r), r.get("finish_time") or 0, r["bib"]))
    if not finished:
        return None
    # runs of riders the data does not order, within one same-time group: each listed in the neutral order
    run = [0] * len(finished)
    for i in range(1, len(finished)):
        a, b = finished[i - 1], finished[i]
        together = (not decided(a) and not decided(b) and a.get("same_time_group") is not None
                    and a.get("same_time_group") == b.get("same_time_group") and first_place(b) <= last_place(a))
        run[i] = run[i - 1] if together else i
    shown = sorted(range(min(limit, len(finished))), key=lambda i: (run[i], neutral(finished[i]["bib"])))
    places = []
    for k, i in enumerate(shown):
        r = finished[i]
        behind = r.get("credited_time_behind_s")
        if behind is None:
            behind = r.get("time_behind_winner_s")
        group = r.get("same_time_group")
        same = k > 0 and group is not None and group == finished[shown[k - 1]].get("same_time_group")
        places.append({"position": r["position"] if decided(r) else None, "bib": r["bib"], "behind_s": behind,
                       "same_time": bool(same), "same_time_group": group, "elapsed_s": r.get("elapsed_s"),
                       "place_min": first_place(r), "place_max": last_place(r),
                       "order_decided": decided(r), "credited_decided": r.get("credited_time_decided", True),
                       "finish_time": row_ms(r["finish_time"]) if r.get("finish_time") is not None else None})
    winner = places[0]["bib"] if places[0]["order_decided"] and places[0]["position"] == 1 else None
    front = [] if winner is not None else sorted((r["bib"] for r in finished if first_place(r) == 1), key=neutral)
    first_t = min((p["finish_time"] for p in places if p["finish_time"] is not None), default=None)
    return {"places": places, "finished": len(finished), "winner": winner, "front": front,
            "front_names": [family_name(names[b], fold=False) if names and b in names else f"#{b}" for b in front],
            "neutral_order": "alphabetical" if names else "bib",
            "first_finish_time": first_t,
            "dnf": sum(1 for r in rows if r.get("status") == "DNF"),
            "racing": sum(1 for r in rows if r.get("status") == "racing"),
            "provisional": any(r.get("source", "provisional") == "provisional" for r in finished),
            "official": bool(finished) and all(r.get("source") == "official" for r in finished),
            "final": True}


def _with_first_finish(result: dict | None, rows: list[dict]) -> dict | None:
    """The official result has no crossing times: the page still hides it until the first rider crossed the line
    as the trackers saw it (the provisional rows'), or until it was out (its rows' event time) if that is sooner."""
    if result is not None and result["first_finish_time"] is None:
        times = [row_ms(r["finish_time"]) for r in rows if r.get("finish_time") is not None]
        times += [row_ms(r["event_time"]) for r in rows if r.get("source") == "official"]
        result["first_finish_time"] = min(times, default=None)
    return result


#: The jerseys, in the order a broadcast shows them: (classification, jersey).
JERSEYS = (("general", "yellow"), ("points", "green"), ("mountains", "polka-dot"), ("young", "white"))
#: How many riders of each classification the page lists.
CLASSIFICATION_TOP = {"general": 10, "points": 5, "mountains": 5}


def classifications_view(rows: list[dict], names: dict | None = None) -> dict | None:
    """The classifications after the stage as the page shows them (``classifications`` table rows): who holds
    each jersey, the general top 10 and the points and mountains top 5. None before there are rows.

    A jersey has a holder only where his first place is decided; else ``may_lead`` lists who may hold it, in
    a neutral order (family name, as the result's undecided groups), and nobody is named first on the data's
    behalf. A value or a gap is given where decided, else its range; the rows within one place range are
    listed alphabetically. ``provisional``: from the trackers, not the organiser's classification."""
    if not rows:
        return None

    def neutral(bib):
        return (family_name(names[bib]), bib) if names and bib in names else ("", bib or 0)

    by_kind = {}
    for r in rows:
        if r.get("bib") is not None:
            by_kind.setdefault(r["classification"], []).append(r)
    out = {"provisional": any(r.get("source", "provisional") == "provisional" for r in rows),
           "official": all(r.get("source") == "official" for r in rows),
           "event_time": max(row_ms(r["event_time"]) for r in rows), "jerseys": [], "tables": {}}
    for kind, jersey in JERSEYS:
        ranked = sorted(by_kind.get(kind, []), key=lambda r: (r["place_min"], neutral(r["bib"])))
        holder = next((r["bib"] for r in ranked if r.get("position") == 1), None)
        out["jerseys"].append({"classification": kind, "jersey": jersey, "holder": holder,
                               "may_lead": [] if holder is not None else [r["bib"] for r in ranked
                                                                          if r["place_min"] == 1]})
    for kind, top in CLASSIFICATION_TOP.items():
        ranked = sorted(by_kind.get(kind, []), key=lambda r: (r["place_min"], r["place_max"], neutral(r["bib"])))
        leader = next((r for r in ranked if r.get("position") == 1), None)
        shown = []
        for r in ranked[:top]:
            row = {k: r.get(k) for k in ("bib", "position", "place_min", "place_max", "value", "value_min",
                                         "value_max", "decided")}
            row["gap"] = r.get("gap_to_leader")
            if kind == "general" and leader is not None and row["gap"] is None:  # the range it may be
                row["gap_min"] = max(0.0, round(r["value_min"] - leader["value_max"], 1))
                row["gap_max"] = round(r["value_max"] - leader["value_min"], 1)
            shown.append(row)
        out["tables"][kind] = {"rows": shown, "classified": len(ranked), "leader_decided": leader is not None}
    return out


#: How many riders of the virtual general classification the page lists.
VIRTUAL_TOP = 10


def _round(x, digits: int = 1):
    """A number as short as the page needs it (0.1 s; whole numbers without their '.0')."""
    if x is None:
        return None
    x = round(float(x), digits)
    return int(x) if x.is_integer() else x


def virtual_gc_view(rows: list[dict]) -> dict | None:
    """The live virtual general classification as the page replays it (``classifications`` rows
    ``virtual_general``): the rows that put a rider in the top :data:`VIRTUAL_TOP` or take him out of it, as
    ``[s after t0, bib, place_min, place_max, value_min, value_max, gap_to_leader, decided 0/1]`` in time
    order (the page keeps each rider's latest at the moment shown), a rider's last of each step of the slider
    (``FRAME_S``), times to 0.1 s. None without rows."""
    ordered = sorted((r for r in rows if r.get("classification") == VIRTUAL_GENERAL and r.get("bib") is not None),
                     key=lambda r: (row_ms(r["event_time"]), r["place_min"], r["bib"]))
    if not ordered:
        return None
    latest, was_top = {}, set()
    for r in ordered:
        top = r["place_min"] <= VIRTUAL_TOP
        if top or r["bib"] in was_top:  # a rider's last row of each of the slider's steps: what the page can show
            t = row_ms(r["event_time"])
            latest[(t // int(FRAME_S * 1000), r["bib"])] = [
                t, r["bib"], r["place_min"], r["place_max"], _round(r["value_min"]), _round(r["value_max"]),
                _round(r.get("gap_to_leader")), int(bool(r["decided"]))]
        (was_top.add if top else was_top.discard)(r["bib"])
    shown = sorted(latest.values(), key=lambda row: (row[0], row[2], row[1]))
    t0 = shown[0][0]
    for row in shown:  # seconds after the first row: the page's biggest table stays small
        row[0] = _round((row[0] - t0) / 1000.0, 3)
    return {"rows": shown, "t0": t0, "top": VIRTUAL_TOP,
            "provisional": any(r.get("source", "provisional") == "provisional" for r in ordered),
            "standings_before": not ordered[0]["detail"].startswith("this stage alone")}


def _event_size(e: dict, ticks: _Ticks) -> int:
    """How many riders an event is about: the biggest of the groups it names (or its riders)."""
    ids = [i for i in (e.get("group_ids") or []) if i is not None]
    sizes = [len(e.get("bibs") or [])] + [g["size"] for g in ticks.at_or_before(e["event_time"]) if g["group_id"] in ids]
    return max(sizes)


BIBS_UP_TO = 40  # groups bigger than this carry no rider list (the page reads their riders from the frames)
_EVENT_TYPES = ("split", "merge", "attack", "bridge", "dropped", "crosswind_ahead")


def _eta_rows(preds: list[dict]) -> list[dict]:
    """The head of the race's predicted finish every minute, without the absurd ones (a first tick's guess)."""
    rows = []
    for p in _sample([p for p in preds if p["rank"] == 1 and p.get("eta_finish") is not None], 60_000,
                     key=lambda r: 0):
        ahead_s = (p["eta_finish"] - p["event_time"]) / 1000.0
        if 0.0 <= ahead_s <= ETA_HORIZON_S:
            rows.append({k: p.get(k) for k in ("event_time", "eta_finish", "eta_finish_low", "eta_finish_high",
                                               "km_to_finish")})
    return rows


def report_data(stage: Stage, tables: dict, course: dict | None = None) -> dict:
    """What the page draws, as plain JSON-able data (``course``: :func:`course_data`, if already made)."""
    course = course or course_data(stage)
    names = {int(r["bib"]): {"name": r.get("name") or f"#{r['bib']}", "team": r.get("team") or ""}
             for r in stage.riders}
    groups = tables.get("groups", [])
    ticks = _Ticks(groups)
    every_30s = {g["event_time"] for g in _sample(groups, 30_000, key=lambda r: 0)}  # whole ticks, every 30 s
    group_rows = [{k: (g.get(k) if k != "bibs" or g["size"] <= BIBS_UP_TO else None)
                   for k in ("event_time", "group_id", "rank", "label", "size", "bibs", "km_to_finish_head",
                             "gap_to_leader_s", "speed_kph")}
                  for g in groups if g["event_time"] in every_30s]
    events = []
    for e in sorted(tables.get("race_events", []), key=lambda e: e["event_time"]):
        if e["event_type"] not in _EVENT_TYPES:
            continue
        row = {k: e.get(k) for k in ("event_time", "event_type", "km_to_finish", "detail")}
        row["size"] = len(e.get("bibs") or []) if e["event_type"] != "crosswind_ahead" else _event_size(e, ticks)
        row["bibs"] = (e.get("bibs") or [])[:BIBS_UP_TO]
        if e["event_type"] == "attack":
            row["stuck"] = attack_stuck(e, ticks)
        events.append(row)
    preds = tables.get("predictions", [])
    catch = [{k: p.get(k) for k in ("event_time", "group_id", "rank", "label", "size", "catch_probability")}
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
    standings = [[s["event_time"], s["bib"], s["km"], s["elapsed_s"]] for s in tables.get("virtual_standings", [])
                 if s.get("elapsed_s") is not None]
    frames = _frames(tables.get("rider_state", []))
    splits = [{"name": c["place"] or f"km {c['km']}", "km": c["km"]} for c in stage.checkpoints
              if "chrono" in (c.get("types") or [])] if stage.is_time_trial else []
    return {
        "stage": {"id": stage.stage_id, "name": stage.name, "date": stage.date, "time_trial": stage.is_time_trial,
                  "tz": race_timezone(stage), "splits": splits},
        "course": course, "riders": {str(k): v for k, v in names.items()},
        "frames": frames, "groups": group_rows, "events": events, "head_eta": _eta_rows(preds),
        "catch": catch, "climb_efforts": best, "standings": standings,
        "decisive": decisive_moment(stage, tables, frames["t"]),
        "result": _with_first_finish(stage_result(official_first("results", tables.get("results", [])),
                                                  names={b: v["name"] for b, v in names.items()}),
                                     tables.get("results", [])),
        "classifications": classifications_view([r for r in official_first("classifications",
                                                                          tables.get("classifications", []))
                                                 if r["classification"] != VIRTUAL_GENERAL],
                                                names={b: v["name"] for b, v in names.items()}),
        "virtual_gc": virtual_gc_view(tables.get("classifications", [])),
        "newest_event_time": max((r["event_time"] for r in tables.get("rider_state", [])), default=None),
    }


def render_report(data: dict, live: bool = False) -> str:
    """The page: template, styles, script and data in one HTML text."""
    page = resources.files("peloton.report").joinpath("report.html").read_text(encoding="utf-8")
    vendor = resources.files("peloton.report").joinpath("vendor")
    chart_js = vendor.joinpath("uPlot.iife.min.js").read_text(encoding="utf-8").replace("</", "<\\/")
    chart_css = vendor.joinpath("uPlot.min.css").read_text(encoding="utf-8")
    page = page.replace("/*__CHART_CSS__*/", chart_css).replace("/*__CHART_JS__*/", chart_js)
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
