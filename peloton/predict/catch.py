"""Whether a group ahead is caught before the line by the strongest group behind it.

Pure numpy. Compares the two groups' projected arrival times with their
uncertainty (the physics projection), and turns that, the gap against the
"10 km per minute" rule (the nearer the line, the more it counts) and the
gap's recent trend into a probability with a logistic calibration fitted on
simulated races (``benchmarks/predictions.py --fit``), where the outcome is
known. The rule alone and a Monte Carlo of held speeds are the baselines.
"""
from __future__ import annotations

import bisect
import math

import numpy as np

from peloton.predict.group_state import GroupHistory, GroupState

__all__ = ["CATCH_COEF", "catch_probability", "gap_trend", "catch_probability_rule", "catch_probability_monte_carlo"]

#: Logistic calibration of the catch probability, P(caught) = 1 / (1 + exp(coef . features)), on the features
#: [1, physics margin z, rule = log(gap / a minute per 10 km), gap trend, rule * near, near] with
#: near = 1 / (1 + km to go / 20). Fitted on simulated races of the TRAIN courses by
#: ``python benchmarks/predictions.py --fit``; scored on the TEST courses (BENCHMARKS.md;
#: benchmarks/HISTORY.md, "Will the breakaway be caught").
CATCH_COEF = np.array([-1.792, 0.015, -0.372, 0.874, 6.401, 6.472])


def _interp_list(x: float, xs: list, ys: list) -> float:
    """np.interp for one x on short Python lists, without building arrays."""
    i = bisect.bisect_left(xs, x)
    if i <= 0:
        return ys[0]
    if i >= len(xs):
        return ys[-1]
    x0, x1 = xs[i - 1], xs[i]
    return ys[i - 1] + (x - x0) / (x1 - x0) * (ys[i] - ys[i - 1]) if x1 > x0 else ys[i]


def _clamp(x: float, bound: float) -> float:
    return float(min(max(x, -bound), bound))


def catch_probability(k: int, groups: list[GroupState], remaining: np.ndarray, d_time: np.ndarray,
                      sigma: np.ndarray, now: float, finish_km: float, coef) -> tuple[float | None, list | None]:
    """P(group k is caught before the line by the strongest group behind), and the features behind it.

    ``groups`` are in road order; ``remaining`` their seconds to the line, ``d_time`` the seconds earlier per
    W/kg more and ``sigma`` their power spread."""
    behind = range(k + 1, len(groups))
    if not behind:
        return None, None
    # the chaser: the largest group behind (the nearest of equals), usually the peloton
    c = max(behind, key=lambda i: (groups[i].size, -i))
    g, cg = groups[k], groups[c]
    gap = max(float(cg.row.gap_to_leader_s - g.row.gap_to_leader_s), 0.0)
    margin = remaining[c] - remaining[k]  # projected gap at the line (s); <= 0: caught
    spread = math.hypot(d_time[k] * sigma[k], d_time[c] * sigma[c]) + 5.0
    km_to_go = max(finish_km - g.km, 0.1)
    rule = math.log(max(gap, 1.0) / (6.0 * km_to_go))  # the rule of thumb: a minute per 10 km is enough
    rule = _clamp(rule, 5.0)
    near = 1.0 / (1.0 + km_to_go / 20.0)  # the closer the line, the surer the rule
    features = [1.0, _clamp(margin / spread, 10.0), rule, gap_trend(g.history, cg.history, now), rule * near, near]
    logit = sum(w * x for w, x in zip(coef, features))
    return round(1.0 / (1.0 + math.exp(min(max(logit, -50.0), 50.0))), 4), features


def gap_trend(a: GroupHistory, b: GroupHistory, now: float) -> float:
    """The gap from ``a`` back to ``b``: its change over the last 10 minutes against what it is (s per s of gap);
    0 without history."""
    if len(a.t) < 2 or len(b.t) < 2:
        return 0.0
    then = now - 600.0
    if a.t[0] > then + 60 or b.t[0] > then + 60:
        return 0.0
    gap_then = _interp_list(then, b.t, b.gap) - _interp_list(then, a.t, a.gap)
    gap_now = b.gap[-1] - a.gap[-1]
    return _clamp((gap_now - gap_then) / max(abs(gap_now), 30.0), 3.0)


def catch_probability_rule(gap_s, km_to_go) -> np.ndarray:
    """The rule of thumb: a chase takes back a minute every 10 km; caught (1) if the gap is smaller than that."""
    return (np.asarray(gap_s, dtype=float) < 6.0 * np.asarray(km_to_go, dtype=float)).astype(float)


def catch_probability_monte_carlo(km_to_go_ahead, km_to_go_chase, kph_ahead, kph_chase,
                                  sd_kph: float = 2.5, draws: int = 2000, seed: int = 0) -> np.ndarray:
    """Both groups hold their current speed, each with a draw of noise: share of draws where the chase arrives first.

    The gap is in the distances: the chase has further to go.
    """
    rng = np.random.default_rng(seed)
    args = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                 (km_to_go_ahead, km_to_go_chase, kph_ahead, kph_chase)))
    ahead_km, chase_km, v_a, v_c = (a[..., None] for a in args)
    va = np.maximum(v_a + rng.normal(0, sd_kph, v_a.shape[:-1] + (draws,)), 5.0)
    vc = np.maximum(v_c + rng.normal(0, sd_kph, v_c.shape[:-1] + (draws,)), 5.0)
    return np.mean(chase_km / vc <= ahead_km / va, axis=-1)
