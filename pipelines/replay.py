"""The replay graph: archive -> parse -> match -> race state -> tables. Built here, run by the caller."""
from __future__ import annotations

import apache_beam as beam

from peloton.race import RaceParams
from peloton.stage import Stage
from transforms.engine import CausalRaceState
from transforms.match import MatchToCourse
from transforms.parse import DEAD_LETTER, ParseMessages
from transforms.race import DeriveRaceState
from transforms.read import ReadArchive
from transforms.sinks import WriteAvroTable, WriteTableToBigQuery

__all__ = ["build_replay", "ensure_table_files"]


def build_replay(pipeline: beam.Pipeline, stage: Stage, recording: str, out_dir: str,
                 write_fixes: bool = False, race_params: RaceParams = RaceParams(), causal: bool = False,
                 bigquery_dataset: str | None = None, bigquery_method: str = "FILE_LOADS") -> dict:
    """Add the replay of ``recording`` to ``pipeline``; return its tables as PCollections.

    ``causal``: each window from the past only, as the live pipeline does
    (rider_state, groups, predictions, race_events of groups, results, dead_letter); otherwise with
    hindsight over the whole stage (all tables, more accurate).
    """
    messages = pipeline | "ReadArchive" >> ReadArchive(recording)
    parsed = messages | "ParseMessages" >> ParseMessages(stage.stage_id)
    if causal:
        race = parsed.fixes | "CausalRaceState" >> CausalRaceState(stage, race_params)
        tables = {"rider_state": race.rider_state, "groups": race.groups, "predictions": race.predictions,
                  "race_events": race.race_events, "results": race.results,
                  "virtual_standings": race.virtual_standings, "climb_efforts": race.climb_efforts,
                  "dead_letter": (parsed[DEAD_LETTER], race[DEAD_LETTER]) | "MergeDeadLetters" >> beam.Flatten()}
    else:
        matched = parsed.fixes | "MatchToCourse" >> MatchToCourse(stage)
        race = matched.matched | "DeriveRaceState" >> DeriveRaceState(stage, race_params)
        tables = {
            "rider_state": race.rider_state,
            "groups": race.groups,
            "race_events": race.race_events,
            "virtual_standings": race.virtual_standings,
            "predictions": race.predictions,
            "climb_efforts": race.climb_efforts,
            "results": race.results,
            "dead_letter": (parsed[DEAD_LETTER], matched[DEAD_LETTER]) | "MergeDeadLetters" >> beam.Flatten(),
        }
    if write_fixes:
        from peloton.rows import tracker_fix_columns
        tables["tracker_fix"] = parsed.fixes | "FixColumns" >> beam.Map(tracker_fix_columns)
    for table, rows in tables.items():
        rows | f"Write_{table}" >> WriteAvroTable(table, out_dir)
        if bigquery_dataset:
            rows | f"BigQuery_{table}" >> WriteTableToBigQuery(table, bigquery_dataset, bigquery_method)
    return tables


def ensure_table_files(out_dir: str, tables) -> None:
    """Give every table at least one (possibly empty) Avro file, so readers always find its schema."""
    import os

    from apache_beam.io.filesystems import FileSystems

    from peloton.avro_columns import container_header
    from peloton.schemas import load_schema

    for table in tables:
        folder = FileSystems.join(out_dir, table)
        if FileSystems.match([FileSystems.join(folder, "*.avro")])[0].metadata_list:
            continue
        with FileSystems.create(FileSystems.join(folder, f"{table}-empty.avro")) as fh:
            fh.write(container_header(load_schema(table), "null", os.urandom(16)))
