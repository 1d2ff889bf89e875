"""Map-matching: where on the course is every fix, using each rider's history.

The matcher is a hidden Markov model solved by Viterbi (Newson & Krumm, 2009):

* states: the distinct passes of the course near a fix (:meth:`Course.candidates`);
* emission: Gaussian in the distance from the polyline;
* transition: progress along the course between two fixes should equal the
  great-circle distance ridden, and never exceed what a bike can do.

On a finishing circuit the same street is km 60 and km 67: only the rider's
history tells which. The Viterbi loop runs over the *step index* of each
rider's track and is vectorised across riders, so its Python iterations scale
with the length of one track, not with the number of fixes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peloton.ingest.feed import FixBatch
from peloton.match.course import Candidates, Course
from peloton.match.geo import haversine_m
from peloton.match.quality import Quality

__all__ = ["MatchParams", "Matched", "dedupe", "deduped_rows", "same_position", "MAX_POSITIONS_PER_FIX", "conflicting_fixes",
           "inconsistent_fixes", "unreachable_passes", "viterbi", "match_fixes", "smoothed_speed_kph"]


@dataclass(frozen=True)
class MatchParams:
    radius_m: float = 500.0  # beyond this from every pass of the course: off course
    max_candidates: int = 32  # a Paris finale passes the same street 18 times (9 laps, both ways)
    gps_sigma_m: float = 25.0  # the polyline is simplified: corners are cut by tens of metres
    progress_beta_m: float = 10.0  # tolerance on |progress - distance ridden| ...
    progress_beta_frac: float = 0.15  # ... growing with the distance ridden (winding roads)
    max_speed_mps: float = 40.0  # 144 km/h: faster is not a bike
    overspeed_penalty: float = 100.0
    speed_half_window_s: float = 15.0  # speed is smoothed over +-15 s of matched track
    pace_half_window_s: float = 90.0  # a rider's pace for the second matching pass
    off_route_m: float = 50.0  # quality flag threshold
    gps_slack_m: float = 250.0  # a fix may be this much further than max speed allows (GPS noise, both ends)
    chain_lookback: int = 20  # a fix may link back over this many rejected ones (2 minutes of 6 s ticks)


@dataclass
class Matched:
    """Matched fixes, sorted by (bib, t), as parallel arrays."""

    fixes: FixBatch
    s: np.ndarray  # polyline metres
    off_m: np.ndarray
    km: np.ndarray  # official km from km 0
    km_to_finish: np.ndarray
    altitude_m: np.ndarray | None
    gradient_pct: np.ndarray | None
    speed_kph: np.ndarray
    quality: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.fixes)

    def take(self, idx) -> "Matched":
        pick = lambda a: None if a is None else a[idx]
        return Matched(self.fixes.take(idx), self.s[idx], self.off_m[idx], self.km[idx], self.km_to_finish[idx],
                       pick(self.altitude_m), pick(self.gradient_pct), self.speed_kph[idx], self.quality[idx])


#: Two positions of one (bib, time) this close (degrees, ~1 cm) are one fix sent twice; farther apart, a conflict.
SAME_POSITION_DEG = 1e-7
#: Positions of one (bib, time) told apart; a fix with more is a ``conflicting_fix`` whatever it holds.
MAX_POSITIONS_PER_FIX = 3


def same_position(lat_a, lon_a, lat_b, lon_b):
    """The dedup rule (vectorised): the same bib at the same time at this position is a repeat, dropped; the
    replay, the live ingest and the race engine all drop repeats by it."""
    return (np.abs(np.subtract(lat_a, lat_b)) < SAME_POSITION_DEG) & \
        (np.abs(np.subtract(lon_a, lon_b)) < SAME_POSITION_DEG)


def dedupe(fixes: FixBatch) -> tuple[FixBatch, int]:
    """Sort by (bib, t) and drop repeats of a fix (same bib, time and position). Returns (fixes, n_removed).

    Two *different* positions for one bib at one time are not repeats: both
    stay, for :func:`conflicting_fixes` to tell which agrees with the track.
    """
    rows = deduped_rows(fixes)
    return fixes.take(rows), len(fixes) - rows.size


def deduped_rows(fixes: FixBatch) -> np.ndarray:
    """The rows :func:`dedupe` keeps, in its order (live keeps a window's fixes by it too, as they arrive)."""
    order = np.lexsort((fixes.t, fixes.bib))  # stable: arrival order within a (bib, t)
    bib, t, lat, lon = fixes.bib[order], fixes.t[order], fixes.lat[order], fixes.lon[order]
    n = order.size
    keep = np.ones(n, dtype=bool)
    if n > 1:
        same_fix = (np.diff(bib) == 0) & (np.diff(t) == 0)
        # a repeat of any earlier position of its (bib, t): compare with the run's first (a run is short)
        run_start = np.maximum.accumulate(np.where(np.concatenate([[True], ~same_fix]), np.arange(n), 0))
        for back in range(1, MAX_POSITIONS_PER_FIX + 1):  # more positions per (bib, t) are conflicts anyway
            j = np.maximum(np.arange(n) - back, 0)
            keep &= ~((np.arange(n) - back >= run_start) & same_position(lat, lon, lat[j], lon[j]))
    return order[keep]


def _track_bounds(bib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each rider's run in (bib, t)-sorted arrays."""
    if bib.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(bib)) + 1]
    return starts, np.diff(np.r_[starts, bib.size])


def conflicting_fixes(fixes: FixBatch) -> np.ndarray:
    """Mask of the fixes that lose a conflict: another position for the same bib and time was kept.

    Input sorted by (bib, t), repeats removed (:func:`dedupe`). Of the
    positions of one (bib, t) the one nearest the rider's neighbouring fix
    (the previous one, else the next) is kept: a second tracker sending
    under a stolen bib cannot tell where the rider is, so its fix is the
    one that does not fit; with no neighbour the first to arrive is kept.
    """
    n = len(fixes)
    if n < 2:
        return np.zeros(n, dtype=bool)
    first_of_key = np.r_[True, (np.diff(fixes.bib) != 0) | (np.diff(fixes.t) != 0)]
    if first_of_key.all():
        return np.zeros(n, dtype=bool)
    key = np.cumsum(first_of_key) - 1
    key_start = np.flatnonzero(first_of_key)
    # the neighbouring fix of each key: the first row of the previous key of the same bib, else of the next
    prev_start = np.r_[-1, key_start[:-1]][key]
    next_start = np.r_[key_start[1:], -1][key]
    has_prev = (prev_start >= 0) & (fixes.bib[np.maximum(prev_start, 0)] == fixes.bib)
    has_next = (next_start >= 0) & (fixes.bib[np.maximum(next_start, 0)] == fixes.bib)
    ref = np.where(has_prev, prev_start, np.where(has_next, next_start, -1))
    far = np.where(ref >= 0, haversine_m(fixes.lat, fixes.lon, fixes.lat[np.maximum(ref, 0)],
                                         fixes.lon[np.maximum(ref, 0)]), 0.0)
    order = np.lexsort((np.arange(n), far, key))  # per key: nearest first, then first arrived
    winner = np.zeros(n, dtype=bool)
    winner[order[np.r_[True, key[order][1:] != key[order][:-1]]]] = True
    return ~winner


def inconsistent_fixes(fixes: FixBatch, params: MatchParams = MatchParams()) -> np.ndarray:
    """Mask of fixes off their rider's physically consistent track (teleports, spikes, a hijacked tracker).

    Two fixes are consistent when a bike could ride from one to the other:
    no further apart than ``max_speed_mps`` times the time between them,
    plus GPS slack. Each fix links to the longest consistent chain ending
    among its rider's previous ``chain_lookback`` fixes; a fix is kept only
    if its chain is longer than every chain ending there. A single spike, or
    a tracker 15 km ahead for 5 fixes, starts a short chain of its own and
    is rejected; the genuine fix after it links back over it to the long
    history, and is kept. A position held longer than the lookback is
    accepted (the history it contradicts is then too old to outvote it).
    Causal (only earlier fixes decide), so live and replay agree. Input
    sorted by (bib, t), one fix per (bib, t).
    """
    slack = params.gps_slack_m
    return _off_chain(fixes.bib, fixes.t, (fixes.lat, fixes.lon),
                      lambda a, b, dt: haversine_m(a[0], a[1], b[0], b[1]) > params.max_speed_mps * dt + slack,
                      params.chain_lookback)


def unreachable_passes(bib: np.ndarray, t: np.ndarray, s: np.ndarray, params: MatchParams = MatchParams()) -> np.ndarray:
    """Mask of matched fixes on a pass of the course the rider cannot have reached (the next hairpin, a lap away).

    The rule of :func:`inconsistent_fixes`, measured along the course: a
    noisy fix 300 m off the road, next to the hairpin above, is a short ride
    from its neighbours as the crow flies, but its only candidates are 2 km
    further up the road, and Viterbi must take one. Along the road, as in
    the air, a rider gets no further than ``max_speed_mps`` times the time
    plus ``gps_slack_m``, either way (riders stop and turn back, but not at
    that speed; and the course polyline is longer than the road ridden
    where it goes round a roundabout the race cuts). A fix on another pass
    starts a chain of its own and is rejected; the fix after it links back
    to the history. Input sorted by (bib, t), ``s`` the matched polyline metres.
    """
    slack = params.gps_slack_m
    return _off_chain(bib, t, (s,), lambda a, b, dt: np.abs(a[0] - b[0]) > params.max_speed_mps * dt + slack,
                      params.chain_lookback)


def _off_chain(bib: np.ndarray, t: np.ndarray, coords: tuple, unreachable, lookback: int) -> np.ndarray:
    """Fixes off their rider's longest chain of fixes that could follow one another (see :func:`inconsistent_fixes`).

    ``unreachable(a, b, dt)``: whether a fix at ``a`` cannot follow one at
    ``b`` ``dt`` seconds earlier, points as tuples of ``coords`` arrays
    (broadcast: a fix against its previous ``lookback``).
    """
    n = bib.size
    bad = np.zeros(n, dtype=bool)
    if n < 2:
        return bad
    pick = lambda rows: tuple(c[rows] for c in coords)  # noqa: E731
    jump = np.r_[False, (bib[1:] == bib[:-1]) & unreachable(pick(slice(1, None)), pick(slice(None, -1)), np.diff(t))]
    if not jump.any():
        return bad
    sel = np.flatnonzero(np.isin(bib, np.unique(bib[jump])))  # only tracks with a jump
    bib_s, t_s = bib[sel], t[sel]
    xy = tuple(c[sel] for c in coords)
    starts, lengths = _track_bounds(bib_s)
    score = np.ones(sel.size)
    kept = np.ones(sel.size, dtype=bool)
    lags = np.arange(1, lookback + 1)
    riders = np.arange(starts.size)
    for step in range(1, int(lengths.max())):
        active = riders[lengths > step]
        idx = starts[active] + step
        back = idx[:, None] - lags[None, :]
        valid = lags[None, :] <= step
        back = np.where(valid, back, idx[:, None])
        reachable = valid & ~unreachable(tuple(c[idx][:, None] for c in xy), tuple(c[back] for c in xy),
                                         t_s[idx][:, None] - t_s[back])
        best_before = np.where(valid, score[back], 0.0).max(axis=1)
        score[idx] = 1.0 + np.where(reachable, score[back], 0.0).max(axis=1)
        kept[idx] = score[idx] > best_before
    bad[sel] = ~kept
    return bad


def viterbi(track: np.ndarray, t: np.ndarray, lat: np.ndarray, lon: np.ndarray,
            cand_s: np.ndarray, cand_off: np.ndarray, params: MatchParams,
            expected_mps: np.ndarray | None = None) -> np.ndarray:
    """Most likely candidate column for every fix; inputs sorted by (track, t).

    Without ``expected_mps`` the transition is Newson & Krumm's: progress
    along the course should equal the straight-line distance ridden. That
    fails where the road loops back on itself (a roundabout, a U-turn) and
    fixes are sparse, because the true progress is much longer than the
    chord. With ``expected_mps`` (the rider's speed, estimated from a first
    pass) progress should instead match speed x time, and the chord only
    rules out progress *shorter* than the distance ridden.
    Every fix must have at least one finite candidate.
    """
    n, k = cand_s.shape
    choice = np.zeros(n, dtype=np.int64)
    if n == 0:
        return choice
    emission = np.where(np.isfinite(cand_off), -0.5 * (cand_off / params.gps_sigma_m) ** 2, -np.inf)
    starts, lengths = _track_bounds(track)
    d_gc = np.r_[0.0, haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])]
    dt = np.r_[0.0, np.diff(t)]
    by_speed = expected_mps is not None
    if by_speed:
        expected_m = np.nan_to_num(expected_mps * dt, nan=-1.0)  # -1: unknown, fall back to the chord
    backptr = np.zeros((n, k), dtype=np.int8)
    score = emission[starts].copy()
    riders = np.arange(starts.size)

    def penalty(idx):  # (A, prev, cur): the cost of each transition into the fixes idx, from the fix before each
        return _transition_penalty(cand_s[idx][:, None, :] - cand_s[idx - 1][:, :, None], d_gc[idx][:, None, None],
                                   dt[idx][:, None, None], expected_m[idx][:, None, None] if by_speed else None,
                                   params)

    # every fix's at once when small (a live window's context), else step by step (a whole stage)
    every = penalty(np.arange(1, n)) if n * k * k <= _BULK_TRANSITIONS else None
    for step in range(1, int(lengths.max())):
        active = riders[lengths > step]
        idx = starts[active] + step
        total = score[active][:, :, None] - (penalty(idx) if every is None else every[idx - 1])
        best_prev = np.argmax(total, axis=1)  # (A, cur)
        best = np.take_along_axis(total, best_prev[:, None, :], axis=1)[:, 0, :] + emission[idx]
        best -= np.max(best, axis=1, keepdims=True)
        score[active] = best
        backptr[idx] = best_prev
    last = starts + lengths - 1
    choice[last] = np.argmax(score, axis=1)
    for step in range(int(lengths.max()) - 1, 0, -1):
        active = riders[lengths > step]
        idx = starts[active] + step
        choice[idx - 1] = backptr[idx, choice[idx]]
    return choice


#: Transition costs (fixes x candidates x candidates) computed all at once up to this many: a live window's.
_BULK_TRANSITIONS = 1 << 19


def _transition_penalty(progress, ridden, dt, expect, params: MatchParams) -> np.ndarray:
    """Cost of each transition (progress along the course between two fixes' candidates), inf where unknown."""
    beta = params.progress_beta_m + params.progress_beta_frac * ridden
    if expect is not None:
        short = np.maximum(ridden - progress - 2 * params.progress_beta_m, 0.0) / beta
        by_time = np.abs(progress - expect) / (2 * params.progress_beta_m + 0.25 * expect)
        cost = np.where(expect >= 0, short + by_time, np.abs(progress - ridden) / beta)
    else:
        cost = np.abs(progress - ridden) / beta
    reach = params.max_speed_mps * dt + 200.0
    cost = cost + np.where(progress > reach, params.overspeed_penalty, 0.0)
    return np.where(np.isnan(cost), np.inf, cost)


def _ambiguous_runs(bib: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and run id of every stretch of a rider's fixes with several candidates.

    Each run is extended by one unambiguous fix on either side (when the
    rider has one): a fix with a single candidate pins the chain, so Viterbi
    only has to decide within these runs, not over whole tracks.
    """
    amb = count > 1
    if not amb.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n = bib.size
    same_prev = np.r_[False, bib[1:] == bib[:-1]]
    same_next = np.r_[same_prev[1:], False]
    start = np.flatnonzero(amb & ~(np.r_[False, amb[:-1]] & same_prev))
    stop = np.flatnonzero(amb & ~(np.r_[amb[1:], False] & same_next)) + 1  # [start, stop)
    lo = np.where(same_prev[start], start - 1, start)
    hi = np.where(same_next[stop - 1], np.minimum(stop + 1, n), stop)
    lengths = hi - lo
    run = np.repeat(np.arange(lo.size), lengths)
    idx = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(lo, lengths)
    return idx, run


def _choose_passes(fixes: FixBatch, cand_s: np.ndarray, cand_off: np.ndarray, params: MatchParams) -> np.ndarray:
    """Candidate column of every fix: Viterbi on the ambiguous runs, column 0 elsewhere."""
    col = np.zeros(len(fixes), dtype=np.int64)
    count = np.isfinite(cand_off).sum(axis=1)
    idx, run = _ambiguous_runs(fixes.bib, count)
    if idx.size == 0:
        return col
    t, lat, lon = fixes.t[idx], fixes.lat[idx], fixes.lon[idx]
    s, off = cand_s[idx], cand_off[idx]
    # pass 1: chord-based transitions give each rider's pace ...
    choice = viterbi(run, t, lat, lon, s, off, params)
    col[idx] = choice
    # ... pass 2: progress by pace (from the whole track: most of it is unambiguous)
    rows = np.arange(len(fixes))
    pace = smoothed_speed_kph(fixes.bib, fixes.t, cand_s[rows, col] / 1000.0, params.pace_half_window_s) / 3.6
    choice = viterbi(run, t, lat, lon, s, off, params,
                     expected_mps=np.clip(pace[idx], 0.0, params.max_speed_mps))
    col[idx] = choice
    return col


def smoothed_speed_kph(bib: np.ndarray, t: np.ndarray, km: np.ndarray, half_window_s: float) -> np.ndarray:
    """Speed from matched distance over time, a centred difference over +-half_window_s."""
    n = bib.size
    if n == 0:
        return np.zeros(0)
    starts, lengths = _track_bounds(bib)
    rider = np.repeat(np.arange(starts.size), lengths)
    key = rider * 1e10 + (t - t.min())
    lo = np.searchsorted(key, key - half_window_s, side="left")
    hi = np.searchsorted(key, key + half_window_s, side="right") - 1
    span = t[hi] - t[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = 3600.0 * (km[hi] - km[lo]) / span
    return np.where(span > 0, speed, np.nan)


def match_fixes(fixes: FixBatch, course: Course, params: MatchParams = MatchParams(),
                candidates: Candidates | None = None):
    """Match fixes (any order) to the course.

    Returns (Matched, rejected) where rejected is a list of (FixBatch, reason,
    detail) for fixes that could not be matched, and the count of duplicates.
    ``candidates`` (of ``fixes``, row for row) stands in for the course's search: a fix's candidates never
    change, so the live engine remembers them instead of searching its context again.
    """
    from peloton.ingest.reasons import Reason

    rows = deduped_rows(fixes)  # the input's rows kept, in the order of those kept
    fixes, n_dupes = fixes.take(rows), len(fixes) - rows.size
    rejected = []
    conflict = conflicting_fixes(fixes)
    if conflict.any():
        rejected.append((fixes.take(np.flatnonzero(conflict)), Reason.CONFLICTING_FIX,
                         "another position for this bib at this time fits the rider's track better"))
        fixes, rows = fixes.take(np.flatnonzero(~conflict)), rows[~conflict]
    jump = inconsistent_fixes(fixes, params)
    if jump.any():
        rejected.append((fixes.take(np.flatnonzero(jump)), Reason.IMPOSSIBLE_JUMP,
                         f"off the rider's consistent track: further than {params.max_speed_mps * 3.6:.0f} km/h "
                         "allows from his recent fixes"))
        fixes, rows = fixes.take(np.flatnonzero(~jump)), rows[~jump]
    cands = (course.candidates(fixes.lat, fixes.lon, params.radius_m, params.max_candidates) if candidates is None
             else candidates.take(rows))
    on = cands.count > 0
    if not on.all():
        rejected.append((fixes.take(np.flatnonzero(~on)), Reason.OFF_COURSE,
                         f"more than {params.radius_m:.0f} m from every part of the course"))
        fixes = fixes.take(np.flatnonzero(on))
        cands.s, cands.off_m = cands.s[on], cands.off_m[on]
    col = _choose_passes(fixes, cands.s, cands.off_m, params)
    far = unreachable_passes(fixes.bib, fixes.t, cands.s[np.arange(len(fixes)), col], params)
    if far.any():
        rejected.append((fixes.take(np.flatnonzero(far)), Reason.IMPOSSIBLE_JUMP,
                         "matches only a pass of the course the rider cannot have reached from his recent fixes "
                         f"(further along the road than {params.max_speed_mps * 3.6:.0f} km/h allows)"))
        affected = np.unique(fixes.bib[far])
        keep = np.flatnonzero(~far)
        fixes, cands.s, cands.off_m, col = fixes.take(keep), cands.s[keep], cands.off_m[keep], col[keep]
        # the passes of those riders again, without the fix that pulled its neighbours' transitions
        again = np.flatnonzero(np.isin(fixes.bib, affected))
        col[again] = _choose_passes(fixes.take(again), cands.s[again], cands.off_m[again], params)
    rows = np.arange(len(fixes))
    s = cands.s[rows, col]
    off = cands.off_m[rows, col]
    km = course.km_at(s)
    km_to_finish = course.finish_km - km
    quality = np.full(len(fixes), Quality.GOOD, dtype=object)
    quality[off > params.off_route_m] = Quality.OFF_ROUTE
    quality[km < 0] = Quality.NEUTRAL
    quality[km_to_finish < 0] = Quality.FINISHED
    if fixes.clock_off is not None:  # its time cannot be trusted (peloton.ingest.clock): not a reference for anyone
        quality[fixes.clock_off] = Quality.CLOCK_OFF
    matched = Matched(
        fixes=fixes, s=s, off_m=off, km=km, km_to_finish=km_to_finish,
        altitude_m=course.altitude_at(s), gradient_pct=course.gradient_at(s),
        speed_kph=smoothed_speed_kph(fixes.bib, fixes.t, km, params.speed_half_window_s),
        quality=quality)
    return matched, rejected, n_dupes
