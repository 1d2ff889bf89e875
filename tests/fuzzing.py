"""Hostile input for the feed gate: real messages, and mutations of them a broken or malicious sender makes.

Shared by ``tests/test_fuzz.py`` (driven by hypothesis) and
``benchmarks/fuzz.py`` (the figures in RELIABILITY.md).
"""
from __future__ import annotations

import json
import random

from peloton.ingest.auth import ATTR_KEY_ID, ATTR_SIGNATURE, sign
from peloton.sim.publish import PlanParams, plan_messages

KEY_ID, KEY = "k2026", bytes.fromhex("7f" * 32)
OLD_KEY_ID, OLD_KEY = "k2025", bytes.fromhex("11" * 32)  # still active: rotation
KEYS_TEXT = json.dumps({KEY_ID: KEY.hex(), OLD_KEY_ID: OLD_KEY.hex()})

_WEIRD = [None, True, -1, 0, 1e308, -1e308, float("nan"), float("inf"), "", "x" * 300, "12.5", [], {}, [1, 2],
          {"Bib": 1}, 2 ** 70, 10 ** 400, -0.0, "\u0000", "\ud800"]


def valid_messages(recording: dict, stage_id: str, ticks: int = 40, riders: int = 12) -> list[tuple[bytes, dict]]:
    """Signed real messages: small ticks (the first riders of real ticks) and per-fix messages."""
    events = []
    for e in recording["events"][600:600 + ticks]:
        doc = json.loads(e["data"])
        doc["data"]["Riders"] = doc["data"]["Riders"][:riders]
        events.append({**e, "data": json.dumps(doc)})
    text = json.dumps({**recording, "events": events})
    out = []
    for per_fix in (False, True):
        for m in plan_messages(text, stage_id, PlanParams(per_fix=per_fix, sign_key_id=KEY_ID, sign_key=KEY)):
            out.append((m.data, dict(m.attributes)))
    return out


def start_list(recording: dict) -> list[int]:
    """The stage's bibs, as the stage file carries them."""
    return sorted(r["bib"] for r in recording["rest"]["riders"] if isinstance(r, dict) and type(r.get("bib")) is int)


def _rider_entries(doc) -> list:
    """The rider entries of a tick, or the fix itself."""
    data = doc.get("data") if isinstance(doc, dict) else None
    return data.get("Riders") if isinstance(data, dict) and isinstance(data.get("Riders"), list) else [doc]


def _resign(data: bytes, attrs: dict, key_id=KEY_ID, key=KEY) -> dict:
    signed = {k: v for k, v in attrs.items() if k != ATTR_SIGNATURE}
    signed[ATTR_KEY_ID] = key_id
    return {**signed, ATTR_SIGNATURE: sign(data, signed, key)}


def _mutate_json(doc, rng: random.Random):
    """Replace, drop or duplicate one random node of a JSON document."""
    nodes = []

    def walk(node, parent, key):
        nodes.append((parent, key))
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, node, k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, node, i)

    walk(doc, None, None)
    parent, key = rng.choice(nodes)
    if parent is None:
        return rng.choice(_WEIRD)
    action = rng.random()
    if action < 0.6:
        parent[key] = rng.choice(_WEIRD)
    elif action < 0.8 and isinstance(parent, dict):
        del parent[key]
    elif isinstance(parent, list):
        parent.extend([parent[key]] * rng.randint(1, 3))
    else:
        parent[key] = [parent[key]] * 2
    return doc


def mutate(data: bytes, attrs: dict, rng: random.Random) -> tuple[bytes, dict, str]:
    """One hostile variant of a message: (payload, attributes, what was done)."""
    kind = rng.choice(["flip", "truncate", "garbage", "json", "json_signed", "unsigned", "wrong_key", "bad_signature",
                       "old_key", "huge", "many_riders", "long_attribute", "future", "bad_event_time", "nested",
                       "not_utf8", "wrong_bib", "unknown_rider", "payload_future", "relabel", "huge_event_time",
                       "clock_off"])
    if kind in ("wrong_bib", "unknown_rider", "clock_off"):  # a signed message with one rider's entry forged
        doc = json.loads(data)
        riders = _rider_entries(doc)
        entry = riders[rng.randrange(len(riders))]
        key = "Bib" if "Bib" in entry else "bib"
        if kind == "clock_off":  # his tracker's own time, 31 s to 10 min off the message's (slow or fast)
            off = rng.choice([-1, 1]) * rng.randint(31, 600)
            if "time" in entry:
                entry["time"] += off
            else:
                entry["TimeStamp"] = doc["data"]["TimeStamp"] + off
        else:
            entry[key] = rng.choice([True, False, "12", 12.0, "", None, [12]]) if kind == "wrong_bib" else \
                rng.choice([999, 5000, 777])
        new = json.dumps(doc).encode()
        return new, _resign(new, attrs), kind
    if kind == "payload_future":  # the payload's clock an hour or more ahead, the attribute now (signed)
        doc = json.loads(data)
        ahead = 3600 * rng.randint(1, 48)
        if isinstance(doc.get("data"), dict):
            doc["data"]["TimeStamp"] += ahead
        else:
            doc["time"] += ahead
        new = json.dumps(doc).encode()
        return new, _resign(new, attrs), kind
    if kind == "relabel":  # a captured message with an attribute the pipeline acts on changed, signature kept
        name, value = rng.choice([("kind", "fix" if attrs.get("kind") == "tick" else "tick"),
                                  ("event_time", str(int(attrs["event_time"]) + 6000)), ("stage_id", "other")])
        return data, {**attrs, name: value}, kind
    if kind == "huge_event_time":  # beyond any sink's dates, signed
        new_attrs = {**attrs, "event_time": rng.choice(["9223372036854775", "99999999999999", "253402300800000"])}
        return data, _resign(data, new_attrs), kind
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b), attrs, kind  # signature no longer matches
    if kind == "truncate":
        return data[: rng.randrange(len(data))], attrs, kind
    if kind == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))), attrs, kind
    if kind in ("json", "json_signed"):
        doc = _mutate_json(json.loads(data), rng)
        new = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
        # "json_signed": a broken message the feed itself signed: the gate must still parse it safely
        return new, (_resign(new, attrs) if kind == "json_signed" else attrs), kind
    if kind == "unsigned":
        return data, {k: v for k, v in attrs.items() if k not in (ATTR_SIGNATURE, ATTR_KEY_ID)}, kind
    if kind == "wrong_key":
        return data, _resign(data, attrs, KEY_ID, bytes.fromhex("22" * 32)), kind
    if kind == "bad_signature":
        return data, {**attrs, ATTR_SIGNATURE: "0" * 64}, kind
    if kind == "old_key":  # a valid message signed with the other active key: accepted
        return data, _resign(data, attrs, OLD_KEY_ID, OLD_KEY), kind
    if kind == "huge":
        return data + b" " * (300 * 1024), attrs, kind
    if kind == "many_riders":  # the key spelled plainly or escaped ("\u0042ib" is "Bib" to a JSON parser)
        rider = b'{"%s": 1, "Latitude": 45.0, "Longitude": 6.0},' % rng.choice([b"Bib", b"\\u0042ib", b"B\\u0069b"])
        new = b'{"data": {"TimeStamp": %d, "Riders": [' % (int(attrs["event_time"]) // 1000) + rider * 1500 + b'{}]}}'
        return new, _resign(new, {**attrs, "kind": "tick"}), kind
    if kind == "long_attribute":
        return data, {**attrs, "x" * rng.randint(257, 2000): "1"}, kind
    if kind == "future":
        new_attrs = {**attrs, "event_time": str(int(attrs["event_time"]) + 86_400_000 * rng.randint(1, 400))}
        return data, _resign(data, new_attrs), kind
    if kind == "bad_event_time":
        new_attrs = {**attrs, "event_time": rng.choice(["", "soon", "1e99", "-5", "12:00"])}
        return data, _resign(data, new_attrs), kind
    if kind == "nested":
        new = b"[" * rng.randint(1000, 100_000) + b"]" * rng.randint(0, 10)
        return new, _resign(new, attrs), kind
    new = data.replace(b"Riders", b"Riders\xff\xfe")  # not UTF-8
    return new, _resign(new, attrs), kind
