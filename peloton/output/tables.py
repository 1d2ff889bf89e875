"""The tables registry: every table the pipelines write, in one place.

For each table: its name (which names its schema, ``schemas/<name>.avsc``, its Avro folder and its
Pub/Sub topic), which pipelines write it, the BigQuery clustering, and its row key. The replay and live
graphs, ``pubsub init``, ``live``, ``serve``, ``report`` and the BigQuery sink all read it: a new table, or
a table that becomes live, is one line here.

A row's key is its event time and the key fields: a restarted live pipeline re-derives rows it may have
written already, and two rows with one key are one row written twice.
"""
from __future__ import annotations

import datetime as dt
import glob
import os
from dataclasses import dataclass

from peloton.ingest.eventtime import row_ms

__all__ = ["Table", "TABLES", "REPLAY", "CAUSAL", "LIVE", "EVERY_PIPELINE", "HINDSIGHT_ONLY", "table_of",
           "table_names", "written_by", "drawn", "DEAD_LETTER", "ROW_KEYS", "row_key", "written_keys"]

#: The pipelines: the replay with hindsight, the causal replay (each window from the past only), the live one.
REPLAY, CAUSAL, LIVE = "replay", "causal", "live"
#: Written by every pipeline (the causal replay's final rows equal the live pipeline's).
EVERY_PIPELINE = frozenset({REPLAY, CAUSAL, LIVE})
#: Written only by the replay with hindsight (not yet derived window by window).
HINDSIGHT_ONLY = frozenset({REPLAY})
#: The dead-letter table: also the tag of every transform's rejected rows.
DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Table:
    name: str
    #: the pipelines that write it: one field to flip when a table becomes live
    pipelines: frozenset
    #: BigQuery clustering columns (stage first: one pipeline per stage, readers ask for a stage)
    clustering: tuple
    #: what identifies a row beside its event time
    key: tuple
    #: the replay report and the live page draw it
    drawn: bool = True
    #: written only when asked for (``replay --write-fixes``)
    on_request: bool = False

    @property
    def schema_file(self) -> str:
        return f"schemas/{self.name}.avsc"

    def topic(self, prefix: str) -> str:
        """Its Pub/Sub topic under ``--output-topic-prefix``: ``PREFIX-rider-state``."""
        return f"{prefix}-{self.name.replace('_', '-')}"


TABLES = (
    Table("rider_state", EVERY_PIPELINE, ("stage_id", "bib"), ("bib",)),
    Table("groups", EVERY_PIPELINE, ("stage_id", "group_id"), ("group_id",)),
    Table("race_events", EVERY_PIPELINE, ("stage_id", "event_type"), ("event_type", "bibs", "group_ids")),
    Table("virtual_standings", EVERY_PIPELINE, ("stage_id", "bib"), ("bib", "km")),
    Table("predictions", EVERY_PIPELINE, ("stage_id", "group_id"), ("group_id",)),
    Table("climb_efforts", EVERY_PIPELINE, ("stage_id", "climb", "bib"), ("bib", "climb")),
    # results and classifications: a provisional row (the trackers') and an official one (the organiser's) of one
    # rider are two rows; a consumer takes, per (stage_id, bib[, classification]), the official one where it is
    Table("results", EVERY_PIPELINE, ("stage_id", "bib"), ("bib", "source")),
    Table("classifications", EVERY_PIPELINE, ("stage_id", "classification"), ("classification", "bib", "team", "source")),
    Table(DEAD_LETTER, EVERY_PIPELINE, ("stage_id", "reason"), ("reason", "bib", "raw"), drawn=False),
    Table("tracker_fix", frozenset({REPLAY, CAUSAL}), ("stage_id", "bib"), ("bib",), drawn=False, on_request=True),
)
_BY_NAME = {t.name: t for t in TABLES}


def table_of(name: str) -> Table:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}") from None


def table_names() -> tuple:
    """Every table, in the registry's order."""
    return tuple(_BY_NAME)


def written_by(pipeline: str, on_request: bool = False) -> tuple:
    """Names of the tables ``pipeline`` (replay, causal, live) writes; ``on_request``: with those asked for."""
    return tuple(t.name for t in TABLES if pipeline in t.pipelines and (on_request or not t.on_request))


def drawn(pipeline: str | None = None) -> tuple:
    """Names of the tables the report (or, with ``pipeline``, the page fed by that pipeline) draws."""
    return tuple(t.name for t in TABLES if t.drawn and (pipeline is None or pipeline in t.pipelines))


#: Row key fields per table (beside the event time).
ROW_KEYS = {t.name: t.key for t in TABLES}


def _plain(value):
    if isinstance(value, dt.datetime):
        return row_ms(value)
    if isinstance(value, list):
        return tuple(value)
    return value


def row_key(table: str, row: dict) -> tuple:
    return (_plain(row.get("event_time")),) + tuple(_plain(row.get(f)) for f in ROW_KEYS[table])


def written_keys(out_dir: str, table: str, read: set | None = None) -> set:
    """Keys of the rows already in ``out_dir/<table>/*.avro`` (complete files only: a file is renamed into
    place once written, and never changes). ``read``: paths already read, skipped; those read now join it."""
    import fastavro

    keys = set()
    for path in sorted(glob.glob(os.path.join(out_dir, table, "*.avro"))):
        if read is not None and path in read:
            continue
        with open(path, "rb") as fh:
            keys.update(row_key(table, r) for r in fastavro.reader(fh))
        if read is not None:
            read.add(path)
    return keys
