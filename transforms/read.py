"""Sources: archived feeds read through Beam's filesystems (local or cloud)."""
from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from peloton.ingest.recording import decode_bytes, iter_messages

__all__ = ["ReadArchive", "read_archive_messages"]

log = logging.getLogger("peloton")


def read_archive_messages(path: str):
    """Yield (kind, payload, source) for each message of an archive, logging progress."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        text = decode_bytes(fh.read())
    messages = list(iter_messages(text))
    del text
    step = max(1, len(messages) // 10)
    for i, (kind, payload) in enumerate(messages):
        if i % step == 0:
            log.info("reading %s: message %d of %d", path, i, len(messages))
        yield kind, payload, path
    beam.metrics.Metrics.counter("peloton", "messages_read").inc(len(messages))


class ReadArchive(beam.PTransform):
    """An archived feed (official recording or flat CSV) as (kind, payload, source) messages."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, pbegin):
        return (pbegin
                | "ArchivePath" >> beam.Create([self.path])
                | "ReadMessages" >> beam.FlatMap(read_archive_messages))
