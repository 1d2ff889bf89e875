"""What identifies a row of each table: a restarted live pipeline re-derives rows it may have written already.

A row's key is its event time and these fields; two rows with one key are one row written twice.
"""
from __future__ import annotations

import datetime as dt
import glob
import os

__all__ = ["ROW_KEYS", "row_key", "written_keys"]

ROW_KEYS = {
    "rider_state": ("bib",),
    "groups": ("group_id",),
    "predictions": ("group_id",),
    "race_events": ("event_type", "bibs", "group_ids"),
    "virtual_standings": ("bib", "km"),
    "climb_efforts": ("bib", "climb"),
    "results": ("bib",),
    "dead_letter": ("reason", "bib", "raw"),
    "tracker_fix": ("bib",),
}


def _plain(value):
    if isinstance(value, dt.datetime):
        return int(round(value.timestamp() * 1000))
    if isinstance(value, list):
        return tuple(value)
    return value


def row_key(table: str, row: dict) -> tuple:
    return (_plain(row.get("event_time")),) + tuple(_plain(row.get(f)) for f in ROW_KEYS[table])


def written_keys(out_dir: str, table: str) -> set:
    """Keys of the rows already in ``out_dir/<table>/*.avro`` (complete files only: a file is renamed into
    place once written)."""
    import fastavro

    keys = set()
    for path in sorted(glob.glob(os.path.join(out_dir, table, "*.avro"))):
        with open(path, "rb") as fh:
            keys.update(row_key(table, r) for r in fastavro.reader(fh))
    return keys
