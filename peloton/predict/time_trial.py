"""Time trials: every rider is predicted from the rides of the riders who finished before him.

Pure numpy. A time trial has no groups: every rider on the course is a group
of one (:func:`time_trial_groups`). Each finished ride is kept as the time
at every km of the profile (:func:`peloton.match.passage.ride_times`); a rider's
passages ahead are those rides' times for the rest, scaled by his pace
against theirs over the same stretch. Until a ride has finished, the
physics predicts (:mod:`peloton.predict.etas`).
"""
from __future__ import annotations

import numpy as np

from peloton.match.passage import ride_times
from peloton.predict.group_state import GroupState

__all__ = ["FinishedRides", "time_trial_groups"]


def _nan_quantiles(a: np.ndarray, qs) -> list[np.ndarray]:
    """Quantiles over axis 0 ignoring nan (linear), vectorised over the other axes: nan where all are nan."""
    ordered = np.sort(a, axis=0)  # nan last
    count = np.isfinite(a).sum(axis=0)
    out = []
    for q in qs:
        pos = q * np.maximum(count - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        v_lo = np.take_along_axis(ordered, lo[None], axis=0)[0]
        v_hi = np.take_along_axis(ordered, hi[None], axis=0)[0]
        out.append(np.where(count > 0, v_lo + (pos - lo) * (v_hi - v_lo), np.nan))
    return out


class FinishedRides:
    """The rides seen from (near) the start ramp to (near) the line: bib -> time at every km of the grid."""

    def __init__(self):
        self.rides: dict[int, np.ndarray] = {}
        self._table: np.ndarray | None = None  # the rides stacked, rebuilt after unpickling

    def __getstate__(self):
        return {"rides": self.rides, "_table": None}

    def learn(self, groups: list[GroupState], grid: np.ndarray, finish_km: float) -> None:
        """Keep the ride of every rider at the line whose track starts at the ramp."""
        for g in groups:
            h = g.history
            bib = g.row.group_id
            if bib in self.rides or g.km < finish_km - 0.3 or not h.km or h.km[0] > 1.0:
                continue
            times = ride_times(np.asarray(h.t), np.asarray(h.km), grid)
            if times is not None:
                self.rides[bib] = times

    def etas(self, groups: list[GroupState], km: np.ndarray, now: float, targets_km, grid: np.ndarray,
             lookback_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Riders' passages at ``targets_km`` from the riders who rode the course before them.

        Each earlier ride says: at your pace over your last minutes relative to mine over the same
        stretch, the rest takes you my time for the rest scaled alike; asked with the last 5, 10 and 20
        minutes of pace. The median of all those is the prediction, their 10-90 % spread its interval.
        Returns (n, 3, targets) and which riders have one.
        """
        n = len(groups)
        known = np.zeros(n, dtype=bool)
        if not self.rides:
            return np.zeros((n, 3, np.size(targets_km))), known
        if self._table is None or self._table.shape[0] != len(self.rides):
            self._table = np.array(list(self.rides.values()))  # (rides, grid)
        rides = self._table

        def at(x):  # every ride's time at each km of x: (rides, len(x))
            x = np.clip(np.atleast_1d(np.asarray(x, dtype=float)), grid[0], grid[-1])
            i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
            f = (x - grid[i]) / np.maximum(grid[i + 1] - grid[i], 1e-9)
            return rides[:, i] + f * (rides[:, i + 1] - rides[:, i])

        here_t = at(km)  # (rides, n)
        ahead = at(targets_km)  # (rides, targets)
        etas, oks = [], []
        # the pace over the last quarter, half and whole lookback: how the rider's pace is changing is part
        # of the uncertainty, as is how differently the earlier riders rode the rest
        for share in (0.25, 0.5, 1.0):
            since_km, since_t = np.zeros(n), np.zeros(n)
            for k, g in enumerate(groups):
                h = g.history
                i = min(int(np.searchsorted(h.t, now - share * lookback_s)), len(h.t) - 1)
                since_km[k], since_t[k] = h.km[i], h.t[i]
            start_t = at(since_km)
            ok = (np.isfinite(start_t) & np.isfinite(here_t) & (here_t > start_t)
                  & ((km - since_km) >= 0.3)[None, :])
            pace = np.where(ok, (now - since_t)[None, :] / np.where(ok, here_t - start_t, 1.0), np.nan)
            etas.append(now + pace[:, :, None] * (ahead[:, None, :] - here_t[:, :, None]))  # (rides, n, targets)
            oks.append(ok)
        eta, ok = np.concatenate(etas), oks[-1]
        mid, lo, hi = _nan_quantiles(eta, (0.5, 0.1, 0.9))
        count = ok.sum(axis=0)
        few = (count < 3)[:, None]  # too few rides for a spread: +-5 % of the time to go
        lo = np.where(few, mid - 0.05 * (mid - now), lo)
        hi = np.where(few, mid + 0.05 * (mid - now), hi)
        known = (count >= 1) & np.isfinite(mid).all(axis=1)
        return np.stack([mid, lo, hi], axis=1), known


def time_trial_groups(stage_id: str, t, bib, km_to_finish, speed_kph) -> list[dict]:
    """A time trial has no groups: every rider on the course is a group of one (id = bib) for the predictions."""
    t, bib, ktf, speed = (np.asarray(a) for a in (t, bib, km_to_finish, speed_kph))
    ok = np.isfinite(ktf) & (ktf > 0.05)
    order = np.flatnonzero(ok)[np.lexsort((ktf[ok], t[ok]))]
    rows, rank, last = [], 0, None
    for i in order.tolist():
        tick = int(round(float(t[i]) * 1000))
        rank = 1 if tick != last else rank + 1
        last = tick
        rows.append({"stage_id": stage_id, "event_time": tick, "group_id": int(bib[i]), "rank": rank,
                     "label": "solo", "size": 1, "bibs": [int(bib[i])], "km_to_finish_head": float(ktf[i]),
                     "speed_kph": None if not np.isfinite(speed[i]) else float(speed[i]), "gap_to_leader_s": None})
    return rows
