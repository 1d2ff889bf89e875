"""The replay graph: archive -> parse -> match -> race state -> tables. Built here, run by the caller."""
from __future__ import annotations

import apache_beam as beam

from peloton.ingest.gate import Gate
from peloton.ingest.windowing import WINDOWING, Windowing
from peloton.match.stage import Stage
from peloton.output.tables import CAUSAL, DEAD_LETTER, REPLAY
from peloton.state.engine import EngineParams
from peloton.state.race import RaceParams
from peloton.state.rows import tracker_fix_columns
from pipelines.graph import race_tables, with_official, write_tables
from transforms.engine import CausalRaceState
from transforms.match import MatchToCourse
from transforms.official import OfficialRows
from transforms.parse import ParseMessages
from transforms.race import DeriveRaceState
from transforms.read import ReadArchive
from transforms.sinks import WriteAvroTable, WriteTableToBigQuery

__all__ = ["build_replay", "ensure_table_files", "run_replay", "write_stage_file"]


def build_replay(pipeline: beam.Pipeline, stage: Stage, recording: str, out_dir: str,
                 write_fixes: bool = False, race_params: RaceParams = RaceParams(), causal: bool = False,
                 bigquery_dataset: str | None = None, bigquery_method: str = "FILE_LOADS",
                 windowing: Windowing = WINDOWING, rankings=None) -> dict:
    """Add the replay of ``recording`` to ``pipeline``; return its tables as PCollections.

    ``causal``: each window from the past only, as the live pipeline does (the tables the registry says the
    causal replay writes: the live pipeline's); otherwise with hindsight over the whole stage (every table,
    more accurate). ``rankings``: the organiser's result after the stage (:class:`peloton.ingest.official.Rankings`,
    checked), written as official rows stamped with the stage's last fix, as the live pipeline stamps them with
    the last tick the bridge saw before it fetched them.
    """
    # source: the archive, cut into feed ticks, through the live pipeline's gate (the stage's start list)
    parsed = (pipeline
              | "ReadArchive" >> ReadArchive(recording)
              | "ParseMessages" >> ParseMessages(Gate.of_stage(stage)))
    # race state: window by window from the past only, or with hindsight over the whole stage
    if causal:
        race = parsed.fixes | "CausalRaceState" >> CausalRaceState(stage, race_params, EngineParams.on(windowing))
        rejected = race[DEAD_LETTER]
    else:
        matched = parsed.fixes | "MatchToCourse" >> MatchToCourse(stage)
        race = matched.matched | "DeriveRaceState" >> DeriveRaceState(stage, race_params)
        rejected = matched[DEAD_LETTER]
    tables = race_tables(race, CAUSAL if causal else REPLAY, (parsed[DEAD_LETTER], rejected))
    if rankings is not None:
        official = (parsed.fixes
                    | "FixesLastTime" >> beam.FlatMap(lambda b: [float(b.t.max())] if len(b) else [])
                    | "LastFix" >> beam.CombineGlobally(max).without_defaults()
                    | "WithRankings" >> beam.Map(lambda t, doc: (doc, t), rankings)
                    | "OfficialRows" >> OfficialRows(stage))
        tables = with_official(tables, official)
    if write_fixes:
        tables["tracker_fix"] = parsed.fixes | "FixColumns" >> beam.Map(tracker_fix_columns)
    # sinks: Avro files, and BigQuery load jobs
    write_tables(tables, [("Write", lambda table: WriteAvroTable(table, out_dir))] + (
        [("BigQuery", lambda table: WriteTableToBigQuery(table, bigquery_dataset, bigquery_method))]
        if bigquery_dataset else []))
    return tables


def ensure_table_files(out_dir: str, tables) -> None:
    """Give every table at least one (possibly empty) Avro file, so readers always find its schema."""
    import os

    from apache_beam.io.filesystems import FileSystems

    from peloton.output.avro_columns import container_header
    from peloton.output.schemas import load_schema

    for table in tables:
        folder = FileSystems.join(out_dir, table)
        if FileSystems.match([FileSystems.join(folder, "*.avro")])[0].metadata_list:
            continue
        with FileSystems.create(FileSystems.join(folder, f"{table}-empty.avro")) as fh:
            fh.write(container_header(load_schema(table), "null", os.urandom(16)))


def run_replay(stage: Stage, recording: str, out_dir: str, beam_args: list[str], race_params: RaceParams,
               **kw) -> object:
    """Build, run and finish one replay (``peloton replay``, and each stage of ``peloton tour``): every table has
    a file, the stage spec is beside them. Returns the Beam result (its counters)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.options import with_local_runner

    args = with_local_runner(beam_args, streaming=False) + ["--recording", recording, "--out", out_dir]
    pipeline = beam.Pipeline(options=PipelineOptions(args))
    tables = build_replay(pipeline, stage, recording, out_dir, race_params=race_params, **kw)
    result = pipeline.run()
    result.wait_until_finish()
    ensure_table_files(out_dir, tables)
    write_stage_file(out_dir, stage)
    return result


def write_stage_file(out_dir: str, stage: Stage) -> None:
    """The stage spec beside its tables (``DIR/stage.json``): what ``peloton report DIR`` draws the course from."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(FileSystems.join(out_dir, "stage.json")) as fh:
        fh.write(stage.to_json().encode("utf-8"))
