"""Columnar table batches: the element type that flows between pipeline steps.

A batch holds one table's rows as parallel columns (numpy arrays), so that the
kernels stay vectorised, Beam pays its per-element cost once per feed tick,
and the Avro sink encodes whole columns at once. Nullable doubles are nan;
other nullable columns are object arrays holding None.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peloton.output.schemas import load_schema

__all__ = ["Columns"]


@dataclass
class Columns:
    table: str
    data: dict

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def take(self, idx) -> "Columns":
        return Columns(self.table, {k: v[idx] for k, v in self.data.items()})

    def to_rows(self) -> list[dict]:
        """Rows as dicts with None for nulls (JSON payloads, tests)."""
        names = list(self.data)
        cols = []
        for name in names:
            values = self.data[name]
            if values.dtype.kind == "f":
                cols.append([None if v != v else v for v in values.tolist()])
            else:
                cols.append(values.tolist())
        return [dict(zip(names, row)) for row in zip(*cols)]

    def to_json_rows(self) -> list[dict]:
        """Rows as the schema types them: a nullable long kept as a float column (nan = null) becomes an int."""
        ints = [f["name"] for f in load_schema(self.table)["fields"] if _base_type(f["type"]) in ("int", "long")]
        rows = self.to_rows()
        for name in ints:
            if name in self.data and self.data[name].dtype.kind == "f":
                for r in rows:
                    if r[name] is not None:
                        r[name] = int(r[name])
        return rows

    @classmethod
    def from_rows(cls, table: str, rows: list[dict]) -> "Columns":
        """Rows (dicts) -> columns typed from the table's schema."""
        data = {}
        for field in load_schema(table)["fields"]:
            name, ftype = field["name"], field["type"]
            values = [r.get(name) for r in rows]
            base = _base_type(ftype)
            nullable = isinstance(ftype, list)
            if base in ("double", "float"):
                data[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
            elif base in ("int", "long") and not nullable:
                data[name] = np.array(values, dtype=np.int64)
            else:
                arr = np.empty(len(values), dtype=object)
                arr[:] = values
                data[name] = arr
        return cls(table, data)

    @classmethod
    def concat(cls, batches: list["Columns"]) -> "Columns":
        full = [b for b in batches if len(b)]
        if len(full) <= 1:
            return full[0] if full else batches[0]
        batches = full
        return cls(batches[0].table, {k: np.concatenate([b.data[k] for b in batches]) for k in batches[0].data})


def _base_type(ftype):
    """'long' for "long", ["null", "long"] and {"type": "long", "logicalType": ...}."""
    base = [t for t in ftype if t != "null"][0] if isinstance(ftype, list) else ftype
    return base.get("type") if isinstance(base, dict) else base
