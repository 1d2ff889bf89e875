"""The live graph: Pub/Sub -> ingest (windows, late, duplicates) -> race engine -> topics and Avro files.

Same kernels as the replay; only the source and the sinks differ. Final rows
(archives, ``--out``) equal the causal replay's; provisional rows (topics
only) are the picture a second after each tick.
"""
from __future__ import annotations

import apache_beam as beam

from peloton.ingest.windowing import WINDOWING, Windowing
from peloton.match.stage import Stage
from peloton.output.tables import DEAD_LETTER, LIVE, written_by
from peloton.state.engine import EngineParams
from peloton.state.race import RaceParams
from pipelines.graph import per_table, race_tables, with_official, write_tables
from pipelines.pubsub import output_topic
from transforms.read_feed import ReadFeed
from transforms.engine import LATE, PROVISIONAL, LiveRaceState
from transforms.live import RANKINGS, FeedSecurity, IngestLive
from transforms.official import OfficialRows
from transforms.sinks import DropWrittenFn, WriteLiveAvroTable, WriteTableToBigQuery, WriteTableToPubSub

__all__ = ["build_live", "LIVE_TABLES"]

#: What the live pipeline writes, from the registry (late data is a dead letter with reason "late").
LIVE_TABLES = written_by(LIVE)
#: What it publishes provisionally too, a second after each tick (the race engine's provisional outputs).
PROVISIONAL_TABLES = ("rider_state", "groups", "predictions")


def build_live(pipeline: beam.Pipeline, stage: Stage, subscription: str, out_dir: str | None = None,
               topic_prefix: str | None = None, params: Windowing = WINDOWING,
               race_params: RaceParams = RaceParams(), security: FeedSecurity = FeedSecurity(),
               bigquery_dataset: str | None = None, bigquery_method: str = "STORAGE_WRITE_API",
               id_label: str | None = None, avro_flush_s: float = 60.0, portable: bool = False) -> dict:
    """Add the live pipeline of one stage to ``pipeline``; return its final tables as PCollections.

    ``id_label``: the attribute the runner deduplicates on (Dataflow honours
    it; None on the local runner, which reads with :mod:`transforms.read_feed`; the graph deduplicates anyway).
    ``portable``: a runner without a Pub/Sub read of its own (Flink) reads with the splittable
    :class:`transforms.read_feed.PullFeedFn` and publishes as the local runner does.
    """
    # source: the subscription, cut into tick windows (late data and duplicates set aside)
    local = id_label is None  # the local runner: our own Pub/Sub read and publish steps
    ingest = (pipeline
              | "ReadFeed" >> ReadFeed(subscription, local=local, id_label=id_label, portable=portable)
              | "IngestLive" >> IngestLive(stage.stage_id, params, security, stage.start_list(), stage.year,
                                           stage.number))
    # race state: provisional rows at once, final rows once a window has settled
    race = ingest["ticks"] | "LiveRaceState" >> LiveRaceState(stage, params.settle_s, race_params,
                                                               EngineParams.on(params))
    tables = race_tables(race, LIVE, (ingest[DEAD_LETTER], ingest[LATE], race[DEAD_LETTER], race[LATE]))
    # the organiser's result after the finish (the bridge polls it): official rows beside the provisional ones
    tables = with_official(tables, ingest[RANKINGS] | "OfficialRows" >> OfficialRows(stage))
    if out_dir:  # what an earlier run of this stage archived is not written again
        tables = per_table(tables, "DropWritten", lambda table: beam.ParDo(DropWrittenFn(out_dir, table)))
    # sinks: final rows to topics, windowed Avro files and BigQuery; provisional rows to topics only
    sinks = []
    if topic_prefix:
        sinks.append(("Publish", lambda table: WriteTableToPubSub(output_topic(topic_prefix, table), "final", local)))
        provisional = {table: race[f"{PROVISIONAL}_{table}"] for table in PROVISIONAL_TABLES}
        write_tables(provisional, [("PublishProvisional", lambda table: WriteTableToPubSub(
            output_topic(topic_prefix, table), PROVISIONAL, local))])
    if out_dir:
        sinks.append(("Write", lambda table: WriteLiveAvroTable(table, out_dir, avro_flush_s)))
    if bigquery_dataset:
        sinks.append(("BigQuery", lambda table: WriteTableToBigQuery(table, bigquery_dataset, bigquery_method)))
    write_tables(tables, sinks)
    return tables
