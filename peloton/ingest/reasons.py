"""Dead-letter reason codes: one list for every step that sets a row aside (stable strings: downstream consumers
filter on them). Late data is a dead letter too, and ``late`` is also the tag of its rows in the Beam graphs."""
from __future__ import annotations

__all__ = ["Reason", "KNOWN_REASONS"]


class Reason:
    """Why a message or a fix was set aside."""

    # the gate, before parsing (peloton.ingest.auth)
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"  # tampered, or signed with another key
    REPLAYED = "replayed"
    STALE = "stale"  # signed, but older than replay protection remembers
    TOO_LARGE = "too_large"
    BAD_ATTRIBUTE = "bad_attribute"
    # parsing (peloton.ingest.feed)
    MALFORMED_JSON = "malformed_json"
    BAD_SHAPE = "bad_shape"
    MISSING_FIELD = "missing_field"
    BAD_VALUE = "bad_value"
    IMPOSSIBLE_COORDINATES = "impossible_coordinates"
    PLACEHOLDER_POSITION = "placeholder_position"
    UNKNOWN_RIDER = "unknown_rider"  # a bib not on the stage's start list
    TOO_MANY_RIDERS = "too_many_riders"  # more parsed rider entries than the limit
    FUTURE_TIME = "future_time"  # an event time ahead of the clock (a tracker's clock ahead of the field's)
    TIME_MISMATCH = "time_mismatch"  # payload time and event_time attribute disagree
    # the organiser's rankings (peloton.ingest.official)
    WRONG_STAGE = "wrong_stage"  # a rankings document of another stage or race
    # matching and the race engine
    OFF_COURSE = "off_course"
    IMPOSSIBLE_JUMP = "impossible_jump"
    CONFLICTING_FIX = "conflicting_fix"  # two different positions for one bib at one time
    LATE = "late"  # behind the allowed lateness, or for a window already final


KNOWN_REASONS = frozenset(v for k, v in vars(Reason).items() if k.isupper())
