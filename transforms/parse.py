"""Parse archived messages through the gate into fix batches stamped with event time; rejects to dead letter."""
from __future__ import annotations

import collections

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import TimestampedValue

from peloton.ingest.feed import FixBatch
from peloton.ingest.gate import Gate
from peloton.output.tables import DEAD_LETTER  # the tag of rejected rows is their table
from peloton.state.rows import dead_letter_columns, split_by_time

__all__ = ["ParseMessagesFn", "ParseMessages", "DEAD_LETTER"]


@beam.typehints.with_output_types(FixBatch)
class ParseMessagesFn(beam.DoFn):
    """(kind, payload, source) -> FixBatch per event time, plus dead-letter Columns.

    Every message passes the live pipeline's gate (start list, limits), so a replay sets aside what live would.
    """

    def __init__(self, gate: Gate):
        self.gate = gate
        self.rows_in = beam.metrics.Metrics.counter("peloton", "rows_in")
        self.fixes_parsed = beam.metrics.Metrics.counter("peloton", "fixes_parsed")

    def process(self, message):
        kind, payload, source = message
        fixes, letters = self.gate.admit(payload, kind=kind, source=source)
        self.rows_in.inc(len(fixes) + len(letters))
        self.fixes_parsed.inc(len(fixes))
        for t, idx in split_by_time(fixes.t):
            yield TimestampedValue(fixes.take(idx), t)
        if letters:
            for reason, n in collections.Counter(r["reason"] for r in letters).items():
                beam.metrics.Metrics.counter("peloton", f"dead_letter.{reason}").inc(n)
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(letters))


class ParseMessages(beam.PTransform):
    """Messages -> {'fixes': FixBatch per tick, 'dead_letter': Columns}, through ``gate`` (``Gate.of_stage``)."""

    def __init__(self, gate: Gate):
        super().__init__()
        self.gate = gate

    def expand(self, messages):
        return messages | "Parse" >> beam.ParDo(ParseMessagesFn(self.gate)).with_outputs(
            DEAD_LETTER, main="fixes")
