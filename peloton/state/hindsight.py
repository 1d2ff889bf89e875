"""The hindsight replay's race state: every table of a stage from all of its matched fixes at once.

The causal engine (:mod:`peloton.state.engine`) derives the same tables window by window, from the past only;
this is its counterpart over the whole stage, one call, so the Beam step that runs it is only glue.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from peloton.match.matching import Matched
from peloton.match.quality import Quality
from peloton.match.stage import Stage
from peloton.output.table import Columns
from peloton.predict.model import StageModel, forecast_race
from peloton.state.classifications import StageClassifier
from peloton.state.climbs import climb_efforts
from peloton.state.race import RaceParams, derive_race_state
from peloton.state.results import same_time_gap_s
from peloton.state.rows import add_wind, rider_state_columns
from peloton.state.virtual_gc import VirtualGC

__all__ = ["HINDSIGHT_TABLES", "stage_in_hindsight"]

log = logging.getLogger("peloton")

#: The tables besides rider_state, in the order the replay emits them.
HINDSIGHT_TABLES = ("groups", "race_events", "virtual_standings", "predictions", "climb_efforts", "results",
                    "classifications")


def stage_in_hindsight(matched: Matched, stage: Stage, model: StageModel, finish_km: float,
                       classifier: StageClassifier, params: RaceParams = RaceParams()) -> tuple[Columns, dict[str, Columns]]:
    """(rider_state, {groups, race_events, virtual_standings, predictions, climb_efforts, results,
    classifications}) of the whole stage."""
    started = time.perf_counter()
    race = derive_race_state(matched, finish_km, stage.is_time_trial, params, same_time_gap_s(stage.stage_type))
    log.info("race state of stage %s in %.1f s: %d group rows, %d events", matched.fixes.stage_id,
             time.perf_counter() - started, len(race.groups), len(race.events))
    started = time.perf_counter()
    f, stage_id = matched.fixes, matched.fixes.stage_id
    add_wind(race.groups, model.profile)
    forecast = forecast_race(stage_id, race.groups.to_rows(), model,
                             (f.t, f.bib, matched.km_to_finish, matched.speed_kph))
    on_course = np.isin(matched.quality, Quality.TRUSTED)
    efforts = climb_efforts(stage_id, f.bib, f.t, matched.km, on_course, model.profile)
    events = Columns.concat([race.events, Columns.from_rows("race_events", forecast.events)])
    results = race.results.to_rows()
    classified = Columns.from_rows("classifications", classifier.rows_from_fixes(
        results, f.bib, f.t, matched.km, on_course))
    if not stage.is_time_trial:  # the virtual general classification, window by window as live
        vgc = VirtualGC.of(classifier)
        keep = np.flatnonzero(on_course & np.isfinite(matched.km))
        virtual, leader_changes = vgc.over_stage(
            f.t, f.bib, matched.km, matched.km_to_finish, race.gap_to_leader_s, race.group_id, results,
            vgc.bonus_passages(f.bib[keep], f.t[keep], matched.km[keep]))
        classified = Columns.concat([classified, Columns.from_rows("classifications", virtual)])
        events = Columns.concat([events, Columns.from_rows("race_events", leader_changes)])
    log.info("predictions of stage %s in %.1f s: %d rows, %d climb efforts", stage_id,
             time.perf_counter() - started, len(forecast.predictions), len(efforts))
    return rider_state_columns(matched, race), {
        "groups": race.groups, "race_events": events, "virtual_standings": race.standings,
        "predictions": Columns.from_rows("predictions", forecast.predictions),
        "climb_efforts": Columns.from_rows("climb_efforts", efforts),
        "results": race.results, "classifications": classified}
