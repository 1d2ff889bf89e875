"""When a rider passed a given km, from his fixes: the passage-time interpolation of gaps, climbs and predictions.

Pure numpy. A track's km can go back (GPS noise, a hairpin the polyline
cuts, a rider who stops): the distance a rider has covered never does, so a
track is first reduced to its *reach*, the furthest km so far, and a passage
time is read off that. Three readings, for three uses:

* :func:`furthest_reach`: the time each new furthest km was first reached;
  time gaps (:class:`peloton.gaps.Trajectory`) interpolate it, and a time
  trial's finished rides (:func:`ride_times`) are read off it;
* :func:`passage_times`: a point's passage between the last fix short of it
  and the first at or past it, and only when those fixes are close in time
  (climb efforts: a silent tracker gives no time rather than a wrong one).
"""
from __future__ import annotations

import numpy as np

__all__ = ["furthest_reach", "passage_times", "ride_times", "MAX_BRACKET_S", "MAX_EXTRAPOLATE_KM"]

#: A passage time needs fixes no further apart than this around the point ...
MAX_BRACKET_S = 90.0
#: ... or the last fix of the track at most this short of it (trackers stop just before the line).
MAX_EXTRAPOLATE_KM = 0.05


def furthest_reach(km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A track's km in time order -> (the furthest km so far at every fix, the fixes that first reached each new
    furthest km): the time of a km between two of those is interpolated between their times."""
    reach = np.maximum.accumulate(np.asarray(km, float))
    return reach, np.unique(reach, return_index=True)[1]


def passage_times(t: np.ndarray, km: np.ndarray, at_km: np.ndarray, max_bracket_s: float = MAX_BRACKET_S) -> np.ndarray:
    """When one rider's track (sorted by time) passed each of ``at_km``; nan where no fixes bracket it closely.

    A point just past the track's last fix is reached at the last speed."""
    at_km = np.asarray(at_km, dtype=float)
    if t.size < 2:
        return np.full(at_km.size, np.nan)
    reach = np.maximum.accumulate(km)  # distance covered never goes back
    j = np.searchsorted(reach, at_km, side="left")  # first fix at or past the point
    ok = (j > 0) & (j < reach.size)
    j = np.clip(j, 1, reach.size - 1)
    k0, k1 = reach[j - 1], reach[j]
    frac = np.where(k1 > k0, (at_km - k0) / np.maximum(k1 - k0, 1e-9), 0.0)
    when = t[j - 1] + np.clip(frac, 0, 1) * (t[j] - t[j - 1])
    ok &= (t[j] - t[j - 1]) <= max_bracket_s
    # a summit finish: the track ends a few metres short of the line; ride them at the last speed
    short = (at_km > reach[-1]) & (at_km - reach[-1] <= MAX_EXTRAPOLATE_KM)
    last_speed = (reach[-1] - reach[-2]) / max(t[-1] - t[-2], 1e-9)
    if last_speed > 0 and t[-1] - t[-2] <= max_bracket_s:
        when = np.where(short, t[-1] + (at_km - reach[-1]) / last_speed, when)
        ok |= short
    return np.where(ok, when, np.nan)


def ride_times(t: np.ndarray, km: np.ndarray, grid: np.ndarray, min_fixes: int = 10) -> np.ndarray | None:
    """A whole ride's time at every km of ``grid``: linear on the track's reach, the last metres to the line at
    the last speed, nan before the first fix; None for a track of fewer than ``min_fixes`` new furthest kms."""
    reach, first = furthest_reach(km)
    reach_km, reach_t = reach[first], np.asarray(t, float)[first]
    if reach_km.size < min_fixes:
        return None
    times = np.interp(grid, reach_km, reach_t)
    beyond = grid > reach_km[-1]
    speed = max((reach_km[-1] - reach_km[-2]) / max(reach_t[-1] - reach_t[-2], 1e-9), 1e-3)
    times[beyond] = reach_t[-1] + (grid[beyond] - reach_km[-1]) / speed
    times[grid < reach_km[0]] = np.nan  # before the first fix: unknown
    return times
