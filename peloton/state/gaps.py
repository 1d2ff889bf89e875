"""Time gaps by time-at-position: when did the rider ahead pass the point where I am now.

This is what a race's official gap means (``secToFirstRider``): not distance
divided by speed, but the difference of passage times at the same place. All
functions take matched fixes as parallel arrays (any order) and return one
value per fix, in seconds.

Trajectories are sampled at feed ticks (6 s, with 36 s holes every minute in
the recordings), so a passage time between two fixes must be interpolated.
With a :class:`RoadClock` (the typical time to ride each 10 m of the course,
learnt from every rider's short intervals) the time between two fixes is
shared out in proportion to how long the road there usually takes: a leader
braking into a hairpin 20 s after his last fix is not assumed to have held
his average speed. Without one, a monotone cubic (Fritsch-Carlson PCHIP) of
distance over time does the interpolation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peloton.match.passage import MAX_BRACKET_ON_CLOCK_S, MAX_BRACKET_S, furthest_reach, passage_times
from peloton.state.results import FINISH_TOLERANCE_KM, line_crossings

__all__ = ["RoadClock", "Trajectory", "leader_per_tick", "gap_to_leader_s", "gap_to_rider_ahead_s", "pchip_slopes",
           "FirstFinisher", "first_finisher", "head_of_race"]

#: A leader whose tracker falls silent stays the reference for this long (s):
#: a short dropout must not make everyone's gap collapse to the next rider
#: (the official feed holds a leader who left it for about one tick).
LEADER_HOLD_S = 12.0
#: ... and a leader silent mid-race (short of the line) for up to this long: trackers drop out for minutes.
SILENT_HOLD_S = 180.0
#: Not in the finale: trackers there fall silent because riders finished (some stop a kilometre out).
SILENT_HOLD_MIN_KM_TO_GO = 3.0
#: Samples per interval of the dense monotone trajectory.
_DENSE = 16


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson slopes: a cubic through (x, y) that stays monotone where y is."""
    m = np.zeros_like(y, dtype=float)
    if x.size < 2:
        return m
    h = np.diff(x)
    delta = np.diff(y) / h
    m[0], m[-1] = delta[0], delta[-1]
    if x.size > 2:
        w1 = 2 * h[1:] + h[:-1]
        w2 = h[1:] + 2 * h[:-1]
        same_sign = delta[:-1] * delta[1:] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
        m[1:-1] = np.where(same_sign, harmonic, 0.0)
    return m


class RoadClock:
    """Cumulative typical riding time along the course (s), from all riders' short intervals.

    Only the shape matters: a rider's own fixes fix the clock's offset and
    rate between them. Each 10 m cell gets the geometric mean pace of the
    intervals (at most ``max_dt_s`` long) that cover it, so a few stopped
    riders do not dominate; cells nobody covered get the stage's median pace.
    """

    def __init__(self, t: np.ndarray, km: np.ndarray, bib: np.ndarray, usable: np.ndarray,
                 step_km: float = 0.01, max_dt_s: float = 7.0):
        first, second, log_pace = road_intervals(t, km, bib, usable, max_dt_s)
        lo_km = np.nanmin(km[usable]) if usable.any() else 0.0
        hi_km = np.nanmax(km[usable]) if usable.any() else 1.0
        origin, n_cells = clock_cells(lo_km, hi_km, step_km)
        a, b = km[first] / step_km - origin, km[second] / step_km - origin  # in cells
        total, covered = cell_sums(a, b, log_pace, 0, n_cells)
        self._set_cells(origin, total, covered, np.median(log_pace) if log_pace.size else np.log(100.0), step_km)

    @classmethod
    def of_cells(cls, origin: int, total: np.ndarray, covered: np.ndarray, typical: float,
                 step_km: float = 0.01) -> "RoadClock":
        """The clock of these cells' sums (:func:`cell_sums`, from cell ``origin`` on), as one built from the fixes
        whose intervals gave them: the live engine keeps the sums up to date window by window."""
        clock = cls.__new__(cls)
        clock._set_cells(origin, total, covered, typical, step_km)
        return clock

    def _set_cells(self, origin, total, covered, typical, step_km):
        """Each cell's pace: the geometric mean of the intervals' over it, else ``typical`` (a log pace)."""
        pace = np.exp(np.where(covered > 1e-9, total / np.maximum(covered, 1e-9), typical))
        self.km = (origin + np.arange(total.size + 1)) * step_km
        self.s = np.r_[0.0, np.cumsum(pace * step_km)]

    def __call__(self, km: np.ndarray) -> np.ndarray:
        return np.interp(km, self.km, self.s)


def road_intervals(t: np.ndarray, km: np.ndarray, bib: np.ndarray, usable: np.ndarray,
                   max_dt_s: float = 7.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The intervals the road clock learns from, in (bib, t) order: (index of the first fix, of the second, log of
    the pace in s per km). Consecutive usable fixes of a rider at most ``max_dt_s`` apart, moving on."""
    order = np.lexsort((t, bib))
    t, km, bib, usable = t[order], km[order], bib[order], usable[order]
    dt, dkm = np.diff(t), np.diff(km)
    ok = (bib[1:] == bib[:-1]) & usable[1:] & usable[:-1] & (dt <= max_dt_s) & (dkm > 0.001)
    at = np.flatnonzero(ok)
    return order[at], order[at + 1], np.log(dt[ok] / dkm[ok])


def clock_cells(lo_km: float, hi_km: float, step_km: float = 0.01) -> tuple[int, int]:
    """(first cell, number of cells) of a road clock over fixes from ``lo_km`` to ``hi_km``."""
    origin = np.floor(lo_km / step_km) - 1
    return origin, int(np.ceil(hi_km / step_km) - origin) + 2


def cell_sums(a: np.ndarray, b: np.ndarray, log_pace: np.ndarray, first_cell: int,
              n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Over cells ``first_cell`` .. ``first_cell + n_cells - 1``: (sum of log pace x length covered, length covered)
    of the intervals [a, b] (in cells). Each interval weighs on a cell by the length of the cell it covers (1 but
    at its two ends); a cell's sums are added up in the intervals' order."""
    cells, overlap, count, ends = _cells_covered(a, b)
    weight = np.repeat(log_pace, count)
    for at in ends:
        weight[at] = log_pace * overlap[at]
    cells = cells - first_cell
    return (np.bincount(cells, weights=weight, minlength=n_cells),
            np.bincount(cells, weights=overlap, minlength=n_cells))


def _cells_covered(a: np.ndarray, b: np.ndarray):
    """The unit cells each interval [a, b] covers, interval after interval: (cell, length covered, cells per
    interval, (position of each interval's first cell, of its last)).

    Inner cells are covered whole (exactly 1.0): only the two ends are computed, and the cells are a running
    sum, not repeated ranges (the road clock does this over 45 minutes of fixes every live window).
    """
    first = np.floor(a).astype(np.int64)
    count = np.floor(b).astype(np.int64) - first + 1
    last_pos = np.cumsum(count) - 1
    first_pos = last_pos - count + 1
    step = np.ones(int(count.sum()), dtype=np.int64)
    if first.size:
        step[first_pos] = np.concatenate([first[:1], first[1:] - (first[:-1] + count[:-1] - 1)])
    cells = np.cumsum(step)
    overlap = np.ones(cells.size)
    for at in (first_pos, last_pos):
        overlap[at] = np.minimum(b, cells[at] + 1) - np.maximum(a, cells[at])
    return cells, overlap, count, (first_pos, last_pos)


class Trajectory:
    """One rider's distance over time, made monotone, answering passage times.

    When he passed a km, and whether that is known, is the rule of
    :func:`peloton.match.passage.passage_times` (the fixes around the point, no
    time across a long silence); inside that bracket the time is read off
    the road clock, or a monotone cubic of the fixes. With the tracker's own speeds
    (``sensor_kph``) the cubic's slopes at the fixes are those speeds, and
    with a clock too the two readings are averaged: across the recordings'
    36 s holes the clock knows the road and the speeds know the rider, and
    their mean predicts left-out fixes and the official gaps better than
    either alone (benchmarks/HISTORY.md, "Time gaps").
    """

    def __init__(self, t: np.ndarray, km: np.ndarray, clock: RoadClock | None = None,
                 sensor_kph: np.ndarray | None = None):
        order = np.argsort(t, kind="stable")
        t = np.asarray(t, float)[order]
        km, first = furthest_reach(np.asarray(km, float)[order])
        self.track_t, self.reach = t, km  # the rule's brackets
        self.clock = clock
        ends = np.union1d(first, first[1:] - 1)  # the fixes that end a bracket: the first past a km, the last short
        fix_km, fix_t = km[ends], t[ends]
        if clock is not None:  # interpolation in road-clock space: keep the fixes themselves
            self.km, self.t = fix_km, fix_t
            self.road = clock(self.km)
        else:
            self.km, self.t = _dense_monotone(t, km, pchip_slopes(t, km) if t.size >= 2 else np.zeros(t.size))
        self.by_speed = None
        if sensor_kph is not None and fix_t.size >= 2:
            kmps = np.asarray(sensor_kph, float)[order][ends] / 3600.0
            slopes = np.where(np.isfinite(kmps) & (kmps >= 0), kmps, pchip_slopes(fix_t, fix_km))
            self.by_speed = _dense_monotone(fix_t, fix_km, slopes)

    def passage_time(self, km: np.ndarray) -> np.ndarray:
        """Epoch seconds at which the rider passed ``km`` (:func:`peloton.match.passage.passage_times`: nan across a
        long silence, before his first fix, and more than a few metres past his last; on the road clock a
        silence of up to 3 minutes is read through)."""
        bracket_s = MAX_BRACKET_ON_CLOCK_S if self.clock is not None else MAX_BRACKET_S
        return passage_times(self.track_t, self.reach, km, bracket_s, shape=self._between_fixes)

    def _between_fixes(self, km: np.ndarray) -> np.ndarray:
        """The road clock's and the tracker speeds' reading of the time at ``km`` (the curve through his fixes)."""
        by_speed = None if self.by_speed is None else np.interp(km, *self.by_speed)
        if self.clock is not None and self.km.size >= 2:
            out = np.interp(self.clock(km), self.road, self.t)
            return out if by_speed is None else 0.5 * (out + by_speed)
        return np.interp(km, self.km, self.t) if by_speed is None else by_speed


def _dense_monotone(t: np.ndarray, km: np.ndarray, slopes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(km, t) samples of the cubic Hermite through the fixes with these slopes (km/s), kept monotone.

    Slopes are clamped to [0, 3 x the interval's mean speed] at both ends of
    every interval (Fritsch-Carlson's sufficient condition for a monotone cubic).
    """
    if t.size < 2:
        return km[:1], t[:1]
    h = np.diff(t)
    mean = np.diff(km) / h
    m0 = np.clip(slopes[:-1], 0.0, 3 * mean)[:, None]
    m1 = np.clip(slopes[1:], 0.0, 3 * mean)[:, None]
    tau = np.linspace(0.0, 1.0, _DENSE, endpoint=False)
    hh = h[:, None]
    h00, h10 = 2 * tau**3 - 3 * tau**2 + 1, tau**3 - 2 * tau**2 + tau
    h01, h11 = -2 * tau**3 + 3 * tau**2, tau**3 - tau**2
    dense = h00 * km[:-1, None] + h10 * hh * m0 + h01 * km[1:, None] + h11 * hh * m1
    dense_t = np.r_[(t[:-1, None] + tau * hh).ravel(), t[-1]]
    dense_km = np.maximum.accumulate(np.r_[dense.ravel(), km[-1]])
    last = np.r_[dense_km[1:] != dense_km[:-1], True]  # the last time at each km: where he rode on from a stop
    return dense_km[last], dense_t[last]


def leader_per_tick(t: np.ndarray, km: np.ndarray, bib: np.ndarray, usable: np.ndarray,
                    hold_s: float = LEADER_HOLD_S, km_to_finish: np.ndarray | None = None,
                    speed_kph: np.ndarray | None = None,
                    silent_hold_s: float = SILENT_HOLD_S,
                    after: tuple[float, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tick times, bib of the first rider on the road at each tick).

    The first rider is the one furthest along among fixes of the last
    ``hold_s`` seconds (range maxima over ticks with a sparse table). With
    ``km_to_finish`` and ``speed_kph``, a leader whose tracker falls silent
    stays the reference for up to ``silent_hold_s`` while, ridden on at his
    last speed, he would still be short of the line and ahead of everyone
    seen, unless he fell silent in the last 3 km: a breakaway out of coverage for a minute is still ahead, a leader
    whose tracker stopped at the line has finished. That check walks the
    ticks (not the fixes).

    ``after`` = (tick, its leader), as an earlier call gave them: only the
    ticks after it are walked and returned, going on from that leader; the
    fixes of the last ``max(hold_s, silent_hold_s)`` before the first of
    them are all the earlier ones needed (the live engine's newest window).
    """
    if after is None:
        ticks, inv = np.unique(t, return_inverse=True)
        best_km, best_bib = _windowed_furthest(ticks, inv, km, bib, usable, hold_s)
    else:  # the ticks after it: the furthest of their last hold_s, so the fixes from hold_s before it on
        recent = np.flatnonzero(t >= after[0] - hold_s)
        ticks, inv = np.unique(t[recent], return_inverse=True)
        best_km, best_bib = _windowed_furthest(ticks, inv, km[recent], bib[recent], usable[recent], hold_s)
        first = int(np.searchsorted(ticks, after[0], side="right"))
        ticks, best_km, best_bib = ticks[first:], best_km[first:], best_bib[first:]
    if km_to_finish is None or speed_kph is None or ticks.size == 0:
        return ticks, best_bib
    leaders = best_bib.copy()
    current = -1 if after is None else int(after[1])
    tracks = None  # each rider's usable fixes in time order: looked at only when the furthest is not the leader
    for i, tick in enumerate(ticks.tolist()):
        if current != best_bib[i]:
            tracks = tracks or _usable_tracks(t, bib, usable, speed_kph)
            idx, bounds, mps = tracks
            if current in bounds:  # (a carried leader unseen for the lookback: not held)
                a, b = bounds[current]
                j = a + int(np.searchsorted(t[idx[a:b]], tick, side="right")) - 1
                if j >= a:
                    silent = tick - t[idx[j]]
                    ridden_km = mps[j] * silent / 1000.0
                    if (silent <= silent_hold_s and km_to_finish[idx[j]] > SILENT_HOLD_MIN_KM_TO_GO
                            and km_to_finish[idx[j]] - ridden_km > 0 and km[idx[j]] + ridden_km >= best_km[i]):
                        leaders[i] = current
                        continue
        current = int(best_bib[i])
    return ticks, leaders


def _usable_tracks(t, bib, usable, speed_kph):
    """(usable fixes by rider then time, each rider's (first, end) in them, their speeds in m/s)."""
    idx = np.flatnonzero(usable)
    idx = idx[np.lexsort((t[idx], bib[idx]))]
    riders, first = np.unique(bib[idx], return_index=True)
    bounds = dict(zip(riders.tolist(), zip(first.tolist(), np.r_[first[1:], idx.size].tolist())))
    return idx, bounds, np.nan_to_num(speed_kph[idx], nan=0.0).clip(0.0, None) / 3.6


def _windowed_furthest(ticks, inv, km, bib, mask, hold_s):
    """Per tick: the largest km (and its bib) among ``mask`` fixes of the last ``hold_s`` seconds."""
    n = ticks.size
    best_km = np.full(n, -np.inf)
    best_bib = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    if idx.size:
        order = idx[np.lexsort((-km[idx], inv[idx]))]
        first = np.r_[True, inv[order][1:] != inv[order][:-1]]
        best_km[inv[order][first]] = km[order][first]
        best_bib[inv[order][first]] = bib[order][first]
    lo = np.searchsorted(ticks, ticks - hold_s, side="left")
    # sparse table of argmax over ranges [i, i + 2^k)
    levels = [np.arange(n)]
    span = 1
    while 2 * span <= n:
        prev = levels[-1]
        a, b = prev[: n - span], prev[span:]
        nxt = np.where(best_km[b] > best_km[a], b, a)
        levels.append(np.r_[nxt, prev[n - span:]])
        span *= 2
    length = np.arange(n) - lo + 1
    k = np.floor(np.log2(length)).astype(int)
    table = np.stack([np.r_[lv, np.zeros(n - lv.size, dtype=lv.dtype)] for lv in levels])
    left = table[k, lo]
    right = table[k, np.arange(n) - (1 << k) + 1]
    winner = np.where(best_km[right] > best_km[left], right, left)
    return best_km[winner], best_bib[winner]


@dataclass(frozen=True)
class FirstFinisher:
    """The head of the race at the line: he stays everyone's reference once he has finished."""

    bib: int
    last_fix_t: float  # his last fix short of the line (epoch s)
    crossed_t: float  # when he crossed the line (epoch s)
    line_km: float  # the line, in km from the start


def first_finisher(t: np.ndarray, km: np.ndarray, bib: np.ndarray, usable: np.ndarray, km_to_finish: np.ndarray,
                   speed_kph: np.ndarray, at_line_km: float,
                   tolerance_km: float = FINISH_TOLERANCE_KM) -> FirstFinisher | None:
    """The rider who crossed the line first among these fixes (:func:`peloton.state.results.line_crossings`), or None.

    Live, the newest fix of a rider riding into the last ``tolerance_km``
    makes him a candidate with a crossing still to come; the earliest
    crossing wins, as with hindsight.
    """
    c = line_crossings(t, km, bib, usable, km_to_finish, speed_kph, at_line_km, tolerance_km)
    if c.bib.size == 0:
        return None
    k = int(np.argmin(c.crossed_t))
    return FirstFinisher(int(c.bib[k]), float(c.last_fix_t[k]), float(c.crossed_t[k]), float(c.line_km[k]))


def head_of_race(ticks: np.ndarray, leaders: np.ndarray, first: FirstFinisher) -> np.ndarray:
    """The reference rider per tick: the leader on the road (``leaders``, from :func:`leader_per_tick`), and once
    the first finisher has crossed the line, him (from his last fix short of it if he led there)."""
    led_there = leaders[min(np.searchsorted(ticks, first.last_fix_t), ticks.size - 1)] == first.bib
    return np.where(ticks >= (first.last_fix_t if led_there else first.crossed_t), first.bib, leaders)


def gap_to_leader_s(t: np.ndarray, km: np.ndarray, bib: np.ndarray, usable: np.ndarray,
                    hold_s: float = LEADER_HOLD_S, can_lead: np.ndarray | None = None,
                    km_to_finish: np.ndarray | None = None,
                    speed_kph: np.ndarray | None = None,
                    only: np.ndarray | None = None,
                    sensor_kph: np.ndarray | None = None,
                    at_line_km: float | None = None,
                    leaders: tuple[np.ndarray, np.ndarray] | None = None,
                    clock: RoadClock | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seconds since the first rider on the road passed each fix's position.

    Returns (gap, leader bib per fix). Only ``usable`` fixes shape the
    trajectories; only ``can_lead`` ones (default: the usable ones; pass the
    fixes short of the line, since a rider who finished is no longer on the
    road) choose the leader, held through silences as
    :func:`leader_per_tick` says. Every fix gets a gap, or with ``only``
    (a mask) just those fixes (and a leader: the others' is -1): the live engine wants the newest window's.
    ``sensor_kph`` (the trackers' own speeds) sharpens the leaders'
    trajectories between fixes (:class:`Trajectory`). ``leaders`` = (ticks, bibs) as :func:`leader_per_tick`
    gives them, when the caller has them (the live engine carries them from window to window): fixes at ticks
    not among them get no leader and no gap. ``clock``: the :class:`RoadClock` of these fixes, when the caller has
    it (the live engine keeps it up to date window by window), else built here.

    With ``at_line_km`` (and ``km_to_finish``, ``speed_kph``), the head of
    the race stays the reference after he has finished: from his crossing
    (from his last fix short of the line if he led there) every rider is
    measured against the first rider to finish (:func:`first_finisher`), whose
    trajectory ends at the line, and fixes at the line (finished riders) have
    no gap: they are no longer racing.
    """
    gap = np.full(t.size, np.nan)
    leader = np.full(t.size, -1, dtype=np.int64)
    if t.size == 0:
        return gap, leader
    if leaders is None:
        leading = usable if can_lead is None else usable & can_lead
        ticks, lead_bib = leader_per_tick(t, km, bib, leading, hold_s, km_to_finish, speed_kph)
    else:
        ticks, lead_bib = leaders
    first = None
    if at_line_km is not None and km_to_finish is not None and speed_kph is not None:
        first = first_finisher(t, km, bib, usable, km_to_finish, speed_kph, at_line_km)
    if first is not None and ticks.size:
        lead_bib = head_of_race(ticks, lead_bib, first)
    wanted = slice(None) if only is None else np.flatnonzero(only)  # the fixes given a leader and a gap
    if ticks.size:
        pos = np.minimum(np.searchsorted(ticks, t[wanted]), ticks.size - 1)
        leader[wanted] = np.where(ticks[pos] == t[wanted], lead_bib[pos], -1)
    clock = RoadClock(t, km, bib, usable) if clock is None else clock
    for lead in np.unique(leader[wanted][leader[wanted] >= 0]):  # a handful per stage, one or two per live window
        mine = (bib == lead) & usable
        lead_t, lead_km = t[mine], km[mine]
        lead_kph = None if sensor_kph is None else sensor_kph[mine]
        if first is not None and lead == first.bib:  # his trajectory ends at the line, when he crossed it
            before = lead_t < first.crossed_t
            lead_t, lead_km = np.r_[lead_t[before], first.crossed_t], np.r_[lead_km[before], first.line_km]
            lead_kph = None if lead_kph is None else np.r_[lead_kph[before], np.nan]
        traj = Trajectory(lead_t, lead_km, clock, lead_kph)
        sel = leader == lead
        gap[sel] = t[sel] - traj.passage_time(km[sel])
    if first is not None:
        gap[km_to_finish <= at_line_km] = np.nan
    return np.where(gap < 0, 0.0, gap), leader


def gap_to_rider_ahead_s(gap_leader: np.ndarray, ahead_idx: np.ndarray) -> np.ndarray:
    """Gap to a given fix ahead at the same tick (index, -1 for none): difference of gaps to the leader.

    Both are passage times of the same reference, so the difference is the
    time between the two positions at the speed the road was ridden there.
    """
    out = np.full(gap_leader.size, np.nan)
    ok = ahead_idx >= 0
    out[ok] = gap_leader[ok] - gap_leader[ahead_idx[ok]]
    return np.maximum(out, 0.0)
