"""BigQuery definitions come from schemas/*.avsc, and Beam's own converter maps them back to the same Avro."""
import pytest
from apache_beam.io.gcp import bigquery_avro_tools

from peloton.output.bigquery import CLUSTERING, bigquery_row, table_schema, table_spec
from peloton.output.schemas import TABLES, load_schema

_FAMILY = {"int": "long", "long": "long", "float": "double", "double": "double", "string": "string",
           "boolean": "boolean", "timestamp-millis": "timestamp", "timestamp-micros": "timestamp"}


def _shape(ftype):
    """(nullable, repeated, type family) of an Avro field type."""
    nullable = isinstance(ftype, list) and "null" in ftype
    if isinstance(ftype, list):
        ftype = [t for t in ftype if t != "null"][0]
    repeated = isinstance(ftype, dict) and ftype.get("type") == "array"
    if repeated:
        ftype = ftype["items"]
    if isinstance(ftype, dict) and ftype.get("type") == "record":
        return nullable, repeated, tuple((f["name"], _shape(f["type"])) for f in ftype["fields"])
    if isinstance(ftype, dict):
        ftype = ftype.get("logicalType", ftype["type"])
    return nullable, repeated, _FAMILY[ftype]


@pytest.mark.parametrize("table", TABLES)
def test_the_bigquery_schema_round_trips_to_the_avro_schema(table):
    avro = load_schema(table)
    back = bigquery_avro_tools.get_record_schema_from_dict_table_schema(avro["name"], table_schema(table))
    assert [f["name"] for f in back["fields"]] == [f["name"] for f in avro["fields"]]
    for ours, theirs in zip(avro["fields"], back["fields"]):
        assert _shape(ours["type"]) == _shape(theirs["type"]), ours["name"]


@pytest.mark.parametrize("table", TABLES)
def test_tables_are_day_partitioned_on_event_time_and_clustered_on_real_columns(table):
    spec = table_spec(table)
    names = {f["name"]: f for f in spec["schema"]["fields"]}
    assert spec["timePartitioning"] == {"type": "DAY", "field": "event_time"}
    assert names["event_time"]["type"] == "TIMESTAMP"
    assert CLUSTERING[table][0] == "stage_id" and all(c in names for c in spec["clustering"]["fields"])
    assert all(names[c]["mode"] != "REPEATED" for c in spec["clustering"]["fields"])


def test_rows_take_timestamps_in_seconds():
    row = {"stage_id": "s", "event_time": 1783425600123, "group_id": 3, "bibs": [1, 2]}
    assert bigquery_row(row, "groups")["event_time"] == pytest.approx(1783425600.123)
    with pytest.raises(ValueError):
        table_spec("nope")
