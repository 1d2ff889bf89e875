"""Archived feeds: official recordings (JSON, gzipped or not) and flat CSV.

Pure functions over bytes, so that the Beam source can read the file through
Beam's filesystems (local, GCS) and hand the bytes here.
"""
from __future__ import annotations

import gzip
import json
import os

__all__ = ["RecordingError", "detect_format", "decode_bytes", "load_recording", "iter_messages", "read_local",
           "read_text", "CSV_CHUNK_ROWS"]

#: Rows per message when a flat CSV is replayed (one message per chunk).
CSV_CHUNK_ROWS = 5000


class RecordingError(ValueError):
    """A recording that cannot be replayed (missing, unreadable, unknown format)."""


def decode_bytes(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise RecordingError(f"corrupt gzip data: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordingError("not UTF-8 text") from None


def detect_format(text: str) -> str:
    """'recording' for the official JSON shape, 'csv' for the flat export."""
    head = text.lstrip()[:1]
    if head == "{":
        return "recording"
    first_line = text.split("\n", 1)[0]
    if "Latitude" in first_line and "," in first_line:
        return "csv"
    raise RecordingError("unknown format: expected an official feed recording (JSON) or the flat CSV export")


def load_recording(text: str) -> dict:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RecordingError(f"unreadable JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise RecordingError("JSON without an 'events' list: not an official feed recording")
    return doc


def iter_messages(text: str, source: str = ""):
    """Yield (kind, payload) for every message of an archived feed."""
    fmt = detect_format(text)
    if fmt == "csv":
        lines = text.splitlines()
        header, body = lines[0], [ln for ln in lines[1:] if ln.strip()]
        for i in range(0, len(body), CSV_CHUNK_ROWS):
            yield "csv", "\n".join([header] + body[i:i + CSV_CHUNK_ROWS])
        return
    for event in load_recording(text)["events"]:
        payload = event.get("data") if isinstance(event, dict) else None
        if isinstance(payload, str):
            yield "tick", payload
        else:
            yield "tick", json.dumps(payload if payload is not None else event)


def read_local(path: str) -> str:
    """Read a local archive for launch-time inspection, with a clear error."""
    if not os.path.exists(path):
        raise RecordingError(f"no such file: {path}")
    try:
        with open(path, "rb") as fh:
            return decode_bytes(fh.read())
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror}") from None


def read_text(path: str) -> str:
    """A recording, course or stage file as text: a local path, or a URL of any Beam filesystem (``gs://``)."""
    if "://" not in path:
        return read_local(path)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
            return decode_bytes(fh.read())
    except Exception as exc:  # any filesystem's own error type
        raise RecordingError(f"cannot read {path}: {exc}") from None
