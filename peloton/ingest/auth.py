"""Feed authentication and input limits: what a public-facing feed must check before it parses.

Each message may carry an HMAC-SHA256 signature over all its attributes
(every one but ``signature`` itself: ``event_time``, ``kind``, ``stage_id``,
``message_id``, ``key_id`` ...) and its payload (attribute ``signature``,
hex) with the id of the key that made it (attribute ``key_id``): whatever
the pipeline acts on is signed, so an attacker cannot re-label a captured
message (its kind, its time) and keep the signature. The older signatures
(event time and payload only) are not accepted: they would leave exactly
that door open, and every sender signs through :func:`sign`. Several keys can be active at once, so a feed can
rotate: sign with the new key while the old one is still accepted. Keys come
from a JSON file ``{"key id": "hex secret", ...}`` or the environment
(``PELOTON_FEED_KEYS="id1:hex,id2:hex"``). Comparison is constant-time.

A replayed message (a signature seen before) is caught by the pipeline,
which remembers the signatures of accepted messages for as long as data may
be late, and refuses a signed message older than that as ``stale`` whatever
it remembers (:class:`transforms.live.RejectReplaysFn`), so a restart with
empty state cannot be fooled; here are the stateless checks, which the gate
(:class:`peloton.ingest.gate.Gate`) runs before parsing.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass

from peloton.ingest.reasons import Reason

__all__ = ["ATTR_SIGNATURE", "ATTR_KEY_ID", "Limits", "Keyring", "sign", "check_limits", "screen",
           "event_time_attribute_s"]

ATTR_SIGNATURE = "signature"
ATTR_KEY_ID = "key_id"
ENV_KEYS = "PELOTON_FEED_KEYS"


@dataclass(frozen=True)
class Limits:
    """Applied before parsing: a hostile message must not cost more than a real one."""

    max_payload_bytes: int = 256 * 1024  # a real tick of 180 riders is ~40 KB
    max_riders: int = 1000  # a Grand Tour starts with ~180 (counted once parsed: the payload size bounds the parse)
    max_attributes: int = 16
    max_attribute_chars: int = 256
    future_tolerance_s: float = 30.0  # event times (attribute or payload) this far past the clock are impossible
    skew_tolerance_s: float = 30.0  # payload time and event_time attribute may differ this much


def _message_bytes(payload: bytes, attributes: dict) -> bytes:
    """What a signature covers: every attribute but the signature (sorted, as JSON), then the payload."""
    signed = sorted((str(k), str(v)) for k, v in attributes.items() if k != ATTR_SIGNATURE)
    return b"peloton-v2\n" + json.dumps(signed, separators=(",", ":")).encode("utf-8", "surrogatepass") + \
        b"\n" + payload


def sign(payload: bytes, attributes: dict, key: bytes) -> str:
    """The hex signature of a message: HMAC-SHA256 over all its attributes (but ``signature``) and payload.

    Set every attribute (``key_id`` included) before signing: a change to any of them breaks the signature.
    """
    return hmac.new(key, _message_bytes(payload, attributes), hashlib.sha256).hexdigest()


class Keyring:
    """The active keys, by id."""

    def __init__(self, keys: dict[str, bytes]):
        if not keys:
            raise ValueError("authentication needs at least one key")
        self.keys = dict(keys)

    @classmethod
    def from_text(cls, text: str) -> "Keyring":
        """JSON ``{"id": "hex"}`` or ``id:hex,id:hex``."""
        text = text.strip()
        try:
            pairs = json.loads(text).items() if text.startswith("{") else (
                item.split(":", 1) for item in text.split(",") if item.strip())
            return cls({str(k).strip(): bytes.fromhex(str(v).strip()) for k, v in pairs})
        except ValueError as exc:
            raise ValueError(f"feed keys must be JSON {{\"id\": \"hex\"}} or id:hex,id:hex ({exc})") from None

    @classmethod
    def from_env(cls) -> "Keyring | None":
        text = os.environ.get(ENV_KEYS, "")
        return cls.from_text(text) if text.strip() else None

    def verify(self, payload: bytes, attributes: dict) -> str | None:
        """None when the signature is good, else the dead-letter reason."""
        signature = attributes.get(ATTR_SIGNATURE)
        key_id = attributes.get(ATTR_KEY_ID)
        if not signature or not key_id:
            return Reason.UNSIGNED
        key = self.keys.get(key_id)
        if key is None:
            return Reason.UNKNOWN_KEY
        expected = sign(payload, attributes, key)
        if not hmac.compare_digest(expected.encode("ascii"), str(signature).encode("utf-8", "replace")):
            return Reason.BAD_SIGNATURE
        return None


def check_limits(payload: bytes, attributes: dict, limits: Limits, now_s: float | None) -> tuple[str, str] | None:
    """(reason, detail) when a message breaks a limit, checked before any parsing; else None.

    ``now_s``: the wall clock, for event times in the future (None: not checked, as in a replay).
    """
    if len(payload) > limits.max_payload_bytes:
        return Reason.TOO_LARGE, f"{len(payload):,} bytes (limit {limits.max_payload_bytes:,})"
    if len(attributes) > limits.max_attributes:
        return Reason.BAD_ATTRIBUTE, f"{len(attributes)} attributes (limit {limits.max_attributes})"
    for name, value in attributes.items():
        if len(str(name)) > limits.max_attribute_chars or len(str(value)) > limits.max_attribute_chars:
            return Reason.BAD_ATTRIBUTE, f"attribute {str(name)[:40]!r} longer than {limits.max_attribute_chars}"
    # (the rider limit counts parsed entries: see peloton.ingest.feed.parse_message)
    if "event_time" in attributes:
        event_s = event_time_attribute_s(attributes)
        if event_s is None:
            return Reason.BAD_ATTRIBUTE, "event_time is not milliseconds since the epoch (2001-2286)"
        ahead = event_s - (now_s if now_s is not None else event_s)
        if ahead > limits.future_tolerance_s:
            return Reason.FUTURE_TIME, f"event time {ahead:.0f} s ahead of the clock"
    return None


def event_time_attribute_s(attributes: dict) -> float | None:
    """The ``event_time`` attribute in epoch seconds, or None when absent, unreadable or outside 2001-2286
    (the feed's years, well inside what BigQuery's TIMESTAMP and Avro's timestamp-millis hold)."""
    from peloton.ingest.eventtime import from_attribute

    return from_attribute(attributes)


def screen(payload: bytes, attributes: dict, limits: Limits, keyring: Keyring | None,
           now_s: float | None) -> tuple[str, str] | None:
    """Limits, then the signature (with a keyring): (reason, detail) of the first check failed, else None."""
    verdict = check_limits(payload, attributes, limits, now_s)
    if verdict is None and keyring is not None and "event_time" not in attributes:
        verdict = Reason.BAD_ATTRIBUTE, "a signed message needs its event_time (replays are bounded by it)"
    if verdict is None and keyring is not None:
        reason = keyring.verify(payload, attributes)
        verdict = None if reason is None else (reason, "message signature " + reason.replace("_", " "))
    return verdict
