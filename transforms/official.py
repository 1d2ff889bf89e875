"""The official result as rows: checked rankings documents -> official ``results`` and ``classifications`` rows.

The gate (:meth:`peloton.ingest.gate.Gate.rankings`) has checked the document against the stage; here it becomes rows
(:func:`peloton.ingest.official.official_rows`), once: Pub/Sub delivers at least once and a restarted bridge fetches
the same document again, so a document already said (by its digest) says nothing more.
"""
from __future__ import annotations

import typing

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from peloton.ingest import eventtime
from peloton.ingest.official import official_rows
from peloton.match.stage import Stage
from peloton.output.table import Columns

__all__ = ["OfficialRows", "OfficialRowsFn", "OFFICIAL_TABLES"]

#: The tables the official result adds rows to.
OFFICIAL_TABLES = ("results", "classifications")


@beam.typehints.with_output_types(Columns)
class OfficialRowsFn(beam.DoFn):
    """(stage_id, (Rankings, event time s)) -> tagged ``results`` and ``classifications`` Columns, once per
    document (its digest, kept in state per stage)."""

    SAID = ReadModifyWriteStateSpec("said", PickleCoder())

    def __init__(self, teams: dict):
        self.teams = teams

    def process(self, keyed, said=beam.DoFn.StateParam(SAID)):
        _stage, (rankings, t) = keyed
        digests = said.read() or frozenset()
        if rankings.digest in digests:
            beam.metrics.Metrics.counter("peloton", "official.repeated").inc()
            return
        said.write(digests | {rankings.digest})
        beam.metrics.Metrics.counter("peloton", "official.documents").inc()
        for table, rows in official_rows(rankings, eventtime.ms(t), self.teams).items():
            if rows:
                yield pvalue.TaggedOutput(table, Columns.from_rows(table, rows))


class OfficialRows(beam.PTransform):
    """(Rankings, event time s) -> {'results', 'classifications'}: the stage's official rows."""

    def __init__(self, stage: Stage):
        super().__init__()
        self.teams = {int(r["bib"]): r.get("team") for r in stage.riders
                      if isinstance(r, dict) and type(r.get("bib")) is int and r.get("team")}

    def expand(self, documents):
        return (documents
                | "KeyByStage" >> beam.Map(lambda d: (d[0].stage_id, d)).with_output_types(tuple[str, typing.Any])
                | "SayOnce" >> beam.ParDo(OfficialRowsFn(self.teams)).with_outputs(*OFFICIAL_TABLES))
