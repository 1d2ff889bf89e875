"""Climb efforts: a rider's ride up a climb, said once he has passed its summit."""
from __future__ import annotations

import numpy as np

from peloton.match.passage import passage_times
from peloton.match.quality import Quality
from peloton.state.climbs import effort_rows
from peloton.state.trackers.base import Reach, Window

__all__ = ["ClimbEfforts"]


class ClimbEfforts:
    """climb_efforts as riders pass summits: each passage (foot or summit) is the replay's
    (:func:`peloton.match.passage.passage_times` on the rider's track in the history), taken once he has a fix past the
    point. Only with a stage model that has climbs."""

    def __init__(self):
        self.reach = Reach()  # over trusted fixes
        self.passed: dict = {}  # (bib, climb point) -> passage time (nan: not known closely enough)

    def update(self, w: Window) -> dict:
        forecast, m = w.forecast, w.m
        if forecast is None or not forecast.profile.climbs or not len(m):
            return {}
        profile = forecast.profile
        climbs = profile.climbs
        points = np.r_[[c.start_km for c in climbs], [c.summit_km for c in climbs]]  # feet, then summits
        riders, passed = self.reach.passed(m, np.isin(m.quality, Quality.TRUSTED), points)
        h = w.hist
        rows = []
        for r in np.flatnonzero(passed.any(axis=1)).tolist():  # the few riders at a foot or a summit
            rider = int(riders[r])
            idx = np.flatnonzero((h["bib"] == rider) & h["climbing"])
            idx = idx[np.argsort(h["t"][idx], kind="stable")]
            cols = np.flatnonzero(passed[r])
            for p, when in zip(cols.tolist(), passage_times(h["t"][idx], h["km"][idx], points[cols]).tolist()):
                self.passed[(rider, p)] = when
            rows += self._efforts_of(w.stage_id, rider, [p - len(climbs) for p in cols.tolist() if p >= len(climbs)],
                                     profile)
        return {"climb_efforts": rows}

    def finish(self, w: Window) -> dict:
        """A summit the track ends just short of is reached at the last speed (as the replay has it)."""
        forecast = w.forecast
        if forecast is None or not forecast.profile.climbs:
            return {}
        profile, climbs, h = forecast.profile, forecast.profile.climbs, w.hist
        rows = []
        for (rider, p), when in sorted(self.passed.items()):
            if p >= len(climbs) or not np.isfinite(when) or (rider, len(climbs) + p) in self.passed:
                continue
            idx = np.flatnonzero((h["bib"] == rider) & h["climbing"])
            idx = idx[np.argsort(h["t"][idx], kind="stable")]
            top = passage_times(h["t"][idx], h["km"][idx], np.array([climbs[p].summit_km]))[0]
            if np.isfinite(top):
                self.passed[(rider, len(climbs) + p)] = float(top)
                rows += self._efforts_of(w.stage_id, rider, [p], profile)
        return {"climb_efforts": rows}

    def _efforts_of(self, stage_id: str, rider: int, summits: list[int], profile) -> list[dict]:
        climbs = profile.climbs
        rows = []
        for c in summits:
            foot, top = self.passed.get((rider, c), np.nan), self.passed.get((rider, len(climbs) + c))
            if top is None:
                continue
            rows += effort_rows(stage_id, np.array([rider]), [climbs[c]], np.array([[foot]]),
                                np.array([[top]]), profile, profile.finish_km)
        return rows
