"""Sinks: every table written with its schema from ``schemas/``.

Elements are :class:`peloton.table.Columns` batches (one feed tick's worth):
Beam's per-element cost is paid per tick, not per row, and the Avro encoder
works on whole columns (:mod:`peloton.avro_columns`).
"""
from __future__ import annotations

import json
import os

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from peloton.avro_columns import container_block, container_header, encode_records
from peloton.schemas import load_schema
from peloton.table import Columns

__all__ = ["AvroColumnsSink", "WriteAvroTable", "WriteTableToPubSub", "WriteWindowedAvroTable"]

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


def _table_messages(columns: Columns, status: str):
    """One Pub/Sub message per row: the row as JSON (Avro field names), attributes to filter on without parsing."""
    from apache_beam.io.gcp.pubsub import PubsubMessage

    for row in columns.to_json_rows():
        event_time = row.get("event_time")
        attrs = {"stage_id": str(row.get("stage_id", "")), "table": columns.table, "status": status,
                 "event_time": "" if event_time is None else str(event_time)}
        yield PubsubMessage(json.dumps(row, separators=(",", ":")).encode("utf-8"), attrs)


class WriteTableToPubSub(beam.PTransform):
    """Columns batches -> one JSON message per row on ``topic``, attributes stage_id, table, event_time, status.

    ``status`` is ``provisional`` (the live picture, may be revised) or
    ``final`` (what the archives keep; equals the causal replay).
    """

    def __init__(self, topic: str, status: str):
        super().__init__()
        self.topic, self.status = topic, status

    def expand(self, batches):
        status = self.status
        return (batches
                | "ToMessages" >> beam.FlatMap(_table_messages, status)
                | "Publish" >> beam.io.WriteToPubSub(self.topic, with_attributes=True))


class WriteWindowedAvroTable(beam.PTransform):
    """Streaming Columns batches -> Avro files per table, one set per window of ``window_s`` of output time.

    Rows reach the sink when they are final, stamped with that time; late
    dead letters may still be behind the watermark, so late panes are kept
    (a day of allowed lateness) and written as files of their own.
    """

    def __init__(self, table: str, out_dir: str, window_s: float = 60.0):
        super().__init__()
        self.table, self.out_dir, self.window_s = table, out_dir, window_s

    def expand(self, batches):
        from apache_beam.transforms import trigger, window
        from apache_beam.utils.timestamp import Duration

        return (batches
                | "FileWindows" >> beam.WindowInto(
                    window.FixedWindows(self.window_s),
                    trigger=trigger.AfterWatermark(late=trigger.AfterProcessingTime(5)),
                    accumulation_mode=trigger.AccumulationMode.DISCARDING,
                    allowed_lateness=Duration(seconds=86400))
                | "Write" >> WriteAvroTable(self.table, self.out_dir))
