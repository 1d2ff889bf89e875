"""The virtual general classification kernel: ranks on the road, undecided ranges, bonuses, the leader's events."""
import numpy as np

from peloton.state.classifications import Standings
from peloton.state.virtual_gc import GAP_CEILING_S, GAP_HOLD_S, VirtualGC, group_head_gaps

T0 = 50_000.0


def _book(gc=None, **kw):
    standings = None if gc is None else Standings(gc_s=dict(gc), source="test")
    return VirtualGC("s", "VAL", standings, {1: "A", 2: "A", 3: "B"}, **kw)


def _update(book, now, fixes, results=(), bonus=()):
    """fixes: [(bib, km, gap, group)] all at ``now``."""
    bib, km, gap, gid = (np.array(c) for c in zip(*fixes)) if fixes else [np.zeros(0)] * 4
    n = len(fixes)
    return book.update(now, bib.astype(np.int64), np.full(n, now), km.astype(float), 100.0 - km.astype(float),
                       gap.astype(float), gid.astype(np.int64), list(results), list(bonus))


def _by_bib(rows):
    return {r["bib"]: r for r in rows}


def test_the_gap_of_a_group_is_its_first_riders():
    t = np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    km = np.array([10.0, 9.99, 5.0, 4.99, 3.0])
    gap = np.array([0.0, 0.4, 300.0, 300.5, np.nan])
    gid = np.array([7, 7, 8, 8, -1])
    assert group_head_gaps(t, km, gap, gid).tolist()[:4] == [0.0, 0.0, 300.0, 300.0]
    assert np.isnan(group_head_gaps(t, km, gap, gid)[4])  # no group, no gap: not known


def test_a_breakaway_takes_the_virtual_lead_decided_with_an_event_once():
    book = _book({1: 0.0, 2: 30.0, 3: 100.0})
    rows, events = _update(book, T0, [(3, 50.0, 0.0, 1), (1, 48.0, 120.0, 2), (2, 47.99, 120.4, 2)])
    gc = _by_bib(rows)
    assert [gc[b]["position"] for b in (3, 1, 2)] == [1, 2, 3] and gc[3]["decided"]
    assert gc[3]["value"] == 100 and gc[3]["classification"] == "virtual_general"
    # behind the head of the race a time on the road is a range (the gap's error), the same for the group's riders
    assert (gc[1]["value_min"], gc[1]["value_max"]) == (118, 122) and (gc[2]["value_min"], gc[2]["value_max"]) == (
        148, 152)
    assert gc[1]["value"] is None and gc[1]["gap_to_leader"] is None and not gc[1]["decided"]
    assert [e["event_type"] for e in events] == ["virtual_leader_change"] and events[0]["bibs"] == [3, 1]
    rows, events = _update(book, T0 + 6, [(3, 50.1, 0.0, 1), (1, 48.1, 120.0, 2), (2, 48.09, 120.4, 2)])
    assert rows == [] and events == []  # nothing changed: no row, no event


def test_within_the_gaps_error_the_first_place_is_a_range_and_nobody_takes_the_jersey():
    book = _book({1: 0.0, 2: 30.0, 3: 100.0})
    rows, events = _update(book, T0, [(3, 50.0, 0.0, 1), (1, 49.0, 100.5, 2), (2, 48.99, 100.5, 2)])
    gc = _by_bib(rows)
    assert gc[3]["position"] is None and (gc[3]["place_min"], gc[3]["place_max"]) == (1, 2)
    assert (gc[1]["place_min"], gc[1]["place_max"]) == (1, 2) and not gc[1]["decided"]
    assert gc[1]["value_min"] <= 100.5 <= gc[1]["value_max"] and gc[1]["value_max"] - gc[1]["value_min"] >= 4
    assert gc[2]["position"] == 3  # behind both whatever the gap's error
    assert events == []


def test_riders_of_one_group_share_its_error_so_their_order_is_their_time_before():
    book = _book({1: 0.0, 2: 0.4, 3: 100.0})
    rows, _ = _update(book, T0, [(3, 50.0, 0.0, 1), (1, 40.0, 600.0, 2), (2, 40.01, 600.3, 2)])
    gc = _by_bib(rows)
    assert gc[1]["position"] == 2 and gc[2]["position"] == 3  # 0.4 s apart, same group: decided


def test_a_silent_tracker_gives_no_value_and_opens_the_places_it_could_take():
    book = _book({1: 0.0, 2: 30.0, 3: 100.0})
    _update(book, T0, [(3, 50.0, 0.0, 1), (1, 48.0, 120.0, 2), (2, 47.99, 120.4, 2)])
    later = T0 + GAP_HOLD_S + 6
    rows, events = _update(book, later, [(3, 60.0, 0.0, 1), (2, 58.0, 110.0, 2)])
    gc = _by_bib(rows)
    assert gc[1]["value"] is None and not gc[1]["decided"] and gc[1]["value_max"] == GAP_CEILING_S
    assert (gc[1]["place_min"], gc[1]["place_max"]) == (1, 3) and "tracker silent" in gc[1]["detail"]
    assert gc[3]["position"] is None and gc[3]["place_max"] == 2  # rider 1 may be ahead of him now
    assert events == []


def test_finish_bonuses_once_the_results_are_said():
    book = _book({1: 0.0, 2: 5.0, 3: 7.0})
    _update(book, T0, [(1, 99.0, 0.0, 1), (2, 98.99, 0.0, 1), (3, 98.98, 0.0, 1)])
    results = [{"bib": b, "status": "finished", "position": p, "place_min": p, "place_max": p, "order_decided": True,
                "credited_time_behind_s": 0.0, "credited_time_decided": True, "same_time_group": 1,
                "time_behind_winner_s": 0.1 * (p - 1), "finish_uncertainty_s": 0.5, "event_time": 1}
               for b, p in ((3, 1), (2, 2), (1, 3))]
    rows, _ = _update(book, T0 + 60, [], results=results)
    gc = _by_bib(rows)
    assert gc[3]["value"] == 7 - 10 and gc[2]["value"] == 5 - 6 and gc[1]["value"] == 0 - 4
    assert [gc[b]["position"] for b in (1, 3, 2)] == [1, 2, 3] and all(r["decided"] for r in rows)


def test_an_undecided_finish_place_gives_a_bonus_range_never_a_guess():
    book = _book({1: 0.0, 2: 20.0})
    results = [{"bib": b, "status": "finished", "position": None, "place_min": 1, "place_max": 2,
                "order_decided": False, "credited_time_behind_s": 0.0, "credited_time_decided": True,
                "same_time_group": 1, "time_behind_winner_s": 0.0, "finish_uncertainty_s": 0.0, "event_time": 1}
               for b in (1, 2)]
    gc = _by_bib(_update(book, T0, [], results=results)[0])
    assert gc[1]["value"] is None and gc[1]["value_min"] == -10 and gc[1]["value_max"] == -6
    assert gc[1]["position"] == 1  # 20 s ahead whatever the bonuses


def test_bonus_point_seconds_go_to_the_first_three_seen_past_it():
    book = _book({1: 0.0, 2: 0.0, 3: 0.0}, bonus_km=np.array([30.0]))
    passages = [(np.array([1, 2, 3]), np.array([T0 - 40, T0 - 30, T0 - 20]), np.array([T0 - 38, T0 - 28, T0 - 18]))]
    rows, _ = _update(book, T0, [(1, 31.0, 0.0, 1), (2, 30.9, 0.0, 1), (3, 30.8, 0.0, 1)], bonus=passages)
    gc = _by_bib(rows)
    assert [gc[b]["value"] for b in (1, 2, 3)] == [-8, -5, -2] and gc[1]["position"] == 1


def test_without_standings_every_rider_seen_starts_from_zero():
    book = _book(None)
    rows, events = _update(book, T0, [(5, 50.0, 0.0, 1), (6, 40.0, 300.0, 2)])
    gc = _by_bib(rows)
    assert gc[5]["value"] == 0 and gc[6]["value_min"] == 298 and gc[5]["position"] == 1
    assert "this stage alone" in gc[5]["detail"] and events[0]["bibs"] == [5]  # no leader before


def test_the_top_ten_is_said_at_every_change_the_rest_once_a_minute():
    book = _book({b: 100.0 * b for b in range(1, 13)})
    start = 60.0 * 1000  # the first window of a minute
    fixes = [(b, 50.0 - b, 0.0, b) for b in range(1, 13)]
    assert len(_update(book, start, fixes)[0]) == 12  # everyone, the first time
    moved = [(b, 50.0 - b, 5.0 if b in (2, 12) else 0.0, b) for b in range(1, 13)]
    assert [r["bib"] for r in _update(book, start + 6, moved)[0]] == [2]  # the 12th moved too: not said yet
    assert [r["bib"] for r in _update(book, start + 60, moved)[0]] == [12]
    again = [(b, 50.0 - b, {2: 5.0, 12: 9.0}.get(b, 0.0), b) for b in range(1, 13)]
    assert _update(book, start + 66, again)[0] == []
    assert [r["bib"] for r in book.close(start + 70, [], [])[0]] == [12]  # the end of the stage: everyone's last


def test_places_and_values_never_contradict_each_other():
    """Random windows (groups, silent trackers, gaps read windows apart): a decided place ahead never has the larger
    decided time, the leader's gap is 0 and every other decided gap is positive."""
    rng = np.random.default_rng(3)
    book = _book({b: float(rng.integers(0, 40)) for b in range(1, 31)})
    for k in range(40):
        seen = rng.choice(np.arange(1, 31), size=int(rng.integers(5, 30)), replace=False)
        group = rng.integers(0, 4, seen.size)
        fixes = [(int(b), 100.0 - g, 20.0 * g + float(rng.normal(0, 0.2)) if g else 0.0, int(g))
                 for b, g in zip(seen, group)]
        _update(book, T0 + 6 * k, fixes)
        rows = book._rows(T0 + 6 * k, book._claims(T0 + 6 * k, []), np.arange(book.riders.size))
        done = sorted((r for r in rows if r["decided"]), key=lambda r: r["position"])
        assert all(a["value"] <= b["value"] for a, b in zip(done, done[1:]))
        assert all(r["gap_to_leader"] is None or (r["gap_to_leader"] >= 0) for r in rows)
        assert all(r["value_min"] <= r["value_max"] and r["place_min"] <= r["place_max"] for r in rows)
