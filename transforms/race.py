"""Race state (gaps, groups, events) from a stage's matched fixes: the hindsight kernel, stamped with event time."""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import TimestampedValue

from peloton.match.stage import Stage
from peloton.output.table import Columns
from peloton.state.classifications import StageClassifier
from peloton.state.hindsight import HINDSIGHT_TABLES, stage_in_hindsight
from peloton.state.race import RaceParams
from peloton.state.rows import split_by_time
from transforms.worker_cache import stage_model

__all__ = ["RaceStateFn", "DeriveRaceState"]

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
        rider_state, tables = stage_in_hindsight(matched, self.stage, self.forecast, self.finish_km, self.classifier,
                                                 self.params)
        counter = beam.metrics.Metrics.counter
        counter("peloton", "group_rows").inc(len(tables["groups"]))
        counter("peloton", "race_events").inc(len(tables["race_events"]))
        counter("peloton", "predictions").inc(len(tables["predictions"]))
        for t, idx in split_by_time(matched.fixes.t):
            yield TimestampedValue(rider_state.take(idx), t)
        for name, cols in tables.items():
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
            *HINDSIGHT_TABLES, main="rider_state")
