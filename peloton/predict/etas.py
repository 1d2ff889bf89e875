"""Arrival times: every group's ETA at the finish and at each checkpoint ahead, central and an 80 % interval.

Pure numpy. The physics rides the profile ahead at the group's fitted power
(:mod:`peloton.predict.power_fit`) and at that power minus and plus its spread; the
finale model (:mod:`peloton.predict.finale`) takes over in the last kilometres; a
time trial's riders are timed from the rides before them
(:mod:`peloton.predict.time_trial`) once there are some. The official timetable
(:func:`timetable`) is read here too: its passage times are the prior of
every group's power.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from peloton.predict.finale import first_to_line
from peloton.predict.group_state import GroupState
from peloton.predict.power_fit import Z80
from peloton.predict.time_trial import FinishedRides

__all__ = ["Etas", "group_etas", "timetable"]

#: W/kg either side of the power for the derivative of the arrival time.
_EPS_WKG = 0.05


@dataclass
class Etas:
    """Every group's arrival: index 0 central, 1 late (low power), 2 early (high power)."""

    finish: np.ndarray  # (n, 3) epoch s at the line
    checkpoints: np.ndarray  # (n, 3, checkpoints) epoch s at every checkpoint of the profile
    remaining_s: np.ndarray  # (n,) seconds to the line at the central power, by the physics
    d_time: np.ndarray  # (n,) seconds earlier at the line per W/kg more


def group_etas(groups: list[GroupState], now: float, stage_model, params, rides: FinishedRides) -> Etas:
    """All groups' ETAs at once (``groups`` in road order, powers fitted)."""
    profile, tables = stage_model.profile, stage_model.tables
    time_trial = stage_model.time_trial
    finish = profile.finish_km
    km = np.array([g.km for g in groups])
    size = np.array([g.size for g in groups])
    power = np.array([g.power for g in groups])
    sigma = np.array([g.sigma for g in groups])
    cp_km = np.array([c.km for c in profile.checkpoints])
    eps = _EPS_WKG
    # powers per group: central, low (late), high (early), and +-eps for the derivative
    powers = np.stack([power, power - Z80 * sigma, power + Z80 * sigma, power - eps, power + eps], axis=1)
    here = tables.remaining_s(powers, km[:, None], size[:, None])  # (n, 5)
    at_cp = tables.remaining_s(powers[:, :3, None], cp_km[None, None, :], size[:, None, None])  # (n, 3, c)
    eta = now + here[:, :3, None] - at_cp
    to_line = here[:, :3]
    if params.finale and not time_trial:
        finale_params = params.finale_params
        to_line = stage_model.finale(finale_params).remaining_s(groups, km, size, now, here[:, :3], sigma)
        if finale_params.caught_finish_together:
            in_finale = finish - km <= finale_params.window_km
            to_line = first_to_line(now + to_line, in_finale) - now  # groups are in road order
        eta[:, :, cp_km >= finish - 1e-6] = (now + to_line)[:, :, None]  # the line's checkpoint: the finish ETA
    if time_trial:
        rides.learn(groups, profile.km, finish)
        ridden, known = rides.etas(groups, km, now, np.r_[finish, cp_km], profile.km, params.lookback_s)
        for k in np.flatnonzero(known):  # (n, 3, 1 + checkpoints): central, early, late
            here[k, 0], here[k, 2], here[k, 1] = ridden[k, :, 0] - now
            eta[k] = ridden[k][[0, 2, 1], 1:]
        to_line = here[:, :3]
    d_time = (here[:, 3] - here[:, 4]) / (2 * eps)  # seconds earlier per W/kg more
    return Etas(now + to_line, eta, here[:, 0], d_time)


def _clock_s(date: str, hhmmss: str | None, tz: ZoneInfo) -> float | None:
    if not hhmmss:
        return None
    try:
        day = datetime.strptime(date[:10], "%Y-%m-%d")
        h, m, s = (int(x) for x in (hhmmss.split(":") + ["0"])[:3])
    except ValueError:
        return None
    return day.replace(hour=h, minute=m, second=s, tzinfo=tz).timestamp()


def timetable(checkpoints: list[dict], date: str, timezone: str = "Europe/Paris") -> np.ndarray | None:
    """The official timetable as an array (n, 4): km and the low/middle/high passage epochs; None if absent.

    Only checkpoints from km 0 on (the neutral zone's are at length 0), first of equal kms kept, kms rising.
    """
    try:
        tz = ZoneInfo(timezone or "Europe/Paris")
    except (ValueError, KeyError):
        tz = ZoneInfo("Europe/Paris")
    rows = []
    for cp in checkpoints:
        times = [_clock_s(date, x, tz) for x in (cp.get("schedule") or [None, None, None])[:3]]
        if any(x is None for x in times) or len(times) < 3:
            continue
        rows.append([float(cp.get("km") or 0.0), *times])
    if len(rows) < 2:
        return None
    tt = np.array(sorted(rows, key=lambda r: (r[0], r[2])))
    # km 0 is the real start: the neutral zone's checkpoints share it; keep its last (latest) time
    zero = np.flatnonzero(tt[:, 0] <= 0)
    if zero.size > 1:
        tt = tt[zero[-1]:]
    tt = tt[np.r_[True, np.diff(tt[:, 0]) > 0]]
    return tt if tt.shape[0] >= 2 and np.all(np.diff(tt[:, 2]) >= 0) else None
