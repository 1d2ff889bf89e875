"""Race state (gaps, groups, events) from a stage's matched fixes."""
from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import TimestampedValue

from peloton.race import RaceParams, derive_race_state
from peloton.rows import rider_state_columns, split_by_time
from peloton.stage import Stage

__all__ = ["RaceStateFn", "DeriveRaceState"]

log = logging.getLogger("peloton")


class RaceStateFn(beam.DoFn):
    """Matched stage -> rider_state, groups and race_events Columns, each stamped with event time."""

    def __init__(self, stage_json: str, params: RaceParams = RaceParams()):
        self.stage_json = stage_json
        self.params = params

    def setup(self):
        self.stage = Stage.from_json(self.stage_json)
        self.finish_km = self.stage.course().finish_km

    def process(self, matched):
        started = time.perf_counter()
        race = derive_race_state(matched, self.finish_km, self.stage.is_time_trial, self.params)
        log.info("race state of stage %s in %.1f s: %d group rows, %d events", matched.fixes.stage_id,
                 time.perf_counter() - started, len(race.groups), len(race.events))
        counter = beam.metrics.Metrics.counter
        counter("peloton", "group_rows").inc(len(race.groups))
        counter("peloton", "race_events").inc(len(race.events))
        table = rider_state_columns(matched, race)
        for t, idx in split_by_time(matched.fixes.t):
            yield TimestampedValue(table.take(idx), t)
        for name, cols in (("groups", race.groups), ("race_events", race.events),
                           ("virtual_standings", race.standings)):
            if len(cols):
                for t, idx in split_by_time(cols.data["event_time"] / 1000.0):
                    yield pvalue.TaggedOutput(name, TimestampedValue(cols.take(idx), t))


class DeriveRaceState(beam.PTransform):
    """Matched stages -> {'rider_state', 'groups', 'race_events', 'virtual_standings'}: Columns per tick."""

    def __init__(self, stage: Stage, params: RaceParams = RaceParams()):
        super().__init__()
        self.stage_json = stage.to_json()
        self.params = params

    def expand(self, matched):
        return matched | "RaceState" >> beam.ParDo(RaceStateFn(self.stage_json, self.params)).with_outputs(
            "groups", "race_events", "virtual_standings", main="rider_state")
