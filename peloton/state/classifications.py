"""The classifications after a stage: general time, points, mountains, young rider, teams.

Pure numpy, one small function per rule, the scales as data. Each row is a
claim a broadcaster will show, so an order the data does not decide is
never guessed: a rider's place is the range ``[place_min, place_max]`` it
can take, and a value hanging on it (points, a bonus) the range of values
that range of places gives, marked ``decided = false``.

Where a place comes from:

* the finish: the stage result's ``position`` (or, when the result says the
  order inside a same-time group is not decided, its ``place_min`` and
  ``place_max``) (:func:`finish_places`);
* a sprint line, a bonus point or a summit: each rider's passage there by the
  pipeline's one passage rule (:mod:`peloton.match.passage`: between the last fix
  short of the point and the first at or past it), as an interval: the
  straight-line estimate within ``PASSAGE_UNCERTAINTY_S`` (kept inside the
  bracket), or the whole bracket when the fixes are too far apart; two
  riders are ordered only when their intervals do not overlap
  (:func:`passage_intervals`, :func:`places_from_intervals`). A finisher of
  the stage never seen at the point passed it at an unknown time: he could
  be anywhere, and so widens every other rider's range.

Scales, checked in the stored public material (no regulation text of the
organiser itself was found there; these are secondary sources, the 2026 ones
first):

* points: cyclingstage.com, "Tour de France 2026: Points Classification"
  (finish 50-30-20-18-16-14-12-10-8-7-6-5-4-3-2 / 30-25-22-19-17-15-13-11-9-7-6-5-4-3-2 /
  20-17-15-13-11-10-9-8-7-6-5-4-3-2-1, intermediate sprints 20-17-...-1, none in time
  trials); inrng.com 2015 "Tour de France Points Competition Scale Revealed" (the same scales
  by stage coefficient: flat / hilly / mountain / individual time trial);
* mountains: cyclingstage.com (2025 page: HC 20-15-12-10-8-6-4-2, cat 1 10-8-6-4-2-1,
  cat 2 5-3-2-1, cat 3 2-1, cat 4 1); cnews.fr "comment obtenir le maillot à pois" (the same);
  cyclesure.co.za 2025 "Tour de France Points and Time Bonuses" (the same). Double points on
  chosen summits exist some years (hbvl.be 2019): not in the feed, not applied;
* time bonuses: 10-6-4 s to the first three at the finish of road stages, none in time
  trials (cyclesure.co.za 2025, cyclingweekly.com 2019, velo.outsideonline.com 2015);
  8-5-2 s at "bonus points" (points-bonus) that do not count for the points classification
  (francetvinfo.fr 2019, cyclingweekly.com 2019; a 2025 forum summary at oldsh.itjust.works
  lists them on chosen stages). Neither recording here has such a checkpoint: the checkpoint
  type ``bonus`` read for them is our assumption, not seen in the feed;
* young rider: born on or after 1 January of the race year minus 25 (the Tour 2019 magazine on
  viewer.joomag.com: "aged up to 25 in the calendar year"; a public Race Center client filters
  the GC the same way);
* teams: the three best individual times of each team on each stage, added up
  (guide.letour-games.com, "Regulations of the Tour", 2018).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from peloton.match.passage import MAX_BRACKET_S

__all__ = ["FINISH_POINTS", "SPRINT_POINTS", "MOUNTAIN_POINTS", "FINISH_BONUS_S", "BONUS_POINT_S",
           "PASSAGE_UNCERTAINTY_S", "GC_TOLERANCE_S", "YOUNG_MAX_AGE", "Standings", "StandingsError", "parse_standings",
           "standings_from_rows", "standings_csv", "STANDINGS_CSV_COLUMNS",
           "scale_range", "places_from_intervals", "passage_intervals", "finish_places", "is_young",
           "team_stage_times", "credited_bounds", "stage_points", "classification_rows", "CLASSIFICATIONS"]

CLASSIFICATIONS = ("general", "points", "mountains", "young", "teams")

_MOUNTAIN_STAGE = (20, 17, 15, 13, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
#: Points at the finish by stage type (``rest.stages[date].type``); a team time trial gives none.
FINISH_POINTS = {
    "PLN": (50, 30, 20, 18, 16, 14, 12, 10, 8, 7, 6, 5, 4, 3, 2),  # flat
    "VAL": (30, 25, 22, 19, 17, 15, 13, 11, 9, 7, 6, 5, 4, 3, 2),  # hilly
    "HMG": _MOUNTAIN_STAGE,  # mountain
    "PAS": _MOUNTAIN_STAGE,  # individual time trial
    "ITT": _MOUNTAIN_STAGE,
}
#: Points at an intermediate sprint (checkpoint type ``sprint`` that is not the ``arrival``).
SPRINT_POINTS = _MOUNTAIN_STAGE
#: Mountains points by summit category (``checkpointSummits[*].code``; ``H`` is hors catégorie).
MOUNTAIN_POINTS = {"H": (20, 15, 12, 10, 8, 6, 4, 2), "HC": (20, 15, 12, 10, 8, 6, 4, 2),
                   "1": (10, 8, 6, 4, 2, 1), "2": (5, 3, 2, 1), "3": (2, 1), "4": (1,)}
#: Time bonuses (s) at the finish of a road stage, and at a bonus point.
FINISH_BONUS_S = (10, 6, 4)
BONUS_POINT_S = (8, 5, 2)
#: Stage types with no finish bonus (time trials).
TIME_TRIAL_TYPES = ("PAS", "EQU", "ITT", "TTT")
#: Half-width of a passage estimate inside a bracket of fixes: the straight line between two fixes at most
#: MAX_BRACKET_S apart is off by 4 s at p90 on stage 4 (benchmarks/HISTORY.md, "One passage rule").
PASSAGE_UNCERTAINTY_S = 4.0
#: A general time is claimed to the second: decided only where the data puts it within this of its value either
#: side (the benchmark's "right": within 1 s), the credited time's group and the bonus being decided.
GC_TOLERANCE_S = 1.0
#: Young riders: born on or after 1 January of the race year minus this.
YOUNG_MAX_AGE = 25
#: Riders of a team whose times count in the teams classification.
TEAM_TIMES = 3


class StandingsError(ValueError):
    """Standings before the stage that cannot be used: one line that says why."""


# ---------------------------------------------------------------------------------------------------------
# places and scales


def scale_range(scale, place_min, place_max) -> tuple[np.ndarray, np.ndarray]:
    """(least, most) a scale gives a rider who may hold any place of ``[place_min, place_max]`` (1-based;
    nan: unplaced, 0). Beyond the scale a place is worth 0."""
    padded = np.r_[np.asarray(scale, float), 0.0]
    lo_place, hi_place = np.asarray(place_min, float), np.asarray(place_max, float)
    placed = np.isfinite(lo_place) & np.isfinite(hi_place)
    best = np.clip(np.where(placed, lo_place, padded.size) - 1, 0, padded.size - 1).astype(np.int64)
    worst = np.clip(np.where(placed, hi_place, padded.size) - 1, 0, padded.size - 1).astype(np.int64)
    return padded[worst], padded[best]


def places_from_intervals(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(place_min, place_max) of each of n contestants whose value lies in ``[lo, hi]`` (less is better):
    one is surely ahead of another only when his interval ends before the other's begins."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    ahead = hi[None, :] < lo[:, None]  # [i, j]: j surely ahead of i
    maybe = lo[None, :] <= hi[:, None]  # [i, j]: j may be ahead of i (i itself included)
    return 1 + ahead.sum(axis=1), maybe.sum(axis=1)


def finish_places(position, place_min=None, place_max=None, order_decided=None) -> tuple[np.ndarray, np.ndarray]:
    """(place_min, place_max) from result rows: the result's range where it gives one (the stage result that
    marks undecided same-time groups), else ``position`` for both (nan: no place)."""
    pos = np.array([np.nan if p is None else p for p in position], float)
    if place_min is None:
        return pos, pos.copy()
    pmin = np.array([np.nan if p is None else p for p in place_min], float)
    pmax = np.array([np.nan if p is None else p for p in place_max], float)
    decided = np.array([d is None or bool(d) for d in order_decided], bool) if order_decided is not None else \
        np.ones(pos.size, bool)
    use_pos = np.isfinite(pos) & (decided | ~np.isfinite(pmin))
    return np.where(use_pos, pos, pmin), np.where(use_pos, pos, pmax)


def passage_intervals(bib: np.ndarray, t: np.ndarray, km: np.ndarray, at_km,
                      uncertainty_s: float = PASSAGE_UNCERTAINTY_S,
                      max_bracket_s: float = MAX_BRACKET_S) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(riders, lo, hi): when each rider passed each point of ``at_km``, as an interval (riders x points,
    epoch s; nan: not seen at or past the point).

    :mod:`peloton.match.passage`'s bracket (last fix whose furthest km is short of the point, first at or past it),
    for every rider at once: the straight-line estimate within ``uncertainty_s`` when the bracket is at most
    ``max_bracket_s`` long, else the whole bracket; a track that starts past the point: before its first fix.
    """
    at_km = np.atleast_1d(np.asarray(at_km, float))
    order = np.lexsort((t, bib))
    b, tt, kk = bib[order], np.asarray(t, float)[order], np.asarray(km, float)[order]
    riders, first = np.unique(b, return_index=True)
    shape = (riders.size, at_km.size)
    if not riders.size:
        return riders, np.zeros(shape), np.zeros(shape)
    rider = np.searchsorted(riders, b)
    # the furthest km so far, per rider, in one pass: each rider's kms lifted above every earlier rider's
    span = float(np.nanmax(np.abs(kk))) * 2 + 1.0 if kk.size else 1.0
    reach = np.maximum.accumulate(np.nan_to_num(kk, nan=-span / 2) + rider * span)
    last = np.r_[first[1:], b.size] - 1
    j = np.searchsorted(reach, (at_km[None, :] + (np.arange(riders.size) * span)[:, None]).ravel(), "left")
    j = j.reshape(shape)
    start = first[:, None]
    seen = j <= last[:, None]  # a fix of his at or past the point
    j = np.minimum(j, last[:, None])
    before = np.maximum(j - 1, start)
    t1, t0 = tt[j], tt[before]
    k1, k0 = reach[j] - (rider[j] * span), reach[before] - (rider[before] * span)
    has_bracket = seen & (j > start)
    frac = np.clip((at_km[None, :] - k0) / np.maximum(k1 - k0, 1e-12), 0.0, 1.0)
    est = t0 + frac * (t1 - t0)
    close = has_bracket & (t1 - t0 <= max_bracket_s)
    lo = np.where(close, np.maximum(t0, est - uncertainty_s), np.where(has_bracket, t0, -np.inf))
    hi = np.where(close, np.minimum(t1, est + uncertainty_s), t1)
    return riders, np.where(seen, lo, np.nan), np.where(seen, hi, np.nan)


def point_places(contenders: np.ndarray, riders: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(place_min, place_max) of ``contenders`` at one point from the passage intervals of ``riders``: a
    contender not seen there passed it at an unknown time (any place)."""
    idx = np.searchsorted(riders, contenders) if riders.size else np.zeros(contenders.size, np.int64)
    idx = np.minimum(idx, max(riders.size - 1, 0))
    found = riders.size > 0
    known = (riders[idx] == contenders) & np.isfinite(lo[idx]) if found else np.zeros(contenders.size, bool)
    c_lo = np.where(known, lo[idx] if found else 0.0, -np.inf)
    c_hi = np.where(known, hi[idx] if found else 0.0, np.inf)
    return places_from_intervals(c_lo, c_hi)


def is_young(birthdate, year: int) -> np.ndarray:
    """Born on or after 1 January of ``year`` - 25 (``birthdate``: ISO strings; missing: not young)."""
    years = np.array([int(str(d)[:4]) if d and re.match(r"^\d{4}", str(d)) else -1 for d in birthdate], np.int64)
    return years >= year - YOUNG_MAX_AGE


def team_stage_times(team: np.ndarray, credited_s: np.ndarray, credited_max_s: np.ndarray | None = None) -> dict:
    """{team: (least, most) sum of its three best credited times behind on the stage}, teams with three
    finishers; each rider's time may be a range (``credited_s`` .. ``credited_max_s``): the least sum takes the
    three least, the most the three least of the most."""
    out = {}
    most_s = np.asarray(credited_s if credited_max_s is None else credited_max_s, float)
    ok = np.array([bool(x) for x in team], bool) & np.isfinite(credited_s)
    keys = np.asarray(team, object)[ok]
    vals, most = np.asarray(credited_s, float)[ok], most_s[ok]
    for name in sorted(set(keys.tolist())):
        lo, hi = np.sort(vals[keys == name])[:TEAM_TIMES], np.sort(most[keys == name])[:TEAM_TIMES]
        if lo.size == TEAM_TIMES:
            out[name] = (float(lo.sum()), float(hi.sum()))
    return out


def credited_bounds(results: list[dict], time_trial: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(least, most, decided) credited time behind of each result row (nan: none): the result's range
    ``credited_time_min_s`` .. ``credited_time_max_s`` widened by the crossing uncertainty of whoever may head
    his group (``finish_uncertainty_s``; absent: exact), ``decided`` as the result says.

    The frame is the stage's first crossing as measured (the stage winner's time): its own error moves every
    rider alike, and so no gap and no place. His group's true head crossed no earlier than the earliest
    ``t - u`` of the riders not surely in a group ahead (from the ``credited_time_min_s`` head on), and no
    later than the ``credited_time_max_s`` head's ``t + u``. In a time trial the time is his own."""
    num = (lambda key, default=np.nan: np.array([default if r.get(key) is None else float(r[key])
                                                 for r in results], float))
    credited = num("credited_time_behind_s")
    behind = num("time_behind_winner_s")
    u = num("finish_uncertainty_s", 0.0)
    c_min, c_max = num("credited_time_min_s"), num("credited_time_max_s")
    c_min, c_max = np.where(np.isfinite(c_min), c_min, credited), np.where(np.isfinite(c_max), c_max, credited)
    decided = np.array([r.get("credited_time_decided") is not False for r in results], bool) & np.isfinite(credited)
    if time_trial:
        return credited - u, credited + u, decided
    crossed = np.flatnonzero(np.isfinite(behind))
    if not crossed.size:
        return c_min, c_max, decided
    order = crossed[np.argsort(behind[crossed], kind="stable")]
    t, uu = behind[order], u[order]
    earliest_from = np.minimum.accumulate((t - uu)[::-1])[::-1]  # the earliest any rider from here on crossed
    head = (lambda c: np.minimum(np.searchsorted(t, np.nan_to_num(c) - 5e-4, "left"), t.size - 1))
    lo = np.where(np.isfinite(c_min), np.minimum(c_min - uu[head(c_min)], earliest_from[head(c_min)]), np.nan)
    hi = np.where(np.isfinite(c_max), c_max + uu[head(c_max)], np.nan)
    return lo, hi, decided


# ---------------------------------------------------------------------------------------------------------
# the standings before the stage


_BY_BIB = ("gc_s", "points", "mountains", "gc_s_max", "points_max", "mountains_max")


@dataclass
class Standings:
    """Standings before the stage: total time (s), points, mountains points per bib; team times (s).

    A value an earlier stage left undecided is a range: ``gc_s`` .. ``gc_s_max`` (and ``points_max``,
    ``mountains_max``); a bib absent from a ``*_max`` dict has an exact value. Chained stages carry the range
    on: the next stage's rows stay undecided where it hangs on it, rather than inheriting a guess."""

    gc_s: dict = field(default_factory=dict)
    points: dict = field(default_factory=dict)
    mountains: dict = field(default_factory=dict)
    teams_s: dict = field(default_factory=dict)
    source: str = ""
    gc_s_max: dict = field(default_factory=dict)
    points_max: dict = field(default_factory=dict)
    mountains_max: dict = field(default_factory=dict)

    def upper(self, kind: str) -> dict:
        """{bib: most} of ``gc_s``, ``points`` or ``mountains``."""
        return {**getattr(self, kind), **getattr(self, kind + "_max")}

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in _BY_BIB:
            d[k] = {str(b): v for b, v in d[k].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Standings":
        by_bib = {k: {int(b): float(v) for b, v in (d.get(k) or {}).items()} for k in _BY_BIB}
        return cls(**by_bib, teams_s={str(k): float(v) for k, v in (d.get("teams_s") or {}).items()},
                   source=str(d.get("source", "")))

    def only(self, bibs) -> "Standings":
        """These riders' standings (the start list of the next stage: who abandoned is no longer classified)."""
        keep = set(int(b) for b in bibs)
        by_bib = {k: {b: v for b, v in getattr(self, k).items() if b in keep} for k in _BY_BIB}
        return Standings(**by_bib, teams_s=dict(self.teams_s), source=self.source)


#: The CSV of standings (``--standings-before``, and ``peloton tour``'s ``standings_after.csv``): the first two
#: columns are required; the ``*_max`` ones carry a range an undecided order left open.
STANDINGS_CSV_COLUMNS = {"gc_time_s": "gc_s", "points": "points", "mountain_points": "mountains",
                         "gc_time_max_s": "gc_s_max", "points_max": "points_max",
                         "mountain_points_max": "mountains_max"}


def standings_from_rows(rows: list[dict], source: str) -> Standings:
    """The standings after a stage from its classification rows: each rider's value, or its range when
    undecided (``value_min`` .. ``value_max``); riders absent from points or mountains have none."""
    out = Standings(source=source)
    for r in rows:
        kind = {"general": "gc_s", "points": "points", "mountains": "mountains"}.get(r["classification"])
        if kind is not None and r.get("bib") is not None:
            getattr(out, kind)[int(r["bib"])] = float(r["value_min"])
            if r["value_max"] != r["value_min"]:
                getattr(out, kind + "_max")[int(r["bib"])] = float(r["value_max"])
        elif r["classification"] == "teams" and r.get("team"):
            out.teams_s[str(r["team"])] = float(r["value_min"])
    return out


def standings_csv(standings: Standings) -> str:
    """Standings as the CSV ``--standings-before`` reads: every rider of the general classification, his
    points and mountains points (0: none), and the upper end of every range (equal to the value when decided).
    The CSV has no team times: the teams classification does not chain through it."""
    names = list(STANDINGS_CSV_COLUMNS)
    lines = [",".join(["bib"] + names)]
    for bib in sorted(standings.gc_s):
        vals = []
        for col in names:
            kind = STANDINGS_CSV_COLUMNS[col]
            base = kind[:-4] if kind.endswith("_max") else kind
            d = standings.upper(base) if kind.endswith("_max") else getattr(standings, base)
            vals.append(f"{d.get(bib, 0.0):.12g}")
        lines.append(",".join([str(bib)] + vals))
    return "\n".join(lines) + "\n"


#: Race Center ranking types read (``/api/rankingTypeArrival-YEAR-STAGE``): general time, points, mountains,
#: teams (general); the stage ones (``ite``, ``ipe``, ...) and the young one (the GC filtered) are not needed.
_RANKING_TYPES = {"itg": "gc_s", "ipg": "points", "img": "mountains", "etg": "teams_s"}


def parse_standings(text: str, name: str, start_list, year: int | None = None, stage_number: int | None = None,
                    teams=None) -> Standings:
    """Standings before the stage from the Race Center's rankings document (JSON) or a CSV
    ``bib,gc_time_s[,points,mountain_points,gc_time_max_s,points_max,mountain_points_max]``;
    :class:`StandingsError` (one line) on anything unusable:
    malformed, of another race or stage (the document of stage N-1 is the one before stage N), or naming
    riders not on the start list."""
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        out = _parse_rankings_json(stripped, name, year, stage_number, teams)
    else:
        out = _parse_standings_csv(text, name)
    known = set(int(b) for b in start_list) if start_list else None
    if known is not None:
        unknown = sorted((set(out.gc_s) | set(out.points) | set(out.mountains)) - known)
        if unknown:
            raise StandingsError(f"{name}: bib {unknown[0]} is not on the start list"
                                 + (f" ({len(unknown)} such bibs)" if len(unknown) > 1 else ""))
    if not out.gc_s:
        raise StandingsError(f"{name}: no general classification in it")
    return out


def _parse_rankings_json(text, name, year, stage_number, teams) -> Standings:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StandingsError(f"{name}: not JSON ({exc})") from None
    blocks = doc if isinstance(doc, list) else [doc]
    out = Standings(source=name)
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("rankings"), list):
            raise StandingsError(f"{name}: not a Race Center rankings document (a list of "
                                 "{type, rankings: [...]} is expected)")
        for key in ("_bind", "_origin", "_parent", "bind"):
            m = re.search(r"rankingType\w*-(\d{4})-(\d+)", str(block.get(key, "")))
            if m:
                y, s = int(m.group(1)), int(m.group(2))
                if year is not None and y != year:
                    raise StandingsError(f"{name}: rankings of {y}, the stage is of {year}")
                if stage_number is not None and s != stage_number - 1:
                    raise StandingsError(f"{name}: rankings after stage {s}; before stage {stage_number} "
                                         f"those after stage {stage_number - 1} are needed")
        kind = _RANKING_TYPES.get(block.get("type"))
        if kind is None:
            continue
        target = getattr(out, kind)
        for row in block["rankings"]:
            key, value = _ranking_row(row, kind, name, teams)
            if key in target:
                raise StandingsError(f"{name}: {key} twice in ranking {block.get('type')}")
            target[key] = value
    return out


def _ranking_row(row, kind, name, teams):
    if not isinstance(row, dict):
        raise StandingsError(f"{name}: a ranking row is not an object")
    value = row.get("absolute") if kind in ("gc_s", "teams_s") else row.get("points", row.get("absolute"))
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise StandingsError(f"{name}: ranking row {row.get('bib', row.get('team'))!r} has no usable value")
    value = float(value) / 1000.0 if kind in ("gc_s", "teams_s") else float(value)  # times in ms
    if kind == "teams_s":
        team = row.get("team") or row.get("code")
        if not isinstance(team, str) or not team:
            raise StandingsError(f"{name}: a team ranking row has no team")
        return (teams or {}).get(team, team), value
    bib = row.get("bib")
    if type(bib) is not int or bib <= 0:
        raise StandingsError(f"{name}: a ranking row has no bib")
    return bib, value


def _parse_standings_csv(text, name) -> Standings:
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows or [c.strip() for c in rows[0][:2]] != ["bib", "gc_time_s"]:
        raise StandingsError(f"{name}: neither a Race Center rankings document nor a CSV with the header "
                             "bib,gc_time_s[,points,mountain_points]")
    header = [c.strip() for c in rows[0]]
    extra = [c for c in header[2:] if c not in STANDINGS_CSV_COLUMNS]
    if extra:
        raise StandingsError(f"{name}: unknown column {extra[0]!r}")
    out = Standings(source=name)
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise StandingsError(f"{name}:{line}: {len(row)} fields, the header has {len(header)}")
        try:
            bib = int(row[0])
            values = [float(c) if c.strip() else 0.0 for c in row[1:]]
        except ValueError:
            raise StandingsError(f"{name}:{line}: not a number in {','.join(row)!r}") from None
        # times may be negative: chained standings are relative to the stage winners, less their bonuses
        if bib <= 0 or not all(np.isfinite(v) and (v >= 0 or "time" in col) for col, v in zip(header[1:], values)):
            raise StandingsError(f"{name}:{line}: a bib or a value out of range")
        if bib in out.gc_s:
            raise StandingsError(f"{name}:{line}: bib {bib} twice")
        out.gc_s[bib] = values[0]
        for col, v in zip(header[2:], values[1:]):
            getattr(out, STANDINGS_CSV_COLUMNS[col])[bib] = v
    for kind in ("gc_s", "points", "mountains"):  # a range: its upper end where it is one, never below the value
        most = getattr(out, kind + "_max")
        for bib, hi in list(most.items()):
            lo = getattr(out, kind).get(bib, 0.0)
            if hi < lo:
                raise StandingsError(f"{name}: bib {bib}: {kind} range {lo:g}..{hi:g} is upside down")
            if hi == lo:
                del most[bib]
    return out


# ---------------------------------------------------------------------------------------------------------
# the stage's points and bonuses


def stage_points(finish: tuple, points_at: list, stage_type: str) -> dict:
    """Each rider's points, mountains points and bonus seconds of the stage, as [least, most] arrays.

    ``finish``: (place_min, place_max) at the line per rider; ``points_at``: [(kind, scale, place_min,
    place_max)] for every sprint (``sprint``), summit (``mountains``) and bonus point (``bonus``)."""
    n = np.asarray(finish[0]).size
    out = {k: [np.zeros(n), np.zeros(n)] for k in ("points", "mountains", "bonus")}
    scale = FINISH_POINTS.get(stage_type)
    if scale is not None:
        lo, hi = scale_range(scale, *finish)
        out["points"][0] += lo
        out["points"][1] += hi
    if stage_type not in TIME_TRIAL_TYPES:
        lo, hi = scale_range(FINISH_BONUS_S, *finish)
        out["bonus"][0] += lo
        out["bonus"][1] += hi
    for kind, pscale, pmin, pmax in points_at:
        lo, hi = scale_range(pscale, pmin, pmax)
        target = "points" if kind == "sprint" else kind
        out[target][0] += lo
        out[target][1] += hi
    return out


# ---------------------------------------------------------------------------------------------------------
# the rows


def _rank_rows(stage_id, event_ms, classification, keys, lo, hi, lower_is_better, detail, teams=None,
               key_is_team=False, tolerance=0.0, known=None) -> list[dict]:
    """Rows of one classification: places from the value intervals, the gap to a decided leader.

    A value is decided where ``known`` (default: everywhere) and its range is within ``tolerance`` of its
    middle either side (points: exactly one value; times: to the second, :data:`GC_TOLERANCE_S`); a place
    where the intervals decide it. Anything else is a range, never a guess."""
    if not len(keys):
        return []
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    pmin, pmax = places_from_intervals(lo, hi) if lower_is_better else places_from_intervals(-hi, -lo)
    exact = (hi - lo <= 2 * tolerance + 1e-9) & (np.ones(lo.size, bool) if known is None else np.asarray(known))
    mid = (lo + hi) / 2
    decided = exact & (pmin == pmax)
    leader = np.flatnonzero(decided & (pmin == 1))
    rows = []
    for i in np.argsort(pmin * 10000 + pmax, kind="stable").tolist():
        gap = None
        if exact[i] and leader.size:
            gap = round(float(mid[i] - mid[leader[0]] if lower_is_better else mid[leader[0]] - mid[i]), 3)
        key = keys[i]
        what = detail if isinstance(detail, str) else detail[i]
        why = ("the order is not decided by the data" if exact[i] else "the value is a range: "
               + (f"{lo[i]:.1f}..{hi[i]:.1f}" if tolerance else f"{lo[i]:g}..{hi[i]:g}"))
        rows.append({"stage_id": stage_id, "event_time": int(event_ms), "classification": classification,
                     "bib": None if key_is_team else int(key),
                     "team": key if key_is_team else (teams or {}).get(int(key)) or None,
                     "position": int(pmin[i]) if pmin[i] == pmax[i] else None,
                     "place_min": int(pmin[i]), "place_max": int(pmax[i]),
                     "value": round(float(mid[i]), 3) if exact[i] else None,
                     "value_min": round(float(lo[i]), 3), "value_max": round(float(hi[i]), 3),
                     "gap_to_leader": gap, "decided": bool(decided[i]), "source": "provisional",
                     "detail": what if decided[i] else f"{what}; undecided: {why}"})
    return rows


def classification_rows(stage_id: str, event_ms: int, stage_type: str, year: int | None,
                        bib: np.ndarray, status, credited_s: np.ndarray, finish: tuple,
                        points_at: list, standings: Standings | None, teams: dict,
                        birthdates: dict, credited_range: tuple | None = None) -> list[dict]:
    """Every classification row after the stage.

    ``bib``, ``status``, ``credited_s`` (credited time behind the winner, s), ``finish`` (place_min, place_max):
    the stage result row for row; ``credited_range``: (least, most, decided) of the credited time row for row
    (:func:`credited_bounds`; default: ``credited_s``, exact); ``points_at``: [(kind, scale, riders,
    place_min, place_max)] of every sprint, summit and bonus point (places of ``riders``); ``standings``: before
    the stage (None: this stage alone, as the first one); ``teams`` {bib: team}; ``birthdates`` {bib: ISO date}.

    The general time is a range wherever its parts are: the standings before, the credited time (its group,
    its head's crossing), the bonus; decided to the second only where the credited time and the bonus are
    decided and the whole range is within :data:`GC_TOLERANCE_S` of its middle.
    """
    bib = np.asarray(bib, np.int64)
    finished = (np.asarray(status, object) == "finished") & np.isfinite(credited_s)
    if standings is not None:
        finished &= np.isin(bib, np.array(sorted(standings.gc_s), np.int64))
    idx = np.flatnonzero(finished)
    riders = bib[idx]
    credited = np.asarray(credited_s, float)[idx]
    if credited_range is None:
        c_lo, c_hi, c_known = credited, credited, np.ones(idx.size, bool)
    else:
        c_lo, c_hi, c_known = (np.asarray(x)[idx] for x in credited_range)
    f_min, f_max = np.asarray(finish[0], float)[idx], np.asarray(finish[1], float)[idx]
    at = []
    for kind, scale, who, pmin, pmax in points_at:
        pos = np.searchsorted(who, riders) if len(who) else np.zeros(riders.size, np.int64)
        pos = np.minimum(pos, max(len(who) - 1, 0))
        hit = (np.asarray(who)[pos] == riders) if len(who) else np.zeros(riders.size, bool)
        at.append((kind, scale, np.where(hit, np.asarray(pmin, float)[pos] if len(who) else np.nan, np.nan),
                   np.where(hit, np.asarray(pmax, float)[pos] if len(who) else np.nan, np.nan)))
    got = stage_points((f_min, f_max), at, stage_type)
    before_of = (lambda d, default: np.array([d.get(int(b), default) for b in riders.tolist()], float))
    s = standings or Standings()
    what = f"standings before from {s.source}" if standings is not None else "this stage alone (no standings before)"
    gc_lo = before_of(s.gc_s, 0.0) + c_lo - got["bonus"][1]
    gc_hi = before_of(s.upper("gc_s"), 0.0) + c_hi - got["bonus"][0]
    gc_known = c_known & (got["bonus"][0] == got["bonus"][1])
    bonus = [f"{what} + credited time " + (f"{a:.1f}..{b:.1f} s" if b - a > 1e-6 else f"{a:g} s")
             + (" (group undecided)" if not k else "") + " - bonus "
             + (f"{lo:g} s" if lo == hi else f"{lo:g}..{hi:g} s (undecided)")
             for a, b, k, lo, hi in zip(c_lo.tolist(), c_hi.tolist(), c_known.tolist(), got["bonus"][0].tolist(),
                                        got["bonus"][1].tolist())]
    rows = _rank_rows(stage_id, event_ms, "general", riders, gc_lo, gc_hi, True, bonus, teams,
                      tolerance=GC_TOLERANCE_S, known=gc_known)
    pts_lo = before_of(s.points, 0.0) + got["points"][0]
    pts_hi = before_of(s.upper("points"), 0.0) + got["points"][1]
    has = pts_hi > 0
    rows += _rank_rows(stage_id, event_ms, "points", riders[has], pts_lo[has], pts_hi[has], False,
                       f"{what} + finish and sprint points", teams)
    mtn_lo = before_of(s.mountains, 0.0) + got["mountains"][0]
    mtn_hi = before_of(s.upper("mountains"), 0.0) + got["mountains"][1]
    has = mtn_hi > 0
    rows += _rank_rows(stage_id, event_ms, "mountains", riders[has], mtn_lo[has], mtn_hi[has], False,
                       f"{what} + summit points", teams)
    if year is not None and birthdates:
        young = is_young([birthdates.get(int(b)) for b in riders.tolist()], year)
        rows += _rank_rows(stage_id, event_ms, "young", riders[young], gc_lo[young], gc_hi[young], True,
                           [f"born in {year - YOUNG_MAX_AGE} or later; {b}" for b, y in zip(bonus, young) if y], teams,
                           tolerance=GC_TOLERANCE_S, known=gc_known[young])
    if teams:
        team_of = np.array([teams.get(int(b), "") for b in riders.tolist()], object)
        stage_times = team_stage_times(team_of, c_lo, c_hi)
        names = sorted(stage_times if standings is None or not s.teams_s else set(stage_times) & set(s.teams_s))
        t_known = np.array([bool(c_known[team_of == n].all()) for n in names], bool)
        t_lo = np.array([s.teams_s.get(n, 0.0) + stage_times[n][0] for n in names], float)
        t_hi = np.array([s.teams_s.get(n, 0.0) + stage_times[n][1] for n in names], float)
        rows += _rank_rows(stage_id, event_ms, "teams", names, t_lo, t_hi, True,
                           f"{'team standings before + ' if s.teams_s else ''}three best credited times", None,
                           key_is_team=True, tolerance=GC_TOLERANCE_S, known=t_known)
    return rows


# ---------------------------------------------------------------------------------------------------------
# a stage: where its points are, and its classifications from its result and passages


def classified_points(checkpoints: list, stage_type: str, finish_km: float | None) -> list[tuple]:
    """[(kind, scale, km, name)] of the stage's intermediate sprints, categorised summits and bonus points,
    from the checkpoints (``types``: ``sprint``, ``bonus``; ``summits[*].code``). The finish is the result's,
    not a point here; in a time trial the points on the road go by times, not passages: not derived."""
    if stage_type in TIME_TRIAL_TYPES:
        return []
    end = np.inf if finish_km is None else float(finish_km) - 0.05
    out = []
    for cp in checkpoints:
        km, types, name = float(cp.get("km") or 0.0), set(cp.get("types") or ()), str(cp.get("place") or "")
        if km <= 0 or km >= end or "arrival" in types:
            continue
        if "sprint" in types:
            out.append(("sprint", SPRINT_POINTS, km, name))
        if "bonus" in types:
            out.append(("bonus", BONUS_POINT_S, km, name))
        for summit in cp.get("summits") or []:
            scale = MOUNTAIN_POINTS.get(str((summit or {}).get("code", "")).upper())
            if scale is not None:
                out.append(("mountains", scale, km, str((summit.get("summit") or {}).get("name") or name)))
    return out


def stage_classifications(stage_id: str, results: list[dict], points: list[tuple], passages: list[tuple],
                          stage_type: str, year: int | None, standings: Standings | None, teams: dict,
                          birthdates: dict) -> list[dict]:
    """Classification rows from the stage's result rows and, per point of :func:`classified_points`, the
    passage intervals ``(riders, lo, hi)`` (1-d, epoch s). Stamped with the result's last finish; none
    before anyone finished.

    The contenders at a point are the riders seen there and the stage's finishers (who passed it, when is
    not known for those not seen)."""
    done = [r for r in results if r.get("status") == "finished" and r.get("credited_time_behind_s") is not None]
    if not done:
        return []
    event_ms = max(int(r["event_time"]) for r in done)
    bib = np.array([r["bib"] for r in results], np.int64)
    status = [r.get("status") for r in results]
    credited = np.array([np.nan if r.get("credited_time_behind_s") is None else r["credited_time_behind_s"]
                         for r in results], float)
    finish = finish_places([r.get("position") for r in results],
                           *(([r.get("place_min") for r in results], [r.get("place_max") for r in results],
                              [r.get("order_decided") for r in results]) if any("place_min" in r for r in results)
                             else ()))
    finishers = np.unique(bib[(np.asarray(status, object) == "finished")])
    points_at = []
    for (kind, scale, _km, _name), (riders, lo, hi) in zip(points, passages):
        seen = np.asarray(riders, np.int64)[np.isfinite(lo)]
        contenders = np.union1d(finishers, seen)
        pmin, pmax = point_places(contenders, np.asarray(riders, np.int64), np.asarray(lo, float),
                                  np.asarray(hi, float))
        points_at.append((kind, scale, contenders, pmin, pmax))
    return classification_rows(stage_id, event_ms, stage_type, year, bib, status, credited, finish, points_at,
                               standings, teams, birthdates, credited_bounds(results, stage_type in TIME_TRIAL_TYPES))


class StageClassifier:
    """What a stage's classifications need, read once from the stage spec (:class:`peloton.match.stage.Stage`): its
    points on the road, the riders' teams and birth dates, the standings before it."""

    def __init__(self, stage):
        self.stage_id, self.stage_type, self.year = stage.stage_id, stage.stage_type, stage.year
        self.points = classified_points(stage.checkpoints, stage.stage_type, stage.length_km)
        self.at_km = np.array([p[2] for p in self.points], float)
        self.teams = {int(r["bib"]): r.get("team") or "" for r in stage.riders if isinstance(r, dict) and "bib" in r}
        self.birthdates = {int(r["bib"]): r.get("birthdate") or "" for r in stage.riders
                           if isinstance(r, dict) and "bib" in r and r.get("birthdate")}
        self.standings = None if stage.standings_before is None else Standings.from_dict(stage.standings_before)

    def rows(self, results: list[dict], passages: list[tuple]) -> list[dict]:
        """Classification rows from the result rows and the passages at :attr:`points` (``passage_intervals``
        columns split per point)."""
        return stage_classifications(self.stage_id, results, self.points, passages, self.stage_type, self.year,
                                     self.standings, {b: t for b, t in self.teams.items() if t}, self.birthdates)

    def rows_from_fixes(self, results: list[dict], bib, t, km, usable) -> list[dict]:
        """The hindsight replay's: passages from every fix of the stage."""
        keep = np.flatnonzero(usable & np.isfinite(km))
        riders, lo, hi = passage_intervals(bib[keep], t[keep], km[keep], self.at_km)
        return self.rows(results, [(riders, lo[:, p], hi[:, p]) for p in range(self.at_km.size)])
