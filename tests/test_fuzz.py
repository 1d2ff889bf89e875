"""The feed gate under hostile input: 10,000 mutated messages, no crash, every one accounted for."""
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peloton.ingest.auth import Keyring, Limits
from peloton.ingest.feed import KNOWN_REASONS, Reason, parse_message
from peloton.ingest.gate import Gate
from tests import fuzzing

pytestmark = [pytest.mark.slow]

KNOWN = KNOWN_REASONS
KEYRING = Keyring.from_text(fuzzing.KEYS_TEXT)
#: What each kind of mutation must be rejected as, with authentication on.
EXPECTED = {
    "flip": {Reason.BAD_SIGNATURE, Reason.TOO_MANY_RIDERS}, "truncate": {Reason.BAD_SIGNATURE},
    "garbage": {Reason.BAD_SIGNATURE}, "json": {Reason.BAD_SIGNATURE}, "unsigned": {Reason.UNSIGNED},
    "wrong_key": {Reason.BAD_SIGNATURE}, "bad_signature": {Reason.BAD_SIGNATURE},
    "huge": {Reason.TOO_LARGE}, "many_riders": {Reason.TOO_MANY_RIDERS},
    "long_attribute": {Reason.BAD_ATTRIBUTE}, "future": {Reason.FUTURE_TIME},
    "bad_event_time": {Reason.BAD_ATTRIBUTE, Reason.BAD_SIGNATURE}, "nested": {Reason.MALFORMED_JSON},
    "not_utf8": {Reason.MALFORMED_JSON, Reason.BAD_SHAPE, Reason.MISSING_FIELD},
    "payload_future": {Reason.FUTURE_TIME, Reason.TIME_MISMATCH}, "relabel": {Reason.BAD_SIGNATURE},
    "huge_event_time": {Reason.BAD_ATTRIBUTE},
}
#: Mutations of one rider entry of a signed message: that entry is a dead letter, the others pass.
ONE_RIDER = {"wrong_bib": {Reason.MISSING_FIELD}, "unknown_rider": {Reason.UNKNOWN_RIDER},
             # his own time more than 30 s from the message's: behind, or ahead of the clock
             "clock_off": {Reason.TIME_MISMATCH, Reason.FUTURE_TIME}}


@pytest.fixture(scope="module")
def valid(stage4_recording):
    return fuzzing.valid_messages(stage4_recording, "s4")


@pytest.fixture(scope="module")
def start_list(stage4_recording):
    return fuzzing.start_list(stage4_recording)


@pytest.fixture(scope="module")
def gate(start_list):
    return Gate.of("s4", start_list)


def _fixes(batch):
    return sorted(zip(batch.bib.tolist(), batch.t.tolist(), batch.lat.tolist(), batch.lon.tolist()))


def _now(attrs):
    return int(attrs["event_time"]) / 1000.0


def _sane(batch, dead):
    """What the gate lets through is valid, and what it stops has a known reason."""
    assert all(d["reason"] in KNOWN and d["detail"] for d in dead)
    assert np.all(batch.bib > 0) and np.all(np.isfinite(batch.t))
    assert np.all(np.abs(batch.lat) <= 90) and np.all(np.abs(batch.lon) <= 180)


def test_every_valid_message_passes_whole(valid, gate):
    assert len(valid) > 400
    for data, attrs in valid:
        batch, dead = gate.admit(data, attrs, KEYRING, _now(attrs))
        expected, expected_dead = parse_message("s4", attrs["kind"], data)
        assert _fixes(batch) == _fixes(expected) and len(dead) == len(expected_dead)


@settings(max_examples=10_000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pick=st.integers(min_value=0), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_messages_never_crash_the_gate_and_are_all_accounted_for(valid, gate, start_list, pick, seed):
    data, attrs = valid[pick % len(valid)]
    bad, bad_attrs, kind = fuzzing.mutate(data, attrs, random.Random(seed))
    now = _now(attrs)
    for keyring in (KEYRING, None):  # authentication on, and off
        batch, dead = gate.admit(bad, bad_attrs, keyring, now)
        _sane(batch, dead)
        assert np.isin(batch.bib, start_list).all()
        assert np.all(batch.t <= now + Limits().future_tolerance_s)
        assert len(batch) + len(dead) >= 1  # nothing vanishes
    batch, dead = gate.admit(bad, bad_attrs, KEYRING, now)
    genuine = _fixes(parse_message("s4", attrs["kind"], data)[0])
    if (bad, bad_attrs) == (data, attrs) or kind == "old_key":  # unchanged, or signed by the other active key
        assert _fixes(batch) == genuine
    elif kind in ONE_RIDER:  # the forged entry is stopped with its reason, every other one passes
        assert len(dead) == 1 and dead[0]["reason"] in ONE_RIDER[kind], (kind, dead)
        assert len(batch) == len(genuine) - 1 and set(_fixes(batch)) <= set(genuine)
    elif kind != "json_signed":  # a signed broken message is parsed; every other mutation is stopped whole
        whole = len(dead) == 1 or kind == "payload_future"  # a tick's time is every rider's: one letter each
        assert len(batch) == 0 and whole and {d["reason"] for d in dead} <= EXPECTED[kind], (kind, dead)


def test_a_key_file_with_rotation_and_bad_key_files():
    assert set(KEYRING.keys) == {fuzzing.KEY_ID, fuzzing.OLD_KEY_ID}
    assert set(Keyring.from_text("a:00ff, b:0102").keys) == {"a", "b"}
    for bad in ("a:zz", '{"a": "xyz"}', ""):
        with pytest.raises(ValueError):
            Keyring.from_text(bad)


def test_the_signature_covers_every_attribute():
    from peloton.ingest.auth import sign

    attrs = {"event_time": "1783425600000", "kind": "tick", "stage_id": "s4", "key_id": fuzzing.KEY_ID}
    attrs["signature"] = sign(b"{}", attrs, fuzzing.KEY)
    assert KEYRING.verify(b"{}", attrs) is None
    for name, value in (("kind", "fix"), ("stage_id", "s5"), ("event_time", "1783425606000"), ("extra", "1")):
        assert KEYRING.verify(b"{}", {**attrs, name: value}) == Reason.BAD_SIGNATURE
