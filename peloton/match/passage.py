"""When a rider passed a given km, from his fixes: one rule for gaps, climbs, time trials and predictions.

Pure numpy. A track's km can go back (GPS noise, a hairpin the polyline
cuts, a rider who stops): the distance a rider has covered never does, so a
track is first reduced to its *reach*, the furthest km so far
(:func:`furthest_reach`). The rule (:func:`passage_times`):

* a point is passed between the last fix whose reach is short of it and the
  first fix at or past it (the *bracket*), interpolated between them (at
  that fix's time if it is at the point): the
  last fix short, not the first that reached that km, so a rider who stood
  still (or went back) before the point passes it when he rode on;
* only when the bracket's two fixes are at most :data:`MAX_BRACKET_S` apart
  (:data:`MAX_BRACKET_ON_CLOCK_S` when the time inside it is read on the
  road clock, which stays right across longer holes): a tracker silent for
  minutes gives no time rather than a guess;
* before a track's first fix nothing is known; a point just past its last
  fix (:data:`MAX_EXTRAPOLATE_KM`: trackers stop a few metres short of a
  summit or a line) is reached at the speed of the track's last bracket.

Inside the bracket the time is linear in km unless the caller knows the
road better: gaps share it out on the road clock and the tracker's speeds
(:class:`peloton.state.gaps.Trajectory` passes that curve as ``shape``, kept
inside the bracket). A time trial's finished rides (:func:`ride_times`) are
the same rule on a km grid, timed to the line past their last fix.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["furthest_reach", "passage_times", "ride_times", "MAX_BRACKET_S", "MAX_BRACKET_ON_CLOCK_S",
           "MAX_EXTRAPOLATE_KM"]

#: A passage time needs fixes no further apart than this around the point (read linearly, a passage across a
#: longer hole is off by 8 s at p90 on stage 4, against 4 s up to 90 s: benchmarks/HISTORY.md, "One passage rule") ...
MAX_BRACKET_S = 90.0
#: ... or this, read on the road clock (which knows where the road is slow: p90 5 s up to 210 s); gaps also
#: hold a silent leader this long (:data:`peloton.state.gaps.SILENT_HOLD_S`) ...
MAX_BRACKET_ON_CLOCK_S = 180.0
#: ... or the last fix of the track at most this short of it (trackers stop just before a summit or the line).
MAX_EXTRAPOLATE_KM = 0.05


def furthest_reach(km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A track's km in time order -> (the furthest km so far at every fix, the fixes that first reached each new
    furthest km)."""
    reach = np.maximum.accumulate(np.asarray(km, float))
    return reach, np.unique(reach, return_index=True)[1]


def passage_times(t: np.ndarray, km: np.ndarray, at_km, max_bracket_s: float = MAX_BRACKET_S,
                  beyond_km: float = MAX_EXTRAPOLATE_KM,
                  shape: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """When one rider's track (``t``, ``km`` in time order) passed each of ``at_km`` (epoch s; nan: not known).

    The module's rule: between the last fix short of the point and the first at or past it, if they are at most
    ``max_bracket_s`` apart; a point up to ``beyond_km`` past the last fix is reached at the last bracket's
    speed. ``shape``: a finer curve (km -> epoch s) through the same fixes, used inside the bracket instead of a
    straight line (clipped to the bracket's two times)."""
    t = np.asarray(t, float)
    at_km = np.asarray(at_km, float)
    out = np.full(at_km.shape, np.nan)
    if t.size == 0:
        return out
    reach = np.maximum.accumulate(np.asarray(km, float))
    j = np.searchsorted(reach, at_km, side="left")  # the first fix at or past the point
    at_first = (j == 0) & (np.abs(at_km - reach[0]) <= 1e-9)  # his first fix is at the point
    out[at_first] = t[0]
    if t.size < 2:
        return out
    inside = (j > 0) & (j < reach.size)
    j = np.clip(j, 1, reach.size - 1)
    t0, t1, k0, k1 = t[j - 1], t[j], reach[j - 1], reach[j]
    if shape is None:
        frac = np.clip((at_km - k0) / np.maximum(k1 - k0, 1e-12), 0.0, 1.0)
        when = t0 + frac * (t1 - t0)
    else:
        when = np.clip(shape(at_km), t0, t1)
    ok = inside & (t1 - t0 <= max_bracket_s)
    out[ok] = when[ok]
    at_fix = inside & (k1 == at_km)  # the first fix past the point is at it: nothing to interpolate
    out[at_fix] = t1[at_fix]
    # past the last fix: the last bracket (the fix before the final reach, the first at it) gives the speed
    last = int(np.searchsorted(reach, reach[-1], side="left"))
    if last > 0 and beyond_km > 0:
        dt, dk = t[last] - t[last - 1], reach[last] - reach[last - 1]
        beyond = (at_km > reach[-1]) & (at_km - reach[-1] <= beyond_km)
        if dk > 0 and dt <= max_bracket_s and beyond.any():
            out[beyond] = t[last] + (at_km[beyond] - reach[-1]) * dt / dk
    return out


def ride_times(t: np.ndarray, km: np.ndarray, grid: np.ndarray, min_fixes: int = 10,
               to_line_km: float = np.inf) -> np.ndarray | None:
    """A whole ride's time at every km of ``grid`` by :func:`passage_times`, timed to ``to_line_km`` past its
    last fix (a ride is kept only once it is near the line); None for a track of fewer than ``min_fixes`` new
    furthest kms."""
    if furthest_reach(km)[1].size < min_fixes:
        return None
    return passage_times(t, km, grid, beyond_km=to_line_km)
