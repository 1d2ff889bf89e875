"""Race state (gaps, groups, events) from a stage's matched fixes."""
from __future__ import annotations

import logging
import time

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.transforms.window import TimestampedValue

from peloton.match.quality import Quality
from peloton.match.stage import Stage
from peloton.output.table import Columns
from peloton.predict.model import forecast_race
from peloton.state.classifications import StageClassifier
from peloton.state.climbs import climb_efforts
from peloton.state.race import RaceParams, derive_race_state
from peloton.state.results import same_time_gap_s
from peloton.state.rows import add_wind, rider_state_columns, split_by_time
from peloton.state.virtual_gc import VirtualGC
from transforms.worker_cache import stage_model

__all__ = ["RaceStateFn", "DeriveRaceState"]

log = logging.getLogger("peloton")


@beam.typehints.with_output_types(Columns)
class RaceStateFn(beam.DoFn):
    """Matched stage -> rider_state, groups, race_events, predictions, climb_efforts, results and classifications
    Columns, stamped with event time."""

    def __init__(self, stage_json: str, params: RaceParams = RaceParams()):
        self.stage_json = stage_json
        self.params = params

    def setup(self):
        self.stage, course, self.forecast = stage_model(self.stage_json)
        self.finish_km = course.finish_km
        self.classifier = StageClassifier(self.stage)

    def process(self, matched):
        started = time.perf_counter()
        race = derive_race_state(matched, self.finish_km, self.stage.is_time_trial, self.params,
                                 same_time_gap_s(self.stage.stage_type))
        log.info("race state of stage %s in %.1f s: %d group rows, %d events", matched.fixes.stage_id,
                 time.perf_counter() - started, len(race.groups), len(race.events))
        started = time.perf_counter()
        f, stage_id = matched.fixes, matched.fixes.stage_id
        add_wind(race.groups, self.forecast.profile)
        forecast = forecast_race(stage_id, race.groups.to_rows(), self.forecast,
                                 (f.t, f.bib, matched.km_to_finish, matched.speed_kph))
        on_course = np.isin(matched.quality, Quality.TRUSTED)
        efforts = climb_efforts(stage_id, f.bib, f.t, matched.km, on_course, self.forecast.profile)
        events = Columns.concat([race.events, Columns.from_rows("race_events", forecast.events)])
        classified = Columns.from_rows("classifications", self.classifier.rows_from_fixes(
            race.results.to_rows(), f.bib, f.t, matched.km, on_course))
        if not self.stage.is_time_trial:  # the virtual general classification, window by window as live
            vgc = VirtualGC.of(self.classifier)
            keep = np.flatnonzero(on_course & np.isfinite(matched.km))
            virtual, leader_changes = vgc.over_stage(
                f.t, f.bib, matched.km, matched.km_to_finish, race.gap_to_leader_s, race.group_id,
                race.results.to_rows(), vgc.bonus_passages(f.bib[keep], f.t[keep], matched.km[keep]))
            classified = Columns.concat([classified, Columns.from_rows("classifications", virtual)])
            events = Columns.concat([events, Columns.from_rows("race_events", leader_changes)])
        log.info("predictions of stage %s in %.1f s: %d rows, %d climb efforts", stage_id,
                 time.perf_counter() - started, len(forecast.predictions), len(efforts))
        counter = beam.metrics.Metrics.counter
        counter("peloton", "group_rows").inc(len(race.groups))
        counter("peloton", "race_events").inc(len(events))
        counter("peloton", "predictions").inc(len(forecast.predictions))
        table = rider_state_columns(matched, race)
        for t, idx in split_by_time(matched.fixes.t):
            yield TimestampedValue(table.take(idx), t)
        for name, cols in (("groups", race.groups), ("race_events", events),
                           ("virtual_standings", race.standings),
                           ("predictions", Columns.from_rows("predictions", forecast.predictions)),
                           ("climb_efforts", Columns.from_rows("climb_efforts", efforts)),
                           ("results", race.results), ("classifications", classified)):
            if len(cols):
                for t, idx in split_by_time(cols.data["event_time"] / 1000.0):
                    yield pvalue.TaggedOutput(name, TimestampedValue(cols.take(idx), t))


class DeriveRaceState(beam.PTransform):
    """Matched stages -> {'rider_state', 'groups', 'race_events', 'virtual_standings', 'predictions',
    'climb_efforts', 'results', 'classifications'}: Columns per tick."""

    def __init__(self, stage: Stage, params: RaceParams = RaceParams()):
        super().__init__()
        self.stage_json = stage.to_json()
        self.params = params

    def expand(self, matched):
        return matched | "RaceState" >> beam.ParDo(RaceStateFn(self.stage_json, self.params)).with_outputs(
            "groups", "race_events", "virtual_standings", "predictions", "climb_efforts", "results",
            "classifications", main="rider_state")
