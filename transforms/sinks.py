"""Sinks: every table written with its schema from ``schemas/``."""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.io.avroio import WriteToAvro

from peloton.schemas import load_schema

__all__ = ["WriteAvroTable"]


class WriteAvroTable(beam.PTransform):
    """Lists of rows -> ``OUT/<table>/<table>-SSSSS-of-NNNNN.avro``."""

    def __init__(self, table: str, out_dir: str):
        super().__init__()
        self.table = table
        self.out_dir = out_dir

    def expand(self, row_lists):
        prefix = os.path.join(self.out_dir, self.table, self.table)
        return (row_lists
                | "Rows" >> beam.FlatMap(lambda rows: rows)
                | "WriteAvro" >> WriteToAvro(prefix, schema=load_schema(self.table), file_name_suffix=".avro"))
