"""Sinks: every table written with its schema from ``schemas/``.

Elements are :class:`peloton.output.table.Columns` batches (one feed tick's worth):
Beam's per-element cost is paid per tick, not per row, and the Avro encoder
works on whole columns (:mod:`peloton.output.avro_columns`).
"""
from __future__ import annotations

import json
import os
import typing

import numpy as np

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.coders import BooleanCoder, PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Duration, Timestamp

from peloton.ingest import eventtime
from peloton.output.avro_columns import container_block, container_header, encode_records
from peloton.output.schemas import load_schema
from peloton.output.table import Columns
from transforms.worker_cache import once_per_pipeline, pipeline_token, publisher_client

__all__ = ["AvroColumnsSink", "WriteAvroTable", "WriteTableToPubSub", "PublishRowsFn", "WriteLiveAvroTable",
           "WriteTableToBigQuery", "DropWrittenFn"]

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
        event_time = row.get("event_time")  # ms, as the attribute carries it
        attrs = {"stage_id": str(row.get("stage_id", "")), "table": columns.table, "status": status,
                 eventtime.ATTRIBUTE: "" if event_time is None else str(event_time)}
        yield PubsubMessage(json.dumps(row, separators=(",", ":")).encode("utf-8"), attrs)


class WriteTableToPubSub(beam.PTransform):
    """Columns batches -> one JSON message per row on ``topic``, attributes stage_id, table, event_time, status.

    ``status`` is ``provisional`` (the live picture, may be revised) or
    ``final`` (what the archives keep; equals the causal replay).
    """

    def __init__(self, topic: str, status: str, local: bool = False):
        """``local``: publish from our own step (the local runner), not the runner's Pub/Sub sink (Dataflow's)."""
        super().__init__()
        self.topic, self.status, self.local = topic, status, local

    def expand(self, batches):
        status = self.status
        if self.local:
            return batches | "Publish" >> beam.ParDo(PublishRowsFn(self.topic, status))
        return (batches
                | "ToMessages" >> beam.FlatMap(_table_messages, status)
                | "Publish" >> beam.io.WriteToPubSub(self.topic, with_attributes=True))


class PublishRowsFn(beam.DoFn):
    """Columns -> its rows published on ``topic``; the bundle ends when Pub/Sub has them all.

    The local runner's own Pub/Sub sink makes a publisher client for every
    bundle, and every step of the live graph sees a bundle per pane and per
    timer (most of them empty): one client per process here, and nothing to do
    for an empty bundle.
    """

    def __init__(self, topic: str, status: str):
        self.topic, self.status = topic, status
        self.pending = []

    def start_bundle(self):
        self.pending = []

    def process(self, batch: Columns):
        client = publisher_client()
        for message in _table_messages(batch, self.status):
            self.pending.append(client.publish(self.topic, message.data, **message.attributes))

    def finish_bundle(self):
        for future in self.pending:
            future.result()
        self.pending = []


class FlushAvroFileFn(beam.DoFn):
    """(table, Columns) in the global window -> an Avro file per table every ``flush_s`` of processing time.

    Windowing the live output would drop rows that reach the sink behind
    the watermark (rows become final from the engine's timers, and a drain
    moves the watermark to the end of time), and ``fileio.WriteToFiles``
    names files without their pane, so a late pane overwrote its window's
    file. Here rows wait in state and are written every minute, and once
    more when the stream ends; a file is written under a temporary name and
    renamed when complete, its name from the event times and count it holds.
    """

    ROWS = BagStateSpec("rows", PickleCoder())
    ARMED = ReadModifyWriteStateSpec("armed", BooleanCoder())
    FLUSH = TimerSpec("flush", TimeDomain.REAL_TIME)
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def __init__(self, out_dir: str, flush_s: float = 60.0, codec: str = "deflate"):
        self.out_dir, self.flush_s, self.codec = out_dir, flush_s, codec

    def process(self, keyed, rows=beam.DoFn.StateParam(ROWS), armed=beam.DoFn.StateParam(ARMED),
                flush=beam.DoFn.TimerParam(FLUSH), end=beam.DoFn.TimerParam(END)):
        _table, batch = keyed
        if not len(batch):
            return
        rows.add(batch)
        if not armed.read():
            armed.write(True)
            flush.set(Timestamp.now() + Duration(seconds=self.flush_s))
            end.set(GlobalWindow().max_timestamp())

    @on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, rows=beam.DoFn.StateParam(ROWS), armed=beam.DoFn.StateParam(ARMED)):
        yield from self._write(key, rows, armed)

    @on_timer(END)
    def on_end(self, key=beam.DoFn.KeyParam, rows=beam.DoFn.StateParam(ROWS), armed=beam.DoFn.StateParam(ARMED)):
        yield from self._write(key, rows, armed)

    def _write(self, table, rows, armed):
        batches = list(rows.read())
        rows.clear()
        armed.clear()
        if not batches:
            return
        batch = _not_archived(self.out_dir, table, Columns.concat(batches))
        if not len(batch):
            return
        times = batch.data["event_time"]
        times = times[np.not_equal(times, None)].astype(np.int64) if times.dtype == object else times
        first, last = (int(times.min()), int(times.max())) if times.size else (0, 0)
        name = f"{table}-{first}-{last}-{len(batch)}.avro"
        final = FileSystems.join(self.out_dir, table, name)
        temp = FileSystems.join(self.out_dir, table, f".{name}.writing")
        schema, sync = load_schema(table), os.urandom(16)
        with FileSystems.create(temp) as fh:
            fh.write(container_header(schema, self.codec, sync))
            fh.write(container_block(encode_records(schema, batch.data, len(batch)), len(batch), self.codec, sync))
        if FileSystems.exists(final):  # a retried flush: the same rows again
            FileSystems.delete([final])
        FileSystems.rename([temp], [final])
        yield final


#: Row keys of the archive's complete files, read once per worker and file (a file is complete, and never
#: changes, once renamed into place): {(out_dir, table): (paths read, their rows' keys)}.
_ARCHIVED: dict[tuple, dict] = {}


def _not_archived(out_dir: str, table: str, batch: Columns) -> Columns:
    """``batch`` without the rows the archive ``OUT/<table>`` holds already, nor a key twice (the first kept).

    What makes the archive exact under a runner's replays: Flink restores a failed job to its last checkpoint
    and runs again what came after, so rows written to a file after that checkpoint come again (in other files:
    a file's name is its rows' times and count). Every row has a key (``peloton.output.tables.ROW_KEYS``): a key in a
    complete file is not written again. Without replays nothing is dropped and the files are as before.
    """
    from peloton.output.tables import row_key, written_keys

    read, archived = _ARCHIVED.setdefault((os.path.abspath(out_dir), table), (set(), set()))
    archived.update(written_keys(out_dir, table, read))
    keys = [row_key(table, r) for r in batch.to_json_rows()]
    fresh, seen = np.ones(len(keys), dtype=bool), set()
    for i, key in enumerate(keys):
        if key in archived or key in seen:
            fresh[i] = False
        seen.add(key)
    if fresh.all():
        return batch
    beam.metrics.Metrics.counter("peloton", f"already_archived.{table}").inc(int((~fresh).sum()))
    return batch.take(np.flatnonzero(fresh))


class DropWrittenFn(beam.DoFn):
    """Columns -> the rows not yet in the archive ``OUT/<table>``, read when the pipeline starts.

    A (re)started live pipeline re-derives the stage from its history; what an earlier run archived is not
    written again, to the archive or the other sinks. (A row published to a topic but not yet archived when a
    run was killed is published again: topics are at least once, keyed like the archive.)
    """

    def __init__(self, out_dir: str, table: str):
        self.out_dir, self.table = out_dir, table
        self.token = pipeline_token()  # the archive as it was when this pipeline started, read once
        self.written = None

    def setup(self):
        from peloton.output.tables import written_keys

        self.written = once_per_pipeline(self.token, f"written:{self.table}",
                                         lambda: written_keys(self.out_dir, self.table))

    def process(self, batch: Columns):
        if not self.written:
            yield batch
            return
        from peloton.output.tables import row_key

        fresh = np.array([row_key(self.table, r) not in self.written for r in batch.to_json_rows()], dtype=bool)
        dropped = int((~fresh).sum())
        if dropped:
            beam.metrics.Metrics.counter("peloton", f"already_written.{self.table}").inc(dropped)
        if fresh.all():
            yield batch
        elif fresh.any():
            yield batch.take(np.flatnonzero(fresh))


class WriteLiveAvroTable(beam.PTransform):
    """Streaming Columns batches -> ``OUT/<table>/<table>-<first ms>-<last ms>-<rows>.avro``, a file a minute."""

    def __init__(self, table: str, out_dir: str, flush_s: float = 60.0):
        super().__init__()
        self.table, self.out_dir, self.flush_s = table, out_dir, flush_s

    def expand(self, batches):
        from apache_beam.transforms import window

        table = self.table
        return (batches
                | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows())
                | "KeyByTable" >> beam.Map(lambda cols: (table, cols)).with_output_types(tuple[str, typing.Any])
                | "Flush" >> beam.ParDo(FlushAvroFileFn(self.out_dir, self.flush_s)))


class WriteTableToBigQuery(beam.PTransform):
    """Columns batches -> ``DATASET.<table>``, schema, day partitions and clustering from ``schemas/``.

    Streaming uses the Storage Write API exactly once (Beam expands it with
    its Java expansion service at graph construction, so that needs Java
    and the expansion service jar where the graph is built).
    """

    def __init__(self, table: str, dataset: str, method: str = "STORAGE_WRITE_API"):
        super().__init__()
        self.table, self.dataset, self.method = table, dataset, method

    def expand(self, batches):
        from peloton.output.bigquery import bigquery_row, table_spec

        table, spec = self.table, table_spec(self.table)
        return (batches
                | "ToRows" >> beam.FlatMap(lambda cols: [bigquery_row(r, table) for r in cols.to_json_rows()])
                | "Write" >> beam.io.WriteToBigQuery(
                    f"{self.dataset}.{table}", schema=spec["schema"],
                    additional_bq_parameters={"timePartitioning": spec["timePartitioning"],
                                              "clustering": spec["clustering"]},
                    method=self.method, create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
                    write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND))
