"""A hostile gateway and faulty trackers against the whole live graph (TestStream, authentication on).

Every attack of ``tests/hostile.py`` is mixed into a real stretch of stage 4
(signed as the feed signs it) and run through IngestLive and the live race
engine together; the final rows must be the causal replay's of the genuine
fixes: none lost, none doubled, no forged row, no other rider's value
changed, and each attack dead-lettered with its reason.
"""
import collections
import json

import pytest

from peloton.sim.publish import PlanParams, plan_messages
from tests import hostile
from tests.conftest import slice_recording

pytestmark = [pytest.mark.slow]

SLICE = (700, 730)  # 30 ticks, 3 minutes
OLD = (550, 554)  # ticks captured 15 minutes earlier


def _plan(recording, stage, span):
    text = json.dumps(slice_recording(recording, *span))
    return [hostile.signed(m.data, m.attributes, m.at_s, "")
            for m in plan_messages(text, stage.stage_id, PlanParams())]


@pytest.fixture(scope="module")
def feed(stage4_recording, stage4, stage4_course):
    plan = _plan(stage4_recording, stage4, SLICE)
    old = _plan(stage4_recording, stage4, OLD)
    clock = max(int(m.attributes["event_time"]) for m in plan) / 1000 + 5.0
    return plan, hostile.attacks(plan, old, stage4_course, stage4.start_list()), clock


def test_every_attack_at_once_loses_doubles_and_corrupts_nothing(feed, stage4, stage4_course):
    plan, attacks, clock = feed
    messages = hostile.merge(plan, attacks)
    withheld = set().union(*(a.withheld for a in attacks))
    victims = set().union(*(a.victims for a in attacks))
    rows, dead = hostile.run_live(messages, stage4, clock)
    reference, baseline = hostile.reference(plan, stage4, stage4_course, withheld)
    combined = hostile.Attack("all", "", messages, set(), withheld, victims)
    outcome = hostile.score(combined, rows, dead, reference, baseline)
    assert outcome["lost"] == 0 and outcome["doubled"] == 0 and outcome["forged"] == 0, outcome
    assert outcome["corrupted"] == 0 and outcome["victim_changed"] == 0, outcome
    wanted = set().union(*(a.reasons for a in attacks)) - {hostile.CLOCK_OFF}  # clock_off: a flag, not a letter
    assert wanted <= set(outcome["dead"]), (wanted, outcome["dead"])
    assert outcome["dead"]["impossible_jump"] == 5  # the teleport, and nothing else
    assert outcome["dead"]["conflicting_fix"] == 1 and outcome["dead"]["stale"] == 3
    assert outcome["dead"]["replayed"] == 1 and outcome["dead"]["too_many_riders"] == 1
    assert outcome["dead"]["unknown_rider"] == 3 and outcome["dead"]["missing_field"] == 3
    # the fast clock's 5 fixes, the 1 h-ahead fixes (2) and tick (one letter per rider)
    assert outcome["dead"]["future_time"] >= 5 + 2 + 1
    # nothing late but the fixes of the clock 120 s slow (beyond the 60 s lateness)
    slow = next(a for a in attacks if a.name == "clock_slow_120_fix")
    late = [d for d in dead if d["reason"] == "late"]
    assert late and {d["bib"] for d in late} <= slow.victims, late[:3]
    assert outcome["flagged"] > 0 and outcome["flagged_with_gap"] == 0, outcome  # the clocks within tolerance


def test_a_sustained_teleport_alone_changes_no_one_and_the_genuine_fix_after_it_is_kept(feed, stage4,
                                                                                        stage4_course):
    """(Every attack alone: ``python benchmarks/hostile.py``, the table in RELIABILITY.md.)"""
    plan, attacks, clock = feed
    attack = next(a for a in attacks if a.name == "teleport")
    rows, dead = hostile.run_live(attack.messages, stage4, clock)
    reference, baseline = hostile.reference(plan, stage4, stage4_course, attack.withheld)
    outcome = hostile.score(attack, rows, dead, reference, baseline)
    assert outcome["lost"] == outcome["doubled"] == outcome["forged"] == outcome["corrupted"] == 0, outcome
    assert outcome["dead"] == {"impossible_jump": 5} and outcome["victim_changed"] == 0, outcome


def _fixes_of(bib, messages, stage):
    from peloton.ingest.feed import parse_message

    return sum(int((parse_message(stage.stage_id, m.attributes["kind"], m.data)[0].bib == bib).sum())
               for m in messages)


def test_trackers_whose_clock_is_off_are_flagged_or_dead_lettered_and_change_no_one(feed, stage4, stage4_course):
    """Slow by 20 s and 120 s, fast by 10 s and 120 s, in their own messages and in the ticks' entries, all at
    once: within the lateness and the future tolerance a tracker's rows come out flagged ``clock_off`` (no gap),
    beyond them its fixes are dead letters; no other rider's row changes and no genuine fix is lost."""
    plan, attacks, clock = feed
    clocks = [a for a in attacks if a.name.startswith("clock_")]
    assert {a.name for a in clocks} >= {name for name, *_ in hostile.CLOCK_CASES}
    messages = hostile.merge(plan, clocks)
    withheld = set().union(*(a.withheld for a in clocks))
    victims = set().union(*(a.victims for a in clocks))
    rows, dead = hostile.run_live(messages, stage4, clock)
    reference, baseline = hostile.reference(plan, stage4, stage4_course, withheld)
    outcome = hostile.score(hostile.Attack("clocks", "", messages, set(), withheld, victims), rows, dead, reference,
                            baseline)
    assert outcome["lost"] == outcome["doubled"] == outcome["forged"] == outcome["corrupted"] == 0, outcome
    assert outcome["victim_changed"] == 0, outcome  # the genuine fixes before a clock went 120 s fast
    assert outcome["flagged"] > 0 and outcome["flagged_with_gap"] == 0, outcome
    genuine = {(r["bib"], hostile._ms(r["event_time"])) for r in reference}
    for attack in clocks:
        (bib,) = attack.victims
        sent = _fixes_of(bib, attack.messages, stage4) - sum(1 for b, _ in genuine if b == bib)
        mine = [r for r in rows if r["bib"] == bib and (bib, hostile._ms(r["event_time"])) not in genuine]
        # a message refused whole (its event_time attribute ahead of the clock) names no bib: its payload does
        letters = collections.Counter(d["reason"] for d in dead if d["bib"] == bib or (
            d["bib"] is None and f'"bib":{bib},' in d["raw"]))
        assert all(r["quality"] == hostile.CLOCK_OFF and r["gap_to_leader_s"] is None for r in mine), attack.name
        if hostile.CLOCK_OFF in attack.reasons:  # flagged, every one, and nothing dead-lettered
            assert len(mine) == sent and not letters, (attack.name, sent, len(mine), letters)
        else:  # dead letters with the reason (a slow clock's first fixes may beat the watermark: flagged then)
            (reason,) = attack.reasons
            assert letters[reason] >= 1 and letters[reason] + len(mine) == sent, (attack.name, sent, len(mine),
                                                                                    letters)
            assert set(letters) == {reason}, (attack.name, letters)
