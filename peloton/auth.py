"""Feed authentication and input limits: what a public-facing feed must check before it parses.

Each message may carry an HMAC-SHA256 signature over its event time and
payload (attribute ``signature``, hex) with the id of the key that made it
(attribute ``key_id``). Several keys can be active at once, so a feed can
rotate: sign with the new key while the old one is still accepted. Keys come
from a JSON file ``{"key id": "hex secret", ...}`` or the environment
(``PELOTON_FEED_KEYS="id1:hex,id2:hex"``). Comparison is constant-time.

A replayed message (a signature seen before) is caught by the pipeline,
which remembers signatures for as long as data may be late
(:class:`transforms.live.RejectReplaysFn`); here are the stateless checks.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass

__all__ = ["ATTR_SIGNATURE", "ATTR_KEY_ID", "Limits", "Keyring", "sign", "check_limits", "screen", "admit",
           "AuthReason"]

ATTR_SIGNATURE = "signature"
ATTR_KEY_ID = "key_id"
ENV_KEYS = "PELOTON_FEED_KEYS"


class AuthReason:
    """Dead-letter reason codes of authentication and limits (stable strings)."""

    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"  # tampered, or signed with another key
    REPLAYED = "replayed"
    TOO_LARGE = "too_large"
    TOO_MANY_RIDERS = "too_many_riders"
    BAD_ATTRIBUTE = "bad_attribute"
    FUTURE_TIME = "future_time"


@dataclass(frozen=True)
class Limits:
    """Applied before parsing: a hostile message must not cost more than a real one."""

    max_payload_bytes: int = 256 * 1024  # a real tick of 180 riders is ~40 KB
    max_riders: int = 1000  # a Grand Tour starts with ~180
    max_attributes: int = 16
    max_attribute_chars: int = 256
    future_tolerance_s: float = 300.0  # event times this far past the clock are impossible


def _message_bytes(event_time: str, payload: bytes) -> bytes:
    return event_time.encode("utf-8") + b"\n" + payload


def sign(payload: bytes, event_time: str, key: bytes) -> str:
    """The hex signature of a message: HMAC-SHA256 over its event time attribute and payload."""
    return hmac.new(key, _message_bytes(event_time, payload), hashlib.sha256).hexdigest()


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
            return AuthReason.UNSIGNED
        key = self.keys.get(key_id)
        if key is None:
            return AuthReason.UNKNOWN_KEY
        expected = sign(payload, attributes.get("event_time", ""), key)
        if not hmac.compare_digest(expected.encode("ascii"), str(signature).encode("utf-8", "replace")):
            return AuthReason.BAD_SIGNATURE
        return None


def check_limits(payload: bytes, attributes: dict, limits: Limits, now_s: float | None) -> tuple[str, str] | None:
    """(reason, detail) when a message breaks a limit, checked before any parsing; else None.

    ``now_s``: the wall clock, for event times in the future (None: not checked, as in a replay).
    """
    if len(payload) > limits.max_payload_bytes:
        return AuthReason.TOO_LARGE, f"{len(payload):,} bytes (limit {limits.max_payload_bytes:,})"
    if len(attributes) > limits.max_attributes:
        return AuthReason.BAD_ATTRIBUTE, f"{len(attributes)} attributes (limit {limits.max_attributes})"
    for name, value in attributes.items():
        if len(str(name)) > limits.max_attribute_chars or len(str(value)) > limits.max_attribute_chars:
            return AuthReason.BAD_ATTRIBUTE, f"attribute {str(name)[:40]!r} longer than {limits.max_attribute_chars}"
    # a cheap upper bound on the riders of a tick: every rider entry names its bib
    riders = payload.count(b'"Bib"')
    if riders > limits.max_riders:
        return AuthReason.TOO_MANY_RIDERS, f"{riders} rider entries (limit {limits.max_riders})"
    if "event_time" in attributes:
        try:
            event_ms = int(attributes["event_time"])
        except (TypeError, ValueError):
            event_ms = 0
        if not 1e12 <= event_ms < 1e13:  # 2001 to 2286
            return AuthReason.BAD_ATTRIBUTE, "event_time is not milliseconds since the epoch"
        ahead = event_ms / 1000.0 - (now_s if now_s is not None else event_ms / 1000.0)
        if ahead > limits.future_tolerance_s:
            return AuthReason.FUTURE_TIME, f"event time {ahead:.0f} s ahead of the clock"
    return None


def screen(payload: bytes, attributes: dict, limits: Limits, keyring: Keyring | None,
           now_s: float | None) -> tuple[str, str] | None:
    """Limits, then the signature (with a keyring): (reason, detail) of the first check failed, else None."""
    verdict = check_limits(payload, attributes, limits, now_s)
    if verdict is None and keyring is not None:
        reason = keyring.verify(payload, attributes)
        verdict = None if reason is None else (reason, "message signature " + reason.replace("_", " "))
    return verdict


def admit(stage_id: str, payload: bytes, attributes: dict, limits: Limits = Limits(), keyring: Keyring | None = None,
          now_s: float | None = None):
    """Limits, signature, then parsing: one message -> (FixBatch, dead-letter rows), never an exception.

    The live pipeline runs the same steps as separate Beam steps (replays
    are caught between the signature and the parsing); this is the whole
    gate in one call, for the fuzz tests and the reliability figures.
    """
    from peloton.feed import dead_letter, parse_message, FixBatch

    verdict = screen(payload, attributes, limits, keyring, now_s)
    if verdict is not None:
        return FixBatch.empty(stage_id), [dead_letter(stage_id, verdict[0], payload[:20000].decode("utf-8", "replace"),
                                                      verdict[1], source="pubsub")]
    kind = attributes.get("kind", "auto")
    return parse_message(stage_id, kind if kind in ("tick", "fix") else "auto", payload, source="pubsub")
