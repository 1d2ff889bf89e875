"""Event time, in every form it takes between the message attribute and the output rows.

The tracker's time travels as the ``event_time`` message attribute (milliseconds since the epoch, as a
string: what Beam's ``timestamp_attribute`` reads); the kernels work in epoch seconds (floats, numpy
arrays); Beam stamps elements with a ``Timestamp``; the tables hold milliseconds (Avro's
``timestamp-millis``, which fastavro reads back as an aware ``datetime``); BigQuery takes seconds. Each
change of form is one function here, so a rounding rule is written once.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

__all__ = ["ATTRIBUTE", "ms", "ms_array", "seconds", "attribute", "from_attribute", "row_ms", "beam_timestamp"]

#: the message attribute that carries event time
ATTRIBUTE = "event_time"
#: the feed's years (2001-2286), well inside what BigQuery's TIMESTAMP and Avro's timestamp-millis hold
_ATTRIBUTE_MS_RANGE = (10**12, 10**13)


def ms(t_s: float) -> int:
    """Epoch seconds -> epoch milliseconds (rounded half to even, as :func:`ms_array`)."""
    return int(round(t_s * 1000))


def ms_array(t_s: np.ndarray) -> np.ndarray:
    """Epoch seconds -> epoch milliseconds, a column (int64)."""
    return np.round(np.asarray(t_s) * 1000.0).astype(np.int64)


def seconds(t_ms):
    """Epoch milliseconds (a number or a column) -> epoch seconds."""
    return t_ms / 1000.0


def attribute(t_s: float) -> str:
    """Epoch seconds -> the ``event_time`` attribute."""
    return str(ms(t_s))


def from_attribute(attributes: dict) -> float | None:
    """The ``event_time`` attribute in epoch seconds, or None when absent, unreadable or outside 2001-2286."""
    text = attributes.get(ATTRIBUTE)
    if not isinstance(text, str) or not text.isdigit() or len(text) > 13:
        return None
    event_ms = int(text)
    return seconds(event_ms) if _ATTRIBUTE_MS_RANGE[0] <= event_ms < _ATTRIBUTE_MS_RANGE[1] else None


def row_ms(value):
    """A row's time as read back from Avro (a ``datetime``) or as written (ms) -> epoch ms; None stays None."""
    if isinstance(value, dt.datetime):
        return ms(value.timestamp())
    return None if value is None else int(value)


def beam_timestamp(t_ms: int):
    """Epoch milliseconds -> Beam's ``Timestamp`` (an element's event time, a watermark)."""
    from apache_beam.utils.timestamp import Timestamp

    return Timestamp(micros=int(t_ms) * 1000)
