"""Parse raw messages into fix batches stamped with event time; rejects to dead letter."""
from __future__ import annotations

import collections

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import TimestampedValue

from peloton.feed import FixBatch, parse_message
from peloton.rows import dead_letter_columns, split_by_time
from peloton.tables import DEAD_LETTER  # the tag of rejected rows is their table

__all__ = ["ParseMessagesFn", "ParseMessages", "DEAD_LETTER"]


@beam.typehints.with_output_types(FixBatch)
class ParseMessagesFn(beam.DoFn):
    """(kind, payload, source) -> FixBatch per event time, plus dead-letter Columns."""

    def __init__(self, stage_id: str):
        self.stage_id = stage_id
        self.rows_in = beam.metrics.Metrics.counter("peloton", "rows_in")
        self.fixes_parsed = beam.metrics.Metrics.counter("peloton", "fixes_parsed")

    def process(self, message):
        kind, payload, source = message
        fixes, letters = parse_message(self.stage_id, kind, payload, source)
        self.rows_in.inc(len(fixes) + len(letters))
        self.fixes_parsed.inc(len(fixes))
        for t, idx in split_by_time(fixes.t):
            yield TimestampedValue(fixes.take(idx), t)
        if letters:
            for reason, n in collections.Counter(r["reason"] for r in letters).items():
                beam.metrics.Metrics.counter("peloton", f"dead_letter.{reason}").inc(n)
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(letters))


class ParseMessages(beam.PTransform):
    """Messages -> {'fixes': FixBatch per tick, 'dead_letter': Columns}."""

    def __init__(self, stage_id: str):
        super().__init__()
        self.stage_id = stage_id

    def expand(self, messages):
        return messages | "Parse" >> beam.ParDo(ParseMessagesFn(self.stage_id)).with_outputs(
            DEAD_LETTER, main="fixes")
