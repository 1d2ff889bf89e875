"""A hostile gateway and faulty trackers: attacks on a real stretch of the feed, and how to score their outcome.

Each attack is the genuine signed feed with hostile messages mixed in (or a
tracker's own entries changed, for a hijacked or broken tracker). Shared by
``tests/test_hostile_gateway.py`` (TestStream, and the real emulator) and
``benchmarks/hostile.py`` (the table in RELIABILITY.md).

The outcome of an attack is scored against the causal replay of the genuine
fixes (minus those a broken tracker replaced): genuine rows lost, rows
doubled, rows of forged fixes let through, rows of other riders whose values
changed (corrupted), and the dead letters by reason.
"""
from __future__ import annotations

import collections
import copy
import json
from dataclasses import dataclass, field

import numpy as np

from peloton.ingest.auth import sign
from peloton.sim.publish import Message

KEY_ID, KEY = "k1", bytes.fromhex("ab" * 32)
KEYS_TEXT = json.dumps({KEY_ID: KEY.hex()})


@dataclass
class Attack:
    name: str
    what: str
    messages: list  # Message, genuine and hostile, in publish order (at_s)
    reasons: set  # dead-letter reasons it must produce
    withheld: set = field(default_factory=set)  # (bib, t_ms) genuine fixes a broken tracker replaced
    victims: set = field(default_factory=set)  # bibs attacked (their own rows may hold fewer fixes)


def signed(data: bytes, attrs: dict, at_s: float, fault: str = "hostile") -> Message:
    attrs = {k: v for k, v in attrs.items() if k != "signature"}
    attrs["key_id"] = KEY_ID
    return Message(at_s, data, {**attrs, "signature": sign(data, attrs, KEY)}, fault)


def _tick(m: Message) -> dict:
    return json.loads(m.data)


def _ticks(plan):
    return [m for m in plan if m.attributes.get("kind") == "tick" and not m.fault]


def _dump(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _with(plan, extra):
    return sorted(plan + extra, key=lambda m: m.at_s)


def attacks(plan: list, old_plan: list, course, start_list: list) -> list[Attack]:
    """Every attack on ``plan`` (signed genuine ticks); ``old_plan``: ticks captured long before."""
    ticks = _ticks(plan)
    mid, late = ticks[len(ticks) // 2], ticks[-4]
    riders = _tick(mid)["data"]["Riders"]
    bib_a, bib_b, bib_c = riders[3]["Bib"], riders[5]["Bib"], riders[7]["Bib"]
    out = []

    # a payload clock an hour ahead, the event_time attribute now
    doc = _tick(mid)
    doc["data"]["TimeStamp"] += 3600
    out.append(Attack("payload_future", "one tick's payload time 1 h ahead, its event_time attribute now",
                      _with(plan, [signed(_dump(doc), mid.attributes, mid.at_s + 0.5)]), {"future_time"}))
    # one rider's fix an hour ahead, with and without an event_time attribute
    entry = dict(riders[2])
    t_mid = int(mid.attributes["event_time"]) // 1000
    fix = {"bib": entry["Bib"], "time": t_mid + 3600, "lat": entry["Latitude"], "lon": entry["Longitude"]}
    attrs = {"event_time": mid.attributes["event_time"], "kind": "fix", "stage_id": mid.attributes["stage_id"]}
    out.append(Attack("fix_future", "one rider's fix 1 h ahead: attribute now / attribute 1 h ahead",
                      _with(plan, [signed(_dump(fix), attrs, mid.at_s + 0.2),
                                   signed(_dump(fix), {**attrs, "event_time": str((t_mid + 3600) * 1000)},
                                          mid.at_s + 0.3)]), {"future_time"}))
    # the payload and the attribute disagree (a tick dated 2 minutes before its attribute)
    doc = _tick(late)
    doc["data"]["TimeStamp"] -= 120
    out.append(Attack("time_mismatch", "a tick's payload time 120 s before its event_time attribute",
                      _with(plan, [signed(_dump(doc), late.attributes, late.at_s - 0.5)]), {"time_mismatch"}))
    # old signed ticks captured 15 minutes earlier, published again (as after a restart: nothing remembered)
    olds = [Message(mid.at_s + 0.1 * i, m.data, dict(m.attributes), "replay") for i, m in enumerate(_ticks(old_plan)[:3])]
    out.append(Attack("replay_old", "3 signed ticks captured 15 min earlier, published again", _with(plan, olds),
                      {"stale"}))
    # a genuine tick published twice by an attacker within the lateness (one no other attack changes)
    target = ticks[len(ticks) // 2 - 4]  # before the teleport's ticks
    again = Message(target.at_s + 3.0, target.data, dict(target.attributes), "replay")
    out.append(Attack("replay_recent", "a genuine signed tick published again 3 s later", _with(plan, [again]),
                      {"replayed"}))
    # the next genuine tick with its unsigned-before `kind` changed, published first
    relabelled = Message(mid.at_s - 0.5, mid.data, {**mid.attributes, "kind": "fix"}, "hostile")
    out.append(Attack("relabel_kind", "a copy of the next genuine tick with `kind` changed, published first",
                      _with(plan, [relabelled]), {"bad_signature"}))
    # 3,000 riders with escaped keys, not on the start list
    rider = '{"\\u0042ib":%d,"Latitude":%f,"Longitude":%f}'
    body = ('{"data":{"TimeStamp":%d,"Riders":[' % t_mid + ",".join(
        rider % (1000 + i, riders[0]["Latitude"], riders[0]["Longitude"]) for i in range(3000)) + "]}}").encode()
    out.append(Attack("escaped_bib_flood", '3,000 riders keyed "\\u0042ib" (the byte count saw none)',
                      _with(plan, [signed(body, mid.attributes, mid.at_s + 0.4)]), {"too_many_riders"}))
    # riders who are not on the start list
    strangers = [{**riders[0], "Bib": b} for b in (901, 902, 903)]
    body = _dump({"data": {"TimeStamp": t_mid, "Riders": strangers}})
    out.append(Attack("unknown_riders", "a tick of 3 bibs not on the start list",
                      _with(plan, [signed(body, mid.attributes, mid.at_s + 0.4)]), {"unknown_rider"}))
    # bibs of the wrong type
    forged = [signed(_dump({"bib": bib, "time": t_mid, "lat": entry["Latitude"] + 0.01, "lon": entry["Longitude"]}),
                     attrs, mid.at_s + 0.1) for bib in (True, "12", 12.0)]
    out.append(Attack("wrong_type_bib", 'fixes with "bib": true, "12", 12.0', _with(plan, forged), {"missing_field"}))
    # a bib reused by a second tracker: same bib and time, another position, arriving first
    g = riders[4]
    fix = {"bib": g["Bib"], "time": t_mid, "lat": g["Latitude"] + 0.003, "lon": g["Longitude"]}  # ~330 m off
    out.append(Attack("bib_reuse", "same bib and time, another position 330 m off, arriving before the genuine",
                      _with(plan, [signed(_dump(fix), attrs, mid.at_s - 0.3)]), {"conflicting_fix"}))
    # an event_time beyond any sink's dates
    out.append(Attack("huge_event_time", "event_time 9223372036854775 (292,000 years ahead)",
                      _with(plan, [signed(mid.data, {**mid.attributes, "event_time": "9223372036854775"},
                                          mid.at_s + 0.2)]), {"bad_attribute"}))
    # a tracker 15 km ahead for 5 fixes (hijacked or broken: its own entries, signed by the feed)
    plan_t = [copy.copy(m) for m in plan]
    tele = [i for i, m in enumerate(plan_t) if m in ticks][len(ticks) // 2 - 2:len(ticks) // 2 + 3]
    withheld = set()
    for i in tele:
        doc = _tick(plan_t[i])
        e = next(r for r in doc["data"]["Riders"] if r.get("Bib") == bib_a)
        s = course.candidates(np.array([e["Latitude"]]), np.array([e["Longitude"]])).s[0, 0]
        lat, lon = course.point_at(s + 15_000.0)
        e["Latitude"], e["Longitude"] = round(float(lat), 6), round(float(lon), 6)
        withheld.add((bib_a, int(doc["data"]["TimeStamp"]) * 1000))
        plan_t[i] = signed(_dump(doc), plan_t[i].attributes, plan_t[i].at_s, "")
    out.append(Attack("teleport", "one tracker 15 km ahead on the course for 5 fixes", plan_t, {"impossible_jump"},
                      withheld, {bib_a}))
    # a tracker whose clock runs 120 s fast (per-fix, its attribute from the same clock) on the last ticks
    plan_c = [copy.copy(m) for m in plan]
    fast = []
    withheld_c = set()
    for i, m in enumerate(plan_c):
        if m in ticks[-5:]:
            doc = _tick(m)
            e = next(r for r in doc["data"]["Riders"] if r.get("Bib") == bib_b)
            doc["data"]["Riders"].remove(e)
            ts = int(doc["data"]["TimeStamp"])
            withheld_c.add((bib_b, ts * 1000))
            plan_c[i] = signed(_dump(doc), m.attributes, m.at_s, "")
            fast.append(signed(_dump({"bib": bib_b, "time": ts + 120, "lat": e["Latitude"], "lon": e["Longitude"]}),
                               {**attrs, "event_time": str((ts + 120) * 1000)}, m.at_s + 0.1))
    out.append(Attack("clock_fast", "one tracker's clock 120 s fast (payload and attribute)", _with(plan_c, fast),
                      {"future_time"}, withheld_c, {bib_b}))
    del bib_c
    out += clock_attacks(plan, attrs)
    return out


#: (name, clock offset s, per-rider messages (else his entry in the ticks carries its own time), last ticks only,
#: what the gate must say): a tracker's clock off from the start (silent for the first three ticks: a fix that
#: reaches the engine before any of the field's cannot be measured), slow or fast, within and beyond the allowed lateness (60 s in ``run_live``) and the future tolerance
CLOCK_CASES = [
    ("clock_slow_20_fix", -20.0, True, False, {"clock_off"}),
    ("clock_slow_120_fix", -120.0, True, False, {"late"}),
    ("clock_fast_10_fix", 10.0, True, False, {"clock_off"}),
    ("clock_slow_20_tick", -20.0, False, False, {"clock_off"}),
    ("clock_slow_120_tick", -120.0, False, False, {"time_mismatch"}),
    ("clock_fast_10_tick", 10.0, False, False, {"clock_off"}),
    ("clock_fast_120_tick", 120.0, False, True, {"future_time"}),
]
CLOCK_OFF = "clock_off"  # rider_state quality of a flagged row (not a dead-letter reason)


def clock_attacks(plan: list, fix_attrs: dict) -> list[Attack]:
    """A tracker whose clock is off, for every case of ``CLOCK_CASES``: one victim each (riders 9.. of the
    middle tick, on every tick). ``reasons`` holds ``clock_off`` where the rows must come out flagged."""
    ticks = _ticks(plan)
    every = set.intersection(*({r.get("Bib") for r in _tick(m)["data"]["Riders"]} for m in ticks))
    middle = [r["Bib"] for r in _tick(ticks[len(ticks) // 2])["data"]["Riders"] if r.get("Bib") in every]
    out = []
    for k, (name, offset, per_fix, last_only, reasons) in enumerate(CLOCK_CASES):
        bib = middle[9 + 2 * k]
        attacked = ticks[-5:] if last_only else ticks[3:]
        cleared = [] if last_only else ticks[:3]  # his tracker silent there: nothing of his in the reference
        changed, extra, withheld = [], [], set()
        for m in plan:
            if m not in attacked and m not in cleared:
                changed.append(m)
                continue
            doc = _tick(m)
            riders = doc["data"]["Riders"]
            e = next(r for r in riders if r.get("Bib") == bib)
            ts = int(doc["data"]["TimeStamp"])
            withheld.add((bib, ts * 1000))
            if m in cleared or per_fix:
                riders.remove(e)
            else:
                e["TimeStamp"] = ts + offset
            changed.append(signed(_dump(doc), m.attributes, m.at_s, ""))
            if per_fix and m in attacked:
                extra.append(signed(_dump({"bib": bib, "time": ts + offset, "lat": e["Latitude"],
                                           "lon": e["Longitude"]}),
                                    {**fix_attrs, "event_time": str(int((ts + offset) * 1000))}, m.at_s + 0.1))
        what = (f"one tracker's clock {abs(offset):.0f} s {'slow' if offset < 0 else 'fast'}"
                f"{' on the last 5 ticks' if last_only else ''}, "
                + ("its own messages (payload and attribute)" if per_fix else "its own time in the ticks' entries"))
        out.append(Attack(name, what, _with(changed, extra), reasons, withheld, {bib}))
    return out


def merge(plan, attacks):
    """All attacks in one feed: the broken trackers' ticks replace the genuine ones, the rest is added."""
    by_time = {m.attributes["event_time"]: m for m in plan}
    extra = []
    for a in attacks:
        for m in a.messages:
            if m.fault:
                extra.append(m)
            elif m.attributes["event_time"] in by_time and m.data != by_time[m.attributes["event_time"]].data:
                by_time[m.attributes["event_time"]] = _combine(by_time[m.attributes["event_time"]], m, plan)
    # a replay repeats what was published: the tick as the other attacks changed it, not the original
    extra = [Message(m.at_s, by_time[m.attributes["event_time"]].data,
                     dict(by_time[m.attributes["event_time"]].attributes), m.fault)
             if m.fault == "replay" and m.attributes["event_time"] in by_time else m for m in extra]
    return sorted(list(by_time.values()) + extra, key=lambda m: m.at_s)


def _combine(current, changed, plan):
    """A tick with both attacks' changes to its rider entries."""
    original = next(m for m in plan if m.attributes["event_time"] == current.attributes["event_time"])
    base, cur, new = (json.loads(x.data)["data"]["Riders"] for x in (original, current, changed))
    orig_by = {r.get("Bib"): r for r in base}
    cur_by = {r.get("Bib"): r for r in cur}
    new_by = {r.get("Bib"): r for r in new}
    riders = []
    for bib, r in orig_by.items():
        if bib not in cur_by or bib not in new_by:
            continue  # removed by one attack
        riders.append(new_by[bib] if new_by[bib] != r else cur_by[bib])
    doc = json.loads(current.data)
    doc["data"]["Riders"] = riders
    return signed(json.dumps(doc, separators=(",", ":")).encode(), current.attributes, current.at_s, "")


def reference(plan: list, stage, course, withheld: set = frozenset()):
    """The causal replay of the genuine feed (minus what a broken tracker replaced): rows and dead-letter reasons."""
    from peloton.ingest.feed import concat_batches, parse_message
    from peloton.match.matching import dedupe
    from peloton.predict.model import StageModel
    from peloton.state.engine import RaceEngine

    batches, reasons = [], collections.Counter()
    for m in plan:
        fixes, dead = parse_message(stage.stage_id, m.attributes["kind"], m.data, start_list=stage.start_list())
        reasons.update(d["reason"] for d in dead)
        keep = np.array([(int(b), int(round(t * 1000))) not in withheld for b, t in zip(fixes.bib, fixes.t)], bool)
        batches.append(fixes.take(np.flatnonzero(keep)))
    fixes = dedupe(concat_batches(batches, stage.stage_id))[0]
    step = RaceEngine(stage.stage_id, course.finish_km).advance(fixes, course, StageModel.of_stage(stage, course))
    reasons.update(reason for batch, reason, _ in step.rejected for _ in range(len(batch)))
    return step.rider_state.to_rows(), reasons


def run_live(messages: list, stage, clock_s: float, lateness_s: float = 60.0, stale_after_s: float = 900.0):
    """The live graph (IngestLive, LiveRaceState) on TestStream, authentication on, the wall clock fixed at
    ``clock_s``; elements stamped with their publish time (the reader reads no timestamp attribute) ->
    (final rider_state rows, dead-letter rows)."""
    import apache_beam as beam
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms.window import TimestampedValue
    from apache_beam.utils.timestamp import Timestamp

    from transforms.engine import DEAD_LETTER, LATE, LiveRaceState
    from transforms.live import FeedSecurity, IngestLive, LiveParams

    first_ts = clock_s - max(m.at_s for m in messages) - 5.0
    stream, watermark_ms = TestStream(), 0
    for m in messages:
        at = first_ts + m.at_s
        stream = stream.add_elements([TimestampedValue(PubsubMessage(m.data, m.attributes), at)])
        ms = int((at - 5.0) * 1000)
        if ms > watermark_ms:
            stream, watermark_ms = stream.advance_watermark_to(Timestamp(micros=ms * 1000)), ms
    stream = stream.advance_watermark_to_infinity()
    params = LiveParams(early_after_s=1000, allowed_lateness_s=lateness_s)
    security = FeedSecurity(authenticate=True, keys_text=KEYS_TEXT, stale_after_s=stale_after_s,
                            clock=_FixedClock(clock_s))
    _RUN.clear()
    p = TestPipeline(options=StandardOptions(streaming=True))
    ingest = p | stream | IngestLive(stage.stage_id, params, security, stage.start_list())
    race = ingest["ticks"] | LiveRaceState(stage, lateness_s + params.window_s)
    race.rider_state | "KeepRows" >> beam.Map(_keep, "rider_state")
    ((ingest[DEAD_LETTER], ingest[LATE], race[DEAD_LETTER], race[LATE]) | beam.Flatten()
     | "KeepDead" >> beam.Map(_keep, "dead"))
    p.run().wait_until_finish()
    return list(_RUN.get("rider_state", [])), list(_RUN.get("dead", []))


class _FixedClock:
    """A wall clock stopped at one instant (picklable)."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


_RUN: dict = {}


def _keep(columns, name):
    _RUN.setdefault(name, []).extend(columns.to_rows())


def score(attack: Attack, rider_state: list, dead: list, reference: list, baseline: collections.Counter) -> dict:
    """Rows lost, doubled, forged, corrupted (other riders' values changed), an attacked tracker's rows flagged
    ``clock_off`` (not forged: they are his, with his clock's times), and the dead letters the attack added
    (beyond ``baseline``, the genuine feed's own), by reason."""
    ref = {(r["bib"], _ms(r["event_time"])): r for r in reference}
    ref = {k: v for k, v in ref.items() if k not in attack.withheld}
    got = collections.Counter((r["bib"], _ms(r["event_time"])) for r in rider_state)
    by_key = {(r["bib"], _ms(r["event_time"])): r for r in rider_state}
    corrupted = sum(1 for k, r in by_key.items() if k in ref and r["bib"] not in attack.victims
                    and _canon(r) != _canon(ref[k]))
    flagged = {k for k, r in by_key.items() if r["quality"] == CLOCK_OFF and r["bib"] in attack.victims}
    return {
        "lost": sum(1 for k in ref if k not in got),
        "doubled": sum(n - 1 for n in got.values() if n > 1),
        "forged": sum(1 for k in got if k not in ref and k not in flagged),
        "flagged": len(flagged),  # an attacked tracker's rows flagged clock_off (counted nowhere else)
        "flagged_with_gap": sum(1 for k in flagged if by_key[k]["gap_to_leader_s"] is not None),
        "corrupted": corrupted,
        "victim_changed": sum(1 for k, r in by_key.items() if k in ref and r["bib"] in attack.victims
                              and _canon(r) != _canon(ref[k])),
        "dead": dict(collections.Counter(d["reason"] for d in dead) - baseline),
    }


def _ms(v) -> int:
    import datetime

    return int(round(v.timestamp() * 1000)) if isinstance(v, datetime.datetime) else int(v)


def _canon(row: dict) -> tuple:
    return tuple(sorted((k, -1 if v is None else (round(v, 6) if isinstance(v, float) else v))
                        for k, v in row.items() if k != "event_time"))
