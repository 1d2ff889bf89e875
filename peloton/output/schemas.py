"""Load the table schemas shipped in the ``schemas`` package."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import fastavro

from peloton.output.tables import table_names

__all__ = ["TABLES", "load_schema", "parsed_schema"]

#: Every table's name (the registry, :mod:`peloton.output.tables`, says who writes it).
TABLES = table_names()


@lru_cache(maxsize=None)
def load_schema(table: str) -> dict:
    """The JSON schema of ``table`` (``schemas/<table>.avsc``)."""
    text = resources.files("schemas").joinpath(f"{table}.avsc").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def parsed_schema(table: str):
    return fastavro.parse_schema(load_schema(table))


def field_names(table: str) -> list[str]:
    return [f["name"] for f in load_schema(table)["fields"]]
