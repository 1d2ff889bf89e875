"""A group's power (W/kg) and its spread: what the model needs to have ridden its last minutes in the time they took.

Pure numpy. A group's power is not measured but *fitted*: the steady power
at which the speed tables (:mod:`peloton.predict.physics`) ride its lookback in the
time it really took, its 5-minute pieces' spread the uncertainty, pulled
towards the power the official timetable implies from here to the finish in
proportion to how sure each is. Every group's rides are solved at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from peloton.predict.group_state import GroupHistory, GroupState
from peloton.predict.physics import SpeedTables, drag_class_of

__all__ = ["Z80", "Rides", "rides_of", "combine", "fit_powers"]

Z80 = 1.2816  # half-width of a central 80 % interval, in standard deviations


@dataclass
class Rides:
    """(km_from, km_to, seconds) rides whose powers set a group's: the lookback whole, its 5-minute pieces,
    and the timetable's low/middle/high from here to the finish (absent ones None). Solved, the same shape
    holds each ride's power."""

    lookback: tuple | None = None
    pieces: list = field(default_factory=list)
    timetable: list | None = None


def rides_of(h: GroupHistory, km: float, now: float, params, timetable: np.ndarray | None,
             finish_km: float) -> Rides:
    """The rides that set a group's power, from its history and the timetable."""
    p = params
    t, kms = np.asarray(h.t), np.asarray(h.km)
    keep = t >= now - p.lookback_s
    t, kms = t[keep], kms[keep]
    fit, pieces, table = None, [], None
    if t.size >= 2 and t[-1] - t[0] >= p.min_history_s and kms[-1] - kms[0] >= 0.2:
        fit = (kms[0], kms[-1], t[-1] - t[0])
        edges = np.arange(t[0], t[-1] + 1e-9, p.segment_s)
        if edges.size >= 3:
            k = np.interp(edges, t, kms)
            pieces = [(k[i], k[i + 1], edges[i + 1] - edges[i]) for i in range(edges.size - 1)
                      if k[i + 1] - k[i] > 0.1]
    tt = timetable
    if tt is not None and km < tt[-1, 0] - 0.5:
        table = [(km, finish_km, tt[-1, col] - np.interp(km, tt[:, 0], tt[:, col])) for col in (1, 2, 3)]
    return Rides(fit, pieces, table)


def combine(fit, pieces, table, span_s, params) -> tuple[float | None, float]:
    """The group's power and its spread: the fit pulled towards the timetable by their precisions."""
    p = params
    p_fit = s_fit = p_tt = s_tt = None
    if fit is not None:
        spread = float(np.std(pieces)) if len(pieces) >= 2 else 2 * p.power_sigma_floor
        short = np.sqrt(max(1.0, 0.5 * p.lookback_s / max(span_s, 1.0)))  # less history, less sure
        p_fit, s_fit = fit, max(spread, p.power_sigma_floor) * short
    if table is not None:
        low, mid, high = table
        spread = abs(low - high) / (2 * Z80)
        p_tt, s_tt = mid, max(spread, p.power_sigma_floor) if spread > 0 else p.timetable_sigma
    if p_tt is None:
        return p_fit, (s_fit if s_fit is not None else np.inf)
    if p_fit is None:
        return p_tt, s_tt
    w_fit, w_tt = 1 / s_fit ** 2, 1 / s_tt ** 2
    power = (p_fit * w_fit + p_tt * w_tt) / (w_fit + w_tt)
    return power, float(np.sqrt(1 / (w_fit + w_tt) + s_fit ** 2))  # the group's pace varies on: s_fit stays


def fit_powers(groups: list[GroupState], rides: list[Rides], tables: SpeedTables, now: float, params,
               finish_km: float) -> None:
    """Every group's rides solved for power at once; sets each group's ``power`` and ``sigma`` (and its fit)."""
    queries, owners = [], []
    for k, (g, r) in enumerate(zip(groups, rides)):
        parts = (([(0, r.lookback)] if r.lookback is not None else []) + [(1, x) for x in r.pieces]
                 + [(2, x) for x in r.timetable or []])
        for part, ride in parts:
            queries.append(ride)
            owners.append((k, part, g.size))
    solved = (tables.powers_for(*np.array(queries).T, [o[2] for o in owners]) if queries else np.zeros(0))
    answers = [Rides() for _ in groups]
    for (k, part, _size), power in zip(owners, solved.tolist()):
        if part == 0:
            answers[k].lookback = power
        elif part == 1:
            answers[k].pieces.append(power)
        else:
            answers[k].timetable = (answers[k].timetable or []) + [power]
    for g, r, a in zip(groups, rides, answers):
        h = g.history
        if a.lookback is None and a.timetable is None and h.fit is not None and now - h.fit[0] < params.refit_s:
            power, sigma = h.fit[2], h.fit[3]  # fitted moments ago
        else:
            power, sigma = combine(a.lookback, a.pieces, a.timetable, r.lookback[2] if r.lookback else 0.0, params)
            if power is None:  # nothing to go on yet: its current speed on the next km
                speed = max(g.row.speed_kph, 20.0)
                power = tables.power_for(g.km, min(g.km + 1.0, finish_km), 3600.0 / speed, g.size)
                sigma = 1.0
            h.fit = (now, drag_class_of(g.size), power, float(sigma))
        g.power, g.sigma = power, float(sigma)
