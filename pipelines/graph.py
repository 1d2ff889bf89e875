"""What the replay and the live graphs share: the race state's outputs as tables, and sinks applied per table.

As in Beam's ``examples/complete/game``, the two graphs differ only at the edges. The replay reads an
archive and writes Avro files (and BigQuery); the live pipeline reads Pub/Sub and writes topics, windowed
Avro files and BigQuery. In between, each derives the tables the registry (:mod:`peloton.output.tables`) says its
pipeline writes, from the same kernels; every table's rejected rows meet in ``dead_letter``.
"""
from __future__ import annotations

from typing import Callable, Iterable

import apache_beam as beam

from peloton.output.tables import DEAD_LETTER, written_by
from transforms.official import OFFICIAL_TABLES

__all__ = ["race_tables", "per_table", "write_tables", "with_official"]


def race_tables(race, pipeline: str, rejected: Iterable) -> dict:
    """The tables ``pipeline`` (replay, causal, live) writes: the race state's outputs of the same names, and
    the dead letters of every step merged."""
    tables = {table: race[table] for table in written_by(pipeline) if table != DEAD_LETTER}
    tables[DEAD_LETTER] = tuple(rejected) | "MergeDeadLetters" >> beam.Flatten()
    return tables


def with_official(tables: dict, official) -> dict:
    """The tables with the official rows (:class:`transforms.official.OfficialRows`' outputs) added to theirs."""
    out = dict(tables)
    for table in OFFICIAL_TABLES:
        out[table] = (tables[table], official[table]) | f"WithOfficial_{table}" >> beam.Flatten()
    return out


def per_table(tables: dict, label: str, step: Callable[[str], beam.PTransform]) -> dict:
    """``step(table)`` applied to every table, labelled ``{label}_{table}`` (stable: Dataflow maps a running
    job's steps by label on update)."""
    return {table: rows | f"{label}_{table}" >> step(table) for table, rows in tables.items()}


def write_tables(tables: dict, sinks: Iterable[tuple[str, Callable[[str], beam.PTransform]]]) -> None:
    """Every table to every sink: ``(label, sink(table))`` pairs."""
    for label, sink in sinks:
        per_table(tables, label, sink)
