"""The race engine's rules, one tracker each: from one window's matched fixes and the history, its tables.

Each tracker has ``update(window) -> {table: rows}`` and ``finish(window) -> {table: rows}``
(:class:`~peloton.state.trackers.base.Tracker`); :class:`peloton.state.engine.RaceEngine` matches the fixes, keeps the
history and runs the trackers in order. A new table is one more tracker here.
"""
from __future__ import annotations

from peloton.state.classifications import StageClassifier
from peloton.state.trackers.base import PerRider, Reach, Tracker, Window
from peloton.state.trackers.classifications import Classifications
from peloton.state.trackers.climbs import ClimbEfforts
from peloton.state.trackers.gaps import TRACKER_SHORTFALL_KM, RoadGaps, TimeTrialGaps
from peloton.state.trackers.group_events import GROUP_GONE_S, GroupEvents
from peloton.state.trackers.predictions import Predictions
from peloton.state.trackers.results import Results
from peloton.state.trackers.rider_events import RiderEvents
from peloton.state.trackers.standings import VirtualStandings
from peloton.state.trackers.virtual_gc import VirtualGeneral

__all__ = ["Tracker", "Window", "PerRider", "Reach", "stage_trackers", "RoadGaps", "TimeTrialGaps", "GroupEvents",
           "Predictions", "Results", "RiderEvents", "ClimbEfforts", "VirtualStandings", "Classifications",
           "VirtualGeneral", "GROUP_GONE_S", "TRACKER_SHORTFALL_KM"]


def stage_trackers(time_trial: bool, same_time_gap_s: float = 1.0,
                   classifier: StageClassifier | None = None) -> list:
    """The trackers of a stage, in the order they run: the ones that publish on the window (groups, the final
    ranking) before the ones that read it."""
    riders = [TimeTrialGaps()] if time_trial else [RoadGaps(), GroupEvents()]
    ranked = [VirtualStandings()] if time_trial else []
    classified = [] if classifier is None else [Classifications(classifier)]
    if classifier is not None and not time_trial:  # after the gaps, results and passages it reads
        classified.append(VirtualGeneral(classifier))
    return [*riders, Predictions(), Results(same_time_gap_s), *ranked, ClimbEfforts(), *classified, RiderEvents()]
