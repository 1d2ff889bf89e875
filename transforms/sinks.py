"""Sinks: every table written with its schema from ``schemas/``.

Elements are :class:`peloton.table.Columns` batches (one feed tick's worth):
Beam's per-element cost is paid per tick, not per row, and the Avro encoder
works on whole columns (:mod:`peloton.avro_columns`).
"""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from peloton.avro_columns import container_block, container_header, encode_records
from peloton.schemas import load_schema
from peloton.table import Columns

__all__ = ["AvroColumnsSink", "WriteAvroTable"]

#: Rows buffered before an Avro block is encoded and written.
BLOCK_ROWS = 50_000


class AvroColumnsSink(fileio.FileSink):
    """A ``fileio`` sink writing Columns batches into one Avro container file."""

    def __init__(self, table: str, codec: str = "deflate"):
        self.table = table
        self.codec = codec
        self._fh = None
        self._pending: list[Columns] = []
        self._pending_rows = 0

    def create_metadata(self, destination, full_file_name):
        return fileio.FileMetadata(mime_type="application/x-avro",
                                   compression_type=CompressionTypes.UNCOMPRESSED)

    def open(self, fh):
        self._schema = load_schema(self.table)
        self._sync = os.urandom(16)
        self._fh = fh
        self._pending, self._pending_rows = [], 0
        fh.write(container_header(self._schema, self.codec, self._sync))

    def write(self, columns: Columns):
        self._pending.append(columns)
        self._pending_rows += len(columns)
        if self._pending_rows >= BLOCK_ROWS:
            self._write_block()

    def _write_block(self):
        if self._pending_rows:
            batch = Columns.concat(self._pending)
            payload = encode_records(self._schema, batch.data, len(batch))
            self._fh.write(container_block(payload, len(batch), self.codec, self._sync))
        self._pending, self._pending_rows = [], 0

    def flush(self):
        self._write_block()


class WriteAvroTable(beam.PTransform):
    """Columns batches -> ``OUT/<table>/<table>-*.avro``, windowed when the input is."""

    def __init__(self, table: str, out_dir: str):
        super().__init__()
        self.table = table
        self.out_dir = out_dir

    def expand(self, batches):
        table = self.table
        return (batches
                | "DropEmpty" >> beam.Filter(len)
                | "WriteFiles" >> fileio.WriteToFiles(
                    path=FileSystems.join(self.out_dir, table),
                    file_naming=fileio.default_file_naming(prefix=table, suffix=".avro"),
                    sink=lambda _dest: AvroColumnsSink(table),
                    shards=1))
