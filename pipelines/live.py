"""The live graph: Pub/Sub -> ingest (windows, late, duplicates) -> race engine -> topics and Avro files.

Same kernels as the replay; only the source and the sinks differ. Final rows
(archives, ``--out``) equal the causal replay's; provisional rows (topics
only) are the picture a second after each tick.
"""
from __future__ import annotations

import apache_beam as beam

from peloton.race import RaceParams
from peloton.stage import Stage
from pipelines.pubsub import output_topic
from transforms.read_feed import ReadFeed
from transforms.engine import DEAD_LETTER, LATE, PROVISIONAL, LiveRaceState
from transforms.live import FeedSecurity, IngestLive, LiveParams
from transforms.sinks import DropWrittenFn, WriteLiveAvroTable, WriteTableToBigQuery, WriteTableToPubSub

__all__ = ["build_live", "LIVE_TABLES"]

#: What the live pipeline writes (late data is a dead letter with reason "late").
LIVE_TABLES = ("rider_state", "groups", "predictions", "race_events", "results", "virtual_standings",
               "climb_efforts", "dead_letter")


def build_live(pipeline: beam.Pipeline, stage: Stage, subscription: str, out_dir: str | None = None,
               topic_prefix: str | None = None, params: LiveParams = LiveParams(),
               race_params: RaceParams = RaceParams(), security: FeedSecurity = FeedSecurity(),
               bigquery_dataset: str | None = None, bigquery_method: str = "STORAGE_WRITE_API",
               id_label: str | None = None, avro_flush_s: float = 60.0) -> dict:
    """Add the live pipeline of one stage to ``pipeline``; return its final tables as PCollections.

    ``id_label``: the attribute the runner deduplicates on (Dataflow honours
    it; None on the local runner, which reads with :mod:`transforms.read_feed`; the graph deduplicates anyway).
    """
    messages = pipeline | "ReadFeed" >> ReadFeed(subscription, local=id_label is None, id_label=id_label)
    ingest = messages | "IngestLive" >> IngestLive(stage.stage_id, params, security, stage.start_list())
    race = ingest["ticks"] | "LiveRaceState" >> LiveRaceState(stage, params.allowed_lateness_s + params.window_s,
                                                               race_params)
    tables = {
        "rider_state": race.rider_state,
        "groups": race.groups,
        "predictions": race.predictions,
        "race_events": race.race_events,
        "results": race.results,
        "virtual_standings": race.virtual_standings,
        "climb_efforts": race.climb_efforts,
        "dead_letter": (ingest[DEAD_LETTER], ingest[LATE], race[DEAD_LETTER], race[LATE])
        | "MergeDeadLetters" >> beam.Flatten(),
    }
    if out_dir:  # what an earlier run of this stage archived is not written again
        tables = {table: rows | f"DropWritten_{table}" >> beam.ParDo(DropWrittenFn(out_dir, table))
                  for table, rows in tables.items()}
    if topic_prefix:
        for table, rows in tables.items():
            rows | f"Publish_{table}" >> WriteTableToPubSub(output_topic(topic_prefix, table), "final")
        for table in ("rider_state", "groups", "predictions"):
            (race[f"{PROVISIONAL}_{table}"]
             | f"PublishProvisional_{table}" >> WriteTableToPubSub(output_topic(topic_prefix, table), PROVISIONAL))
    if out_dir:
        for table, rows in tables.items():
            rows | f"Write_{table}" >> WriteLiveAvroTable(table, out_dir, avro_flush_s)
    if bigquery_dataset:
        for table, rows in tables.items():
            rows | f"BigQuery_{table}" >> WriteTableToBigQuery(table, bigquery_dataset, bigquery_method)
    return tables
