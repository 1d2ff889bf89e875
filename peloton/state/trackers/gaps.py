"""Rider rows: each fix's gap to the leader and, on the road, the groups it rides in."""
from __future__ import annotations

import numpy as np

from peloton.output.table import Columns
from peloton.state.gaps import gap_to_leader_s
from peloton.state.groups import GroupTimeline, track_groups
from peloton.state.race import RaceState, groups_and_gap_ahead, riding_fixes, time_trial_gaps
from peloton.state.rows import add_wind, rider_state_columns
from peloton.state.trackers.base import Window

__all__ = ["RoadGaps", "TimeTrialGaps", "TRACKER_SHORTFALL_KM"]

#: Trackers stop short of the line: a time-trial ride counts as finished this far before it (as in the standings).
TRACKER_SHORTFALL_KM = 0.2


class RoadGaps:
    """Road stages: rider_state and groups. Gaps against the leader's trajectory so far (the engine's leaders and
    road clock), groups tracked on from the previous window.

    Publishes the window's groups (rows, with and without wind), the timeline and its new membership changes; and
    writes each new fix's group into the history (the finale's stops ask who rode together).
    """

    def __init__(self):
        self.timeline: GroupTimeline | None = None

    def update(self, w: Window) -> dict:
        h, m, ra, newest = w.hist, w.m, w.race_params, w.newest
        f = m.fixes
        can_lead = h["ktf"] > ra.at_line_km
        gap_all, _ = gap_to_leader_s(h["t"], h["km"], h["bib"], h["usable"], can_lead=can_lead,
                                     km_to_finish=h["ktf"], speed_kph=h["speed"], only=newest,
                                     sensor_kph=h["sensor"], at_line_km=ra.at_line_km,
                                     leaders=w.leaders(newest, can_lead), clock=w.clock())
        gap = gap_all[newest]
        gparams = ra.groups
        self.timeline = track_groups(f.t, f.bib, m.km, m.speed_kph, riding_fixes(m), gparams, state=self.timeline)
        gid = self.timeline.group_id
        h["gid"][newest] = gid
        group_rows, gap_ahead = groups_and_gap_ahead(f.stage_id, f.t, f.bib, m.km, m.km_to_finish, m.speed_kph, gap,
                                                     gid, gparams)
        groups = Columns.from_rows("groups", group_rows)
        if w.forecast is not None:
            add_wind(groups, w.forecast.profile)
        w.groups, w.group_rows, w.group_timeline = groups, group_rows, self.timeline
        w.gaps = gap
        w.group_changes = list(self.timeline.changes)  # handed on once: the timeline keeps none
        self.timeline.changes.clear()
        race = RaceState(gap, gap_ahead, gid, None, None, None)
        return {"rider_state": rider_state_columns(m, race), "groups": groups}

    def finish(self, w: Window) -> dict:
        return {}


class TimeTrialGaps:
    """Time trials: rider_state, each fix's gap to the fastest rider at the same km (no groups)."""

    def update(self, w: Window) -> dict:
        h, m, newest = w.hist, w.m, w.newest
        n = len(m)
        gap = time_trial_gaps(h["bib"], h["t"], h["km"], h["usable"], w.race_params, w.starts,
                              line_km=w.finish_km - TRACKER_SHORTFALL_KM, tracks=w.tracks, only=newest)[newest]
        race = RaceState(gap, np.full(n, np.nan), np.full(n, -1, dtype=np.int64), None, None, None)
        return {"rider_state": rider_state_columns(m, race)}

    def finish(self, w: Window) -> dict:
        return {}
