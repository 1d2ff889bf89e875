"""Streaming behaviour of the live front half, with TestStream and fixed epoch timestamps.

Each test feeds Pub/Sub-shaped messages (bytes + attributes) at chosen event
times and watermark steps, and checks which fixes come out in which window
and pane (early, on time, late), what is set aside as late, and what is
dropped as a duplicate or dead-lettered.
"""
import json

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.windowed_value import PaneInfoTiming

from peloton.ingest.auth import sign
from transforms.live import FeedSecurity, IngestLive, LiveParams

T0 = 1_783_425_600  # 2026-07-07 12:00:00 UTC, a multiple of the 6 s window
LAT, LON = 42.95, 1.60  # somewhere on the stage 4 course


def fix_message(bib, t, dlat=0.0):
    body = {"bib": bib, "time": t, "lat": LAT + dlat, "lon": LON, "kph": 40.0}
    return PubsubMessage(json.dumps(body).encode(), {"event_time": str(int(t * 1000)), "kind": "fix"})


def tick_message(t, bibs):
    riders = [{"Bib": b, "Latitude": LAT + 0.0001 * b, "Longitude": LON, "kph": 40.0} for b in bibs]
    body = {"data": {"TimeStamp": t, "Riders": riders}}
    return PubsubMessage(json.dumps(body).encode(), {"event_time": str(int(t * 1000)), "kind": "tick"})


def stamped(msg):
    return TimestampedValue(msg, int(msg.attributes["event_time"]) / 1000)


#: What a run collected (the in-process runner calls the collectors in this process).
_COLLECTED: dict = {}


def _keep(x, name):
    _COLLECTED.setdefault(name, []).append(x)


class CollectPanes(beam.DoFn):
    def process(self, keyed, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        _stage, batch = keyed
        yield (int(win.start), pane.timing, tuple(sorted(zip(batch.bib.tolist(), batch.t.tolist()))))


#: No early pane: the panes these tests look at are the on-time and late ones.
QUIET = dict(early_after_s=1000, early_after_messages=1000)


def run(stream, params=LiveParams(**QUIET), security=FeedSecurity()):
    """Run the stream through IngestLive; return (panes as (window start, timing, sorted (bib, t))), late, dead."""
    options = StandardOptions(streaming=True)
    _COLLECTED.clear()
    with TestPipeline(options=options) as p:
        out = p | stream | IngestLive("test", params, security)
        out["ticks"] | "Panes" >> beam.ParDo(CollectPanes()) | "KeepPanes" >> beam.Map(_keep, "panes")
        out["late"] | "LateRows" >> beam.FlatMap(lambda cols: cols.to_rows()) | "KeepLate" >> beam.Map(_keep, "late")
        (out["dead_letter"] | "DeadRows" >> beam.FlatMap(lambda cols: cols.to_rows())
         | "KeepDead" >> beam.Map(_keep, "dead"))
    return _COLLECTED.get("panes", []), _COLLECTED.get("late", []), _COLLECTED.get("dead", [])


@pytest.mark.slow
def test_on_time_fixes_fire_once_per_window_when_the_watermark_passes():
    stream = (TestStream()
              .add_elements([stamped(tick_message(T0, [1, 2, 3])), stamped(tick_message(T0 + 3, [1, 2]))])
              .advance_watermark_to(T0 + 6)
              .add_elements([stamped(tick_message(T0 + 6, [1, 2, 3]))])
              .advance_watermark_to_infinity())
    panes, late, dead = run(stream)
    assert sorted((w, timing, len(fixes)) for w, timing, fixes in panes) == [
        (T0, PaneInfoTiming.ON_TIME, 5), (T0 + 6, PaneInfoTiming.ON_TIME, 3)]
    assert not late and not dead


def test_single_late_fix_within_allowed_lateness_fires_a_late_pane():
    stream = (TestStream()
              .add_elements([stamped(fix_message(1, T0 + 1))])
              .advance_watermark_to(T0 + 30)  # the first window is closed ...
              .add_elements([stamped(fix_message(2, T0 + 2))])  # ... and a fix of it arrives 28 s late
              .advance_watermark_to_infinity())
    panes, late, _ = run(stream, LiveParams(**QUIET, allowed_lateness_s=60.0))
    assert sorted((w, timing, fixes) for w, timing, fixes in panes) == [
        (T0, PaneInfoTiming.ON_TIME, ((1, T0 + 1.0),)), (T0, PaneInfoTiming.LATE, ((2, T0 + 2.0),))]
    assert not late


def test_fix_later_than_allowed_lateness_goes_to_the_late_table_and_is_counted():
    stream = (TestStream()
              .add_elements([stamped(fix_message(1, T0 + 1))])
              .advance_watermark_to(T0 + 200)
              .add_elements([stamped(fix_message(2, T0 + 200))])
              .advance_watermark_to(T0 + 400)
              .add_elements([stamped(fix_message(3, T0 + 2))])  # ~400 s late, 60 s allowed
              .advance_watermark_to_infinity())
    panes, late, _ = run(stream, LiveParams(**QUIET, allowed_lateness_s=60.0))
    assert [(r["bib"], r["reason"]) for r in late] == [(3, "late")]
    assert "behind the watermark" in late[0]["detail"]
    assert all(3 not in [b for b, _ in fixes] for _, _, fixes in panes)


def test_duplicates_are_kept_once_however_they_arrive():
    msg = tick_message(T0, [1, 2, 3])
    stream = (TestStream()
              .add_elements([stamped(msg), stamped(msg)])  # Pub/Sub redelivery
              .add_elements([stamped(fix_message(2, T0, dlat=0.0002))])  # the same fix again, per-fix this time
              .advance_watermark_to(T0 + 10)
              .add_elements([stamped(msg)])  # and once more, late
              .advance_watermark_to_infinity())
    panes, late, _ = run(stream)
    fixes = [f for _, _, fs in panes for f in fs]
    assert sorted(fixes) == [(1, float(T0)), (2, float(T0)), (3, float(T0))]


def test_out_of_order_fixes_within_a_tick_land_in_their_window():
    stream = (TestStream()
              .add_elements([stamped(fix_message(1, T0 + 5)), stamped(fix_message(1, T0 + 1)),
                             stamped(fix_message(2, T0 + 7)), stamped(fix_message(2, T0 + 4))])
              .advance_watermark_to_infinity())
    panes, _, _ = run(stream)
    by_window = {w: fixes for w, _, fixes in panes}
    assert by_window[T0] == ((1, T0 + 1.0), (1, T0 + 5.0), (2, T0 + 4.0))
    assert by_window[T0 + 6] == ((2, T0 + 7.0),)


def test_malformed_payloads_are_dead_letters_with_their_reason():
    bad = [PubsubMessage(b'{"data": {"TimeStamp": 17834', {"event_time": str(T0 * 1000)}),
           PubsubMessage(b'{"data": "no riders here"}', {"event_time": str(T0 * 1000)}),
           fix_message(4, T0, dlat=60.0)]  # latitude 102: impossible
    stream = (TestStream()
              .add_elements([stamped(m) for m in bad] + [stamped(fix_message(1, T0))])
              .advance_watermark_to_infinity())
    panes, _, dead = run(stream)
    # (a "data" that is a string is read as the recordings store it: JSON text, here not JSON)
    assert sorted(r["reason"] for r in dead) == ["impossible_coordinates", "malformed_json", "malformed_json"]
    assert [f for _, _, fs in panes for f in fs] == [(1, float(T0))]


@pytest.mark.parametrize("early_after_s", [1])
def test_an_early_pane_comes_before_the_watermark(early_after_s):
    stream = (TestStream()
              .add_elements([stamped(fix_message(1, T0 + 1))])
              .advance_processing_time(5)  # processing time passes, the watermark does not
              .add_elements([stamped(fix_message(2, T0 + 2))])
              .advance_watermark_to_infinity())
    panes, _, _ = run(stream, LiveParams(early_after_s=early_after_s, early_after_messages=1000))
    timings = [timing for w, timing, _ in sorted(panes, key=lambda x: (x[0], x[1]))]
    assert PaneInfoTiming.EARLY in timings
    fixes = sorted(f for _, _, fs in panes for f in fs)
    assert fixes == [(1, T0 + 1.0), (2, T0 + 2.0)]  # discarding panes: each fix exactly once


def test_a_tick_message_gives_its_early_pane_at_once_as_one_batch():
    stream = (TestStream()
              .add_elements([stamped(tick_message(T0, [3, 1, 2]))])  # no processing time passes
              .add_elements([stamped(fix_message(4, T0 + 1))])
              .advance_watermark_to_infinity())
    panes, _, _ = run(stream, LiveParams(early_after_s=1000))
    early = [fixes for w, timing, fixes in panes if timing == PaneInfoTiming.EARLY]
    assert early and early[0] == ((1, float(T0)), (2, float(T0)), (3, float(T0)))
    assert sorted(f for _, _, fs in panes for f in fs) == [(1, T0), (2, T0), (3, T0), (4, T0 + 1.0)]


KEYS = '{"k1": "' + "ab" * 32 + '", "k0": "' + "cd" * 32 + '"}'


def signed(msg, key_id="k1", key_hex="ab" * 32):
    attrs = {**msg.attributes, "key_id": key_id}
    attrs["signature"] = sign(msg.data, attrs, bytes.fromhex(key_hex))
    return PubsubMessage(msg.data, attrs)


def test_with_authentication_only_signed_untampered_unreplayed_messages_reach_the_race():
    good = signed(fix_message(1, T0))
    rotated = signed(fix_message(2, T0), "k0", "cd" * 32)  # the older active key
    unsigned = fix_message(3, T0)
    tampered = PubsubMessage(fix_message(4, T0).data, signed(fix_message(5, T0)).attributes)
    wrong_key = signed(fix_message(6, T0), "k1", "ee" * 32)
    unknown_key = signed(fix_message(7, T0), "k9", "ab" * 32)
    stream = (TestStream()
              .add_elements([stamped(m) for m in (good, rotated, unsigned, tampered, wrong_key, unknown_key)])
              .advance_watermark_to(T0 + 10)
              .add_elements([stamped(good)])  # captured and sent again
              .advance_watermark_to_infinity())
    panes, late, dead = run(stream, security=FeedSecurity(authenticate=True, keys_text=KEYS,
                                                                   clock=lambda: T0 + 10))
    assert [f for _, _, fs in panes for f in fs] == [(1, float(T0)), (2, float(T0))]
    assert sorted(r["reason"] for r in dead) == ["bad_signature", "bad_signature", "replayed", "unknown_key",
                                                 "unsigned"]
    assert not late


@pytest.mark.slow
def test_a_signed_message_is_stale_by_its_age_when_published_not_when_read():
    """A restart re-reads the stage's history (sought back): published in its time, it is not stale; the same
    capture published an hour later is."""
    import datetime

    def published(msg, t):
        msg.publish_time = datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc)
        return msg

    history = published(signed(fix_message(1, T0)), T0 + 2)
    replayed = published(signed(fix_message(2, T0)), T0 + 3600)
    stream = (TestStream().add_elements([stamped(history), stamped(replayed)]).advance_watermark_to_infinity())
    panes, _late, dead = run(stream, security=FeedSecurity(authenticate=True, keys_text=KEYS,
                                                           clock=lambda: T0 + 3700))
    assert [f for _, _, fs in panes for f in fs] == [(1, float(T0))]
    assert [r["reason"] for r in dead] == ["stale"]


def test_limits_apply_before_parsing_even_without_authentication():
    huge = PubsubMessage(b" " * 300_000, {"event_time": str(T0 * 1000)})
    future = fix_message(1, 4_000_000_000)  # 2096
    stream = (TestStream()
              .add_elements([stamped(huge), stamped(fix_message(2, T0))])
              .add_elements([TimestampedValue(future, T0)])
              .advance_watermark_to_infinity())
    panes, _, dead = run(stream)
    assert sorted(r["reason"] for r in dead) == ["future_time", "too_large"]
    assert [f for _, _, fs in panes for f in fs] == [(2, float(T0))]
