"""Map-match a stage's fixes to its course, with each rider's whole history (batch)."""
from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam import pvalue

from peloton.ingest.feed import concat_batches
from peloton.match.matching import Matched, MatchParams, match_fixes
from peloton.match.stage import Stage
from peloton.state.rows import dead_letter_columns, rejected_dead_letters
from transforms.parse import DEAD_LETTER
from transforms.worker_cache import stage_model

__all__ = ["MatchStageFn", "MatchToCourse"]

log = logging.getLogger("peloton")


@beam.typehints.with_output_types(Matched)
class MatchStageFn(beam.DoFn):
    """(stage_id, [FixBatch]) -> the stage's Matched fixes, plus dead-letter Columns."""

    def __init__(self, stage_json: str, params: MatchParams = MatchParams()):
        self.stage_json = stage_json
        self.params = params
        self.course = None

    def setup(self):
        _stage, self.course, _model = stage_model(self.stage_json)

    def process(self, keyed):
        stage_id, batches = keyed
        fixes = concat_batches(list(batches), stage_id)
        started = time.perf_counter()
        matched, rejected, n_dupes = match_fixes(fixes, self.course, self.params)
        log.info("matched %d fixes of stage %s in %.1f s", len(matched), stage_id, time.perf_counter() - started)
        counter = beam.metrics.Metrics.counter
        counter("peloton", "duplicates_removed").inc(n_dupes)
        counter("peloton", "fixes_matched").inc(len(matched))
        for batch, reason, detail in rejected:
            counter("peloton", f"dead_letter.{reason}").inc(len(batch))
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(
                rejected_dead_letters(stage_id, [(batch, reason, detail)])))
        yield matched


class MatchToCourse(beam.PTransform):
    """FixBatches -> {'matched': one Matched per stage, 'dead_letter': Columns}.

    Batch replay gathers a whole stage in one place: the matcher needs each
    rider's history, and riders are matched together, vectorised.
    """

    def __init__(self, stage: Stage, params: MatchParams = MatchParams()):
        super().__init__()
        self.stage_json = stage.to_json()
        self.params = params

    def expand(self, fixes):
        return (fixes
                | "KeyByStage" >> beam.Map(lambda b: (b.stage_id, b))
                | "GatherStage" >> beam.GroupByKey()
                | "Match" >> beam.ParDo(MatchStageFn(self.stage_json, self.params)).with_outputs(
                    DEAD_LETTER, main="matched"))
