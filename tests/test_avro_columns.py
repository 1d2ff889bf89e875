import io

import fastavro
import numpy as np

from peloton.output.avro_columns import write_container
from peloton.output.schemas import TABLES, load_schema
from peloton.output.table import Columns

SCHEMA = {
    "type": "record", "name": "T", "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "d", "type": "double"},
        {"name": "nd", "type": ["null", "double"], "default": None},
        {"name": "nl", "type": ["null", "long"], "default": None},
        {"name": "ns", "type": ["null", "string"], "default": None},
        {"name": "b", "type": "boolean"},
    ]}


def _round_trip(schema, columns, n, codec):
    buf = io.BytesIO()
    write_container(buf, schema, [(columns, n)], codec=codec)
    buf.seek(0)
    return list(fastavro.reader(buf, return_record_name=False))


def test_vectorised_encoding_reads_back_identically_with_fastavro():
    rng = np.random.default_rng(1)
    n = 5000
    ints = rng.integers(-2**31, 2**31 - 1, n)
    ints[:6] = [0, -1, 1, 63, -64, 2**31 - 1]
    longs = rng.integers(0, 4_000_000_000_000, n)  # timestamp-millis: years 1970-2096
    nd = rng.normal(size=n)
    nd[rng.random(n) < 0.3] = np.nan
    nl = np.array([None if k % 3 == 0 else int(k) * 1_000_003 for k in range(n)], dtype=object)
    words = ["", "peloton", "échappée", "Montségur ⛰", "x" * 300]
    s = np.array([words[k % len(words)] for k in range(n)], dtype=object)
    ns = np.array([None if k % 4 == 0 else words[k % len(words)] for k in range(n)], dtype=object)
    cols = {"s": s, "i": ints, "l": longs, "d": rng.normal(size=n) * 1e6, "nd": nd, "nl": nl, "ns": ns,
            "b": rng.random(n) < 0.5}
    for codec in ("null", "deflate"):
        back = _round_trip(SCHEMA, cols, n, codec)
        assert len(back) == n
        assert [r["i"] for r in back] == ints.tolist()
        assert [round(r["l"].timestamp() * 1000) for r in back] == longs.tolist()
        assert [r["d"] for r in back] == cols["d"].tolist()
        assert [r["nd"] for r in back] == [None if v != v else v for v in nd.tolist()]
        assert [r["nl"] for r in back] == nl.tolist()
        assert [r["s"] for r in back] == s.tolist()
        assert [r["ns"] for r in back] == ns.tolist()
        assert [r["b"] for r in back] == cols["b"].tolist()


def test_long_values_round_trip_exactly():
    schema = {"type": "record", "name": "L", "fields": [{"name": "l", "type": "long"}]}
    values = np.array([0, 1, -1, 2**63 - 1, -2**63, 1783420242000, -1783420242000], dtype=np.int64)
    back = _round_trip(schema, {"l": values}, values.size, "null")
    assert [r["l"] for r in back] == values.tolist()


def test_every_table_schema_is_encodable_from_rows():
    for table in TABLES:
        schema = load_schema(table)
        fastavro.parse_schema(schema)
        row = {}
        for f in schema["fields"]:
            t = f["type"]
            base = [x for x in t if x != "null"][0] if isinstance(t, list) else t
            base = base["type"] if isinstance(base, dict) else base
            row[f["name"]] = {"string": "a", "int": 7, "long": 1783420242000, "double": 1.5, "array": []}.get(base)
        cols = Columns.from_rows(table, [row, row])
        back = _round_trip(schema, cols.data, 2, "deflate")
        assert len(back) == 2 and back[0]["stage_id"] == "a"


def test_arrays_of_records_are_encoded_by_fastavro_and_read_back():
    checkpoint = {"name": "Col", "kind": "summit", "category": "2", "km_to_finish": 35.2, "eta": 1783437000000,
                  "eta_low": 1783436000000, "eta_high": 1783438000000}
    row = {"stage_id": "s", "event_time": 1783420242000, "group_id": 4, "rank": 1, "label": "breakaway", "size": 2,
           "km_to_finish": 40.0, "power_wkg": 5.1, "eta_finish": 1783438711000, "eta_finish_low": 1783438000000,
           "eta_finish_high": 1783439000000, "catch_probability": None, "headwind_kph": -3.0, "crosswind_kph": 1.5,
           "checkpoints": [checkpoint, {**checkpoint, "name": "finish", "kind": "finish", "category": ""}]}
    cols = Columns.from_rows("predictions", [row, {**row, "checkpoints": [], "catch_probability": 0.25}])
    back = _round_trip(load_schema("predictions"), cols.data, 2, "deflate")
    assert [c["name"] for c in back[0]["checkpoints"]] == ["Col", "finish"] and back[1]["checkpoints"] == []
    assert back[0]["catch_probability"] is None and back[1]["catch_probability"] == 0.25
    assert back[0]["checkpoints"][0]["eta"].timestamp() == 1783437000


def test_int_arrays_round_trip():
    schema = {"type": "record", "name": "A", "fields": [
        {"name": "bibs", "type": {"type": "array", "items": "int"}},
        {"name": "ids", "type": {"type": "array", "items": "long"}}]}
    bibs = np.empty(4, dtype=object)
    bibs[:] = [[1, 2, 3], [], [200, -5], list(range(100))]
    ids = np.empty(4, dtype=object)
    ids[:] = [[2**40], [7], [], [0]]
    back = _round_trip(schema, {"bibs": bibs, "ids": ids}, 4, "deflate")
    assert [r["bibs"] for r in back] == [list(b) for b in bibs]
    assert [r["ids"] for r in back] == [list(i) for i in ids]
