"""The stage result: when each rider crossed the line, his place, and the time he is credited with.

Pure numpy over matched fixes, in three steps that the hindsight replay runs
once and the live engine runs as the race goes (:mod:`peloton.state.engine`):

* :func:`line_crossings`: each rider's crossing of the line, on the straight
  line through his fixes either side of it, or, when his tracker stops short
  of the line (trackers do), at his last speed;
* :func:`finale_stops`: riders who stopped in the last 3 km (a crash, a
  mechanical) and the group they were in just before;
* :func:`rank_results`: places, time behind the winner and the time credited
  under the UCI time rule (riders crossing in one group, with no gap of 1 s,
  3 s on flat stages, between consecutive wheels, get the time of the group's
  first rider; a rider who stopped in the last 3 km gets his group's time);
  riders not seen at the line are DNF with the km where they were last seen,
  or ``racing`` if they were still riding when the input ended (a recording
  that stops before the last riders reach the line: that is not known).
  Time trials: elapsed time from the start found in the track, ranked.

Every crossing is uncertain (:func:`crossing_uncertainty_s`): two riders
are ordered, and a rider given a ``position``, only where their crossing
intervals do not overlap; elsewhere a row carries the range of places it
may hold (:func:`place_ranges`) and says the order is not decided.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Crossings", "line_crossings", "finale_stops", "stop_runs", "rank_results", "stage_results",
           "same_time_gap_s", "crossing_uncertainty_s", "place_ranges", "split_bounds", "FINALE_KM", "RESULT_SETTLE_S",
           "FINISH_TOLERANCE_KM", "STILL_RACING_S"]

#: Trackers stop short of the line: a rider last seen riding this close to it has finished (at his last speed).
FINISH_TOLERANCE_KM = 0.6
#: A rider who stops this close to the line (crash, mechanical) gets the time of the group he was in.
FINALE_KM = 3.0
#: Live: a crossing is final this long after it (a tracker that stopped short is known to be silent by then).
RESULT_SETTLE_S = 60.0
#: His group at a stop: the one he was in this long before his first stationary fix (speeds are smoothed).
STOP_LOOKBACK_S = 12.0
#: A rider's last speed before the line: over his last this many intervals (within a minute).
SPEED_FIXES = 2
#: A rider who did not cross but was seen this close to the end of the input was still racing, not DNF.
STILL_RACING_S = 60.0
#: A crossing seen between fixes either side of the line: GPS noise and the straight line between them, in s ...
CROSSING_BASE_S = 0.5
#: ... plus this share of the time from his last fix short of the line to the crossing: his mean speed over that
#: stretch may differ from his last speed by this much (a sprint takes 55 km/h to 70; a rider who sits up slows).
#: Simulated finishes (benchmarks/finish.py, exact crossings): every crossing within 0.5 s + 0.2 x that time,
#: also extrapolated from 250 and 450 m short (their errors reach 0.14 x at most; no sprint is simulated).
SPEED_CHANGE_SHARE = 0.2
#: Stage type codes (``rest.stages``) on which the organiser applies the 3 s rule.
FLAT_STAGE_TYPES = ("PLN",)


def same_time_gap_s(stage_type: str) -> float:
    """The gap between consecutive wheels that splits a same-time group: 3 s on flat stages, else 1 s."""
    return 3.0 if stage_type in FLAT_STAGE_TYPES else 1.0


@dataclass
class Crossings:
    """One entry per rider who crossed the line (or, live, is about to: see :func:`line_crossings`)."""

    bib: np.ndarray
    last_fix_t: np.ndarray  # his last fix short of the line (epoch s)
    crossed_t: np.ndarray  # when he crossed it (epoch s)
    line_km: np.ndarray  # the line, in km from the start
    seen_at_line: np.ndarray  # bool: a fix of his at or past the line (else: at his last speed)
    short_km: np.ndarray  # how far short of the line his last fix was (0 when seen at the line)


def crossing_uncertainty_s(c: "Crossings") -> np.ndarray:
    """Half-width (s) of each crossing's interval: a fraction of a second between fixes either side of the line,
    growing with the time extrapolated at his last speed from his last fix short of it (riders accelerate in a
    sprint: 450 m at 55 km/h, 29 s of extrapolation, is +-6 s)."""
    return CROSSING_BASE_S + SPEED_CHANGE_SHARE * np.maximum(c.crossed_t - c.last_fix_t, 0.0)


def place_ranges(t: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) place of each of the times ``t`` +- ``u``: one place before every rider surely ahead (his
    interval ends before this one starts), up to the count of riders not surely behind. Equal: decided."""
    lo, hi = np.sort(t - u), np.sort(t + u)
    return 1 + np.searchsorted(hi, t - u, side="left"), np.searchsorted(lo, t + u, side="right")


def split_bounds(t: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each gap between consecutive times of sorted ``t`` (+- ``u``): the least and the most it may be, in s,
    between the riders ahead of it and those behind (least < 0: the order across it is not decided)."""
    ahead_late, ahead_early = np.maximum.accumulate(t + u), np.maximum.accumulate(t - u)
    behind_early = np.minimum.accumulate((t - u)[::-1])[::-1]
    behind_late = np.minimum.accumulate((t + u)[::-1])[::-1]
    return behind_early[1:] - ahead_late[:-1], behind_late[1:] - ahead_early[:-1]


def _heads(new_group: np.ndarray) -> np.ndarray:
    """Index of the first of each one's group, from the flags that start a group."""
    return np.maximum.accumulate(np.where(new_group, np.arange(new_group.size), 0))


def line_crossings(t: np.ndarray, km: np.ndarray, bib: np.ndarray, usable: np.ndarray, km_to_finish: np.ndarray,
                   speed_kph: np.ndarray, at_line_km: float,
                   tolerance_km: float = FINISH_TOLERANCE_KM) -> Crossings:
    """When each rider crossed the line, from his fixes (any order).

    A rider has crossed once a fix of his is at the line (within
    ``at_line_km``): on the straight line through that fix and his previous
    one, or at his last speed from that previous one if sooner. A rider whose
    last fix is short of the line by at most ``tolerance_km``, riding (over
    5 km/h), crossed at his last speed. His last speed is that of his last
    interval (within a minute), else the smoothed ``speed_kph``. Live,
    that last fix may just be his newest: the caller decides when silence
    makes it a finish (:data:`RESULT_SETTLE_S`).
    """
    # only riders with a fix at the line or within the tolerance of it can have crossed (the live engine asks
    # this of its whole history every window): the rest of the field costs a comparison
    riders = np.unique(bib[usable & (km_to_finish <= max(at_line_km, tolerance_km))])
    idx = np.flatnonzero(usable & np.isfinite(km_to_finish) & np.isin(bib, riders))
    idx = idx[np.lexsort((t[idx], bib[idx]))]
    b, tt, ktf, kk = bib[idx], t[idx], km_to_finish[idx], km[idx]
    new_rider = np.r_[True, b[1:] != b[:-1]] if b.size else np.zeros(0, bool)
    # his speed: over his last interval (the latest; a smoothed speed is unknown at the end of a track, and
    # past the line it mixes in the riders slowing down), else the smoothed one
    back = np.maximum(np.arange(b.size) - SPEED_FIXES, 0)  # over his last few fixes: GPS noise averages out
    same = (b[back] == b) & (np.arange(b.size) > back)
    back = np.where(same, back, np.arange(b.size))
    while True:  # not across a silence: step forward until the span is within a minute
        far = (tt - tt[back] > 60.0) & (back < np.arange(b.size))
        if not far.any():
            break
        back = np.where(far, back + 1, back)
    dt = tt - tt[back]
    with np.errstate(invalid="ignore", divide="ignore"):
        interval_kph = np.where(dt > 0, (ktf[back] - ktf) / dt * 3600, np.nan)
    smoothed = np.asarray(speed_kph, float)[idx]
    v = np.where(interval_kph > 5.0, interval_kph, np.where(smoothed > 5.0, smoothed, np.nan))
    at_line = ktf <= at_line_km
    # riders seen at the line: their first fix there and the one before it
    at = np.flatnonzero(at_line & ~(np.r_[False, at_line[:-1]] & ~new_rider))
    at = at[np.r_[True, b[at][1:] != b[at][:-1]]] if at.size else at
    prev = np.where(new_rider[at], at, at - 1)
    span = np.maximum(ktf[prev] - ktf[at], 1e-9)
    share = np.maximum(np.where(prev == at, 1.0, ktf[prev] / span), 0.0)  # > 1: that fix was just short of it
    cross_line = np.minimum(tt[prev] + (tt[at] - tt[prev]) * share, tt[at] + 10.0)
    # ... or at his speed from the fix before, if sooner: a rider who slowed down past the line (or whose
    # tracker came back there) makes the straight line late
    cross_at = np.fmin(cross_line, np.where(prev == at, np.nan, tt[prev] + ktf[prev] / v[prev] * 3600.0))
    # riders last seen riding just short of the line
    last = np.flatnonzero(np.r_[b[1:] != b[:-1], True]) if b.size else np.zeros(0, np.int64)
    short = last[~np.isin(b[last], b[at]) & (ktf[last] <= tolerance_km) & (v[last] > 5.0)]
    cross_short = tt[short] + ktf[short] / v[short] * 3600.0
    ref = np.r_[prev, short].astype(np.int64)
    return Crossings(b[ref], tt[ref], np.r_[cross_at, cross_short], kk[ref] + ktf[ref],
                     np.r_[np.ones(at.size, bool), np.zeros(short.size, bool)],
                     np.r_[np.zeros(at.size), ktf[short]])


def stop_runs(bib: np.ndarray, t: np.ndarray, speed_kph: np.ndarray, on_course: np.ndarray,
              stopped_kph: float, min_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(first fix, last fix) indices of every stop: slower than ``stopped_kph`` on the course for ``min_s``."""
    order = np.lexsort((t, bib))
    b, tt = bib[order], t[order]
    same_prev = np.r_[False, b[1:] == b[:-1]]
    slow = on_course[order] & (np.nan_to_num(speed_kph[order], nan=99.0) < stopped_kph)
    run_start = slow & ~(np.r_[False, slow[:-1]] & same_prev)
    run_end = slow & ~(np.r_[slow[1:], False] & np.r_[same_prev[1:], False])
    a, z = np.flatnonzero(run_start), np.flatnonzero(run_end)
    long_enough = tt[z] - tt[a] >= min_s
    return order[a[long_enough]], order[z[long_enough]]


def finale_stops(t: np.ndarray, bib: np.ndarray, km_to_finish: np.ndarray, speed_kph: np.ndarray,
                 on_course: np.ndarray, group_id: np.ndarray, stopped_kph: float, min_s: float,
                 finale_km: float = FINALE_KM) -> dict:
    """{bib: (stop time, bibs of the group he was in)} of riders who stopped in the last ``finale_km``.

    His group is the one he was in at his last fix ``STOP_LOOKBACK_S``
    before his first stationary one (the speeds are smoothed over tens of
    seconds: by then he had been slowing down, and left behind).
    """
    first, _last = stop_runs(bib, t, speed_kph, on_course, stopped_kph, min_s)
    out = {}
    for i in first[(km_to_finish[first] <= finale_km) & (km_to_finish[first] > 0)].tolist():
        rider = int(bib[i])
        if rider in out:
            continue
        before = np.flatnonzero((bib == rider) & (t <= t[i] - STOP_LOOKBACK_S) & (group_id >= 0))
        if before.size == 0:
            out[rider] = (float(t[i]), np.zeros(0, np.int64))
            continue
        j = before[np.argmax(t[before])]
        mates = bib[(t == t[j]) & (group_id == group_id[j]) & (bib != rider)]
        out[rider] = (float(t[i]), np.unique(mates))
    return out


def rank_results(stage_id: str, crossings: Crossings, gap_s: float, stops: dict | None = None,
                 last_seen: dict | None = None, starts: dict | None = None, ranked: set | None = None,
                 uncertainty_s: np.ndarray | None = None) -> list[dict]:
    """Result rows: the riders of ``crossings`` ranked, and a DNF row for every rider of ``last_seen``
    ({bib: (t, km)}) who did not cross (``racing`` if he was seen in the input's last ``STILL_RACING_S``).

    Road stages: place by crossing, where the crossings' intervals decide it
    (:func:`crossing_uncertainty_s`; else ``position`` is null and the row
    has the range of places it may hold); a same-time group runs until
    consecutive crossings are ``gap_s`` apart with the order across the gap
    decided, and its riders are credited with the time behind of its first
    rider; a rider of ``stops`` gets the credited time of the first of his
    group to cross. Time trials (``starts`` given, {bib: start epoch s}):
    place by elapsed time, decided alike; riders without a start, or not in
    ``ranked`` (trackers that teleport), are not ranked.

    The credited time is decided only where his group is: the range
    ``credited_time_min_s``..``credited_time_max_s`` splits the riders only
    at the gaps surely ``gap_s`` or more (every crossing at its interval's
    worst) up to every gap that may be (:func:`credited_ranges`).
    ``uncertainty_s``: each crossing's half-width, in ``crossings``' order
    (default :func:`crossing_uncertainty_s`; zeros for exact crossings, a
    simulator's truth).
    """
    rows = []
    order = np.argsort(crossings.crossed_t, kind="stable")
    bib, crossed = crossings.bib[order], crossings.crossed_t[order]
    seen, short = crossings.seen_at_line[order], crossings.short_km[order]
    u = (crossing_uncertainty_s(crossings) if uncertainty_s is None else np.asarray(uncertainty_s, float))[order]
    how = np.where(seen, "crossed the line", "")
    details = [h if s else f"tracker stopped {k * 1000:.0f} m short of the line: at his last speed"
               for h, s, k in zip(how.tolist(), seen.tolist(), short.tolist())]
    if starts is not None:
        rows += _time_trial_rows(stage_id, bib, crossed, u, details, starts, ranked)
    elif bib.size:
        behind = crossed - crossed[0]
        low, high = place_ranges(crossed, u)
        sure, may = split_bounds(crossed, u)
        # a gap splits a same-time group only where the data decides the order across it
        new_group = np.r_[True, (np.diff(crossed) >= gap_s) & (sure > 0)]
        head = _heads(new_group)
        credited, group_pos = behind[head], head + 1
        # ... and his credited time is decided only where every gap ahead of him to his group's head surely is
        # less than gap_s, and the gap before that head surely is gap_s or more
        credited_min = behind[_heads(np.r_[True, sure >= gap_s])]
        credited_max = behind[_heads(np.r_[True, may >= gap_s])]
        place = {int(b): i for i, b in enumerate(bib.tolist())}
        for rider, (_t, mates) in (stops or {}).items():
            i = place.get(rider)
            ahead = [place[int(m)] for m in mates if int(m) in place]
            if i is None or not ahead:
                continue
            k = min(ahead)
            if k < i:
                credited[i], group_pos[i] = credited[k], group_pos[k]
                credited_min[i], credited_max[i] = credited_min[k], credited_max[k]
                details[i] = f"stopped in the last {FINALE_KM:g} km: the time of his group"
        for i, rider in enumerate(bib.tolist()):
            rows.append(_row(stage_id, crossed[i], rider, "finished", None, crossed[i], None, behind[i],
                             credited[i], int(group_pos[i]), None, details[i], u[i], low[i], high[i],
                             (credited_min[i], credited_max[i])))
    done = set(bib.tolist())
    end_t = max([t for t, _ in (last_seen or {}).values()] + crossed.tolist(), default=-np.inf)
    for rider, (t_last, km_last) in sorted((last_seen or {}).items()):
        if rider in done:
            continue
        if end_t - t_last < STILL_RACING_S:
            status, detail = "racing", f"still racing when the input ended: last seen at km {km_last:.1f}"
        else:
            status, detail = "DNF", f"not seen at the line: last seen at km {km_last:.1f}"
        rows.append(_row(stage_id, t_last, rider, status, None, None, None, None, None, None,
                         round(float(km_last), 3), detail))
    return rows


def _time_trial_rows(stage_id, bib, crossed, u, details, starts, ranked):
    start = np.array([starts.get(int(b), np.nan) for b in bib.tolist()])
    elapsed = crossed - start
    ok = np.isfinite(elapsed) & np.array([ranked is None or int(b) in ranked for b in bib.tolist()], bool)
    order = np.flatnonzero(ok)[np.argsort(elapsed[ok], kind="stable")]
    place = np.full(bib.size, -1)
    place[order] = np.arange(1, order.size + 1)
    low, high = np.zeros(bib.size, np.int64), np.zeros(bib.size, np.int64)
    low[ok], high[ok] = place_ranges(elapsed[ok], u[ok])  # the start is on the grid: the crossing's uncertainty
    best = elapsed[order[0]] if order.size else np.nan
    rows = []
    for i, rider in enumerate(bib.tolist()):
        if ok[i]:
            rows.append(_row(stage_id, crossed[i], rider, "finished", None, crossed[i], elapsed[i],
                             elapsed[i] - best, elapsed[i] - best, int(place[i]), None, details[i], u[i],
                             low[i], high[i]))
        else:
            why = "start not in the data" if not np.isfinite(elapsed[i]) else "track not plausible: not ranked"
            rows.append(_row(stage_id, crossed[i], rider, "finished", None, crossed[i], None, None, None, None,
                             None, f"{details[i]}; {why}"))
    return rows


def _num(x, nd=3):
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _row(stage_id, event_t, bib, status, position, finish_t, elapsed, behind, credited, group_pos, last_km, detail,
         uncertainty=None, low=None, high=None, credited_range=None):
    """A provisional row; ``low``/``high``: the places he may hold. ``position`` only where they agree.
    ``credited_range``: (least, most) credited time he may have (default: the credited time, decided)."""
    decided = low is not None and int(low) == int(high)
    if decided:
        position = int(low)
    elif low is not None:
        detail = f"{detail}; order not decided: places {int(low)}-{int(high)}"
    c_min, c_max = credited_range if credited_range is not None else (credited, credited)
    credited_decided = credited is not None and _num(c_min) == _num(c_max)
    if credited is not None and not credited_decided:
        detail = f"{detail}; credited time not decided: {_num(c_min, 1):g}-{_num(c_max, 1):g} s"
    return {"stage_id": stage_id, "event_time": int(round(float(event_t) * 1000)), "bib": int(bib),
            "status": status, "position": position,
            "finish_time": None if finish_t is None else int(round(float(finish_t) * 1000)),
            "finish_uncertainty_s": None if uncertainty is None else _num(uncertainty),
            "elapsed_s": _num(elapsed), "time_behind_winner_s": _num(behind),
            "credited_time_behind_s": _num(credited), "credited_time_min_s": _num(c_min),
            "credited_time_max_s": _num(c_max), "credited_time_decided": credited_decided, "same_time_group": group_pos,
            "place_min": None if low is None else int(low), "place_max": None if high is None else int(high),
            "order_decided": decided, "last_km": last_km, "detail": detail, "source": "provisional"}


def last_seen(t: np.ndarray, km: np.ndarray, bib: np.ndarray, racing: np.ndarray) -> dict:
    """{bib: (t, km)} of each rider's last fix while racing."""
    idx = np.flatnonzero(racing)
    idx = idx[np.lexsort((t[idx], bib[idx]))]
    last = idx[np.r_[bib[idx][1:] != bib[idx][:-1], True]] if idx.size else idx
    return {int(bib[i]): (float(t[i]), float(km[i])) for i in last.tolist()}


def stage_results(stage_id: str, t: np.ndarray, km: np.ndarray, bib: np.ndarray, usable: np.ndarray,
                  km_to_finish: np.ndarray, speed_kph: np.ndarray, on_course: np.ndarray, group_id: np.ndarray,
                  *, at_line_km: float, stopped_kph: float, stopped_min_s: float, gap_s: float = 1.0,
                  starts: dict | None = None, ranked: set | None = None) -> list[dict]:
    """The whole stage's result from all its fixes (the hindsight replay): every rider seen racing has a row."""
    crossings = line_crossings(t, km, bib, usable, km_to_finish, speed_kph, at_line_km)
    stops = None if starts is not None else finale_stops(t, bib, km_to_finish, speed_kph, on_course, group_id,
                                                         stopped_kph, stopped_min_s)
    racing = usable & (km_to_finish > at_line_km) & (km >= 0)
    return rank_results(stage_id, crossings, gap_s, stops, last_seen(t, km, bib, racing), starts, ranked)
