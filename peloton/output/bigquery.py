"""BigQuery table definitions generated from ``schemas/*.avsc``: one source of truth for every sink.

Avro -> BigQuery: string STRING, int/long INTEGER, float/double FLOAT,
boolean BOOLEAN, long timestamp-millis TIMESTAMP, a record RECORD, a union
with null NULLABLE, an array REPEATED. Tables are partitioned by day of event time
and clustered on what readers filter by: the stage, then the rider or the
group.
"""
from __future__ import annotations

from peloton.ingest.eventtime import seconds
from peloton.output.schemas import load_schema
from peloton.output.tables import TABLES, table_of

__all__ = ["table_schema", "table_spec", "CLUSTERING", "bigquery_row"]

#: Clustering columns per table, from the registry (stage first: one pipeline per stage, readers ask for a stage).
CLUSTERING = {t.name: list(t.clustering) for t in TABLES}

_PRIMITIVE = {"string": "STRING", "int": "INTEGER", "long": "INTEGER", "float": "FLOAT", "double": "FLOAT",
              "boolean": "BOOLEAN", "bytes": "BYTES"}


def _field(field: dict) -> dict:
    ftype, mode = field["type"], "REQUIRED"
    if isinstance(ftype, list):
        others = [t for t in ftype if t != "null"]
        if len(others) != 1:
            raise ValueError(f"field {field['name']}: only unions of null and one type map to BigQuery")
        ftype, mode = others[0], "NULLABLE"
    if isinstance(ftype, dict) and ftype.get("type") == "array":
        ftype, mode = ftype["items"], "REPEATED"
    nested = None
    if isinstance(ftype, dict) and ftype.get("type") == "record":
        bq, nested = "RECORD", [_field(f) for f in ftype["fields"]]
    elif isinstance(ftype, dict):
        bq = "TIMESTAMP" if ftype.get("logicalType") == "timestamp-millis" else _PRIMITIVE[ftype["type"]]
    else:
        bq = _PRIMITIVE[ftype]
    out = {"name": field["name"], "type": bq, "mode": mode}
    if nested:
        out["fields"] = nested
    if field.get("doc"):
        out["description"] = field["doc"][:1024]
    return out


def table_schema(table: str) -> dict:
    """``{"fields": [...]}`` as BigQuery's API (and Beam's WriteToBigQuery) takes it."""
    return {"fields": [_field(f) for f in load_schema(table)["fields"]]}


def table_spec(table: str) -> dict:
    """What BigQuery needs to create the table: schema, day partitions on event time, clustering."""
    clustering = list(table_of(table).clustering)  # an unknown table is a ValueError
    return {"schema": table_schema(table),
            "timePartitioning": {"type": "DAY", "field": "event_time"},
            "clustering": {"fields": clustering}}


def bigquery_row(row: dict, table: str) -> dict:
    """A JSON row (Avro field names, event times in ms) as BigQuery takes it: timestamps in seconds."""
    return _seconds(row, table_schema(table)["fields"])


def _seconds(row: dict, fields: list[dict]) -> dict:
    out = dict(row)
    for field in fields:
        value = out.get(field["name"])
        if value is None:
            continue
        if field["type"] == "TIMESTAMP":
            out[field["name"]] = seconds(value)
        elif field["type"] == "RECORD":
            out[field["name"]] = ([_seconds(v, field["fields"]) for v in value] if field["mode"] == "REPEATED"
                                  else _seconds(value, field["fields"]))
    return out
