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

from peloton.publish import PlanParams, plan_messages
from tests import hostile
from tests.conftest import slice_recording

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
    wanted = set().union(*(a.reasons for a in attacks))
    assert wanted <= set(outcome["dead"]), (wanted, outcome["dead"])
    assert outcome["dead"]["impossible_jump"] == 5  # the teleport, and nothing else
    assert outcome["dead"]["conflicting_fix"] == 1 and outcome["dead"]["stale"] == 3
    assert outcome["dead"]["replayed"] == 1 and outcome["dead"]["too_many_riders"] == 1
    assert outcome["dead"]["unknown_rider"] == 3 and outcome["dead"]["missing_field"] == 3
    # the fast clock's 5 fixes, the 1 h-ahead fixes (2) and tick (one letter per rider)
    assert outcome["dead"]["future_time"] >= 5 + 2 + 1
    assert collections.Counter(d["reason"] for d in dead if d["reason"] == "late") == collections.Counter()


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
