"""Group detection and tracking on hand-built ticks."""
import numpy as np

from peloton.state.groups import GroupParams, label_groups, track_groups

SPEED_KPH = 36.0  # 10 m/s: a gap of 1 s is 10 m


def _ticks(positions_per_tick, dt=6.0):
    """positions_per_tick: list of {bib: metres along the course} -> flat arrays."""
    t, bib, km = [], [], []
    for i, pos in enumerate(positions_per_tick):
        for b, m in pos.items():
            t.append(1.78e9 + i * dt)
            bib.append(b)
            km.append(m / 1000.0)
    t, bib, km = np.array(t), np.array(bib), np.array(km)
    return t, bib, km, np.full(t.size, SPEED_KPH), np.ones(t.size, bool)


def _groups_at(tl, t, bib, tick_index):
    ticks = np.unique(t)
    sel = t == ticks[tick_index]
    out = {}
    for b, g in zip(bib[sel].tolist(), tl.group_id[sel].tolist()):
        out.setdefault(g, set()).add(b)
    return sorted(out.values(), key=min)


def test_a_gap_of_one_second_starts_a_new_group():
    # riders 1-3 within 5 m of each other, rider 4 at 9.5 m (0.95 s) behind 3, rider 5 15 m (1.5 s) behind 4
    tick = {1: 1000.0, 2: 997.0, 3: 995.0, 4: 985.5, 5: 970.5}
    t, bib, km, v, ok = _ticks([tick])
    tl = track_groups(t, bib, km, v, ok)
    assert _groups_at(tl, t, bib, 0) == [{1, 2, 3, 4}, {5}]


def test_hysteresis_keeps_a_group_together_through_gps_noise():
    # rider 2 wobbles between 0.8 s and 1.5 s behind rider 1 after starting together
    wobble = [8.0, 15.0, 9.0, 14.0, 12.0, 8.0]
    ticks = [{1: 1000.0 + 60 * i, 2: 1000.0 + 60 * i - w} for i, w in enumerate(wobble)]
    t, bib, km, v, ok = _ticks(ticks)
    tl = track_groups(t, bib, km, v, ok)
    assert len(np.unique(tl.group_id)) == 1
    # without hysteresis the same noise splits and merges them
    tl0 = track_groups(t, bib, km, v, ok, GroupParams(hysteresis_s=0.0))
    assert len(np.unique(tl0.group_id)) > 1
    # riders who start apart are not pulled together by the hysteresis band
    apart = [{1: 1000.0 + 60 * i, 2: 1000.0 + 60 * i - 14.0} for i in range(4)]
    t, bib, km, v, ok = _ticks(apart)
    tl = track_groups(t, bib, km, v, ok)
    assert all(len(g) == 1 for g in _groups_at(tl, t, bib, 3))


def test_group_ids_follow_membership_through_splits_and_merges():
    peloton = {b: 500.0 - 2.0 * b for b in range(10, 30)}
    ticks = []
    for i in range(12):
        pos = {b: x + 60 * i for b, x in peloton.items()}
        if i >= 4:  # riders 10 and 11 attack and gain 20 m a tick
            pos[10] += 20.0 * (i - 3)
            pos[11] += 20.0 * (i - 3) - 1.0
        if i >= 9:  # the peloton brings them back
            pos[10] = pos[12] + 2.0
            pos[11] = pos[12] + 1.0
        ticks.append(pos)
    t, bib, km, v, ok = _ticks(ticks)
    tl = track_groups(t, bib, km, v, ok)
    ids = lambda tick: {b: g for b, g in zip(bib[t == np.unique(t)[tick]], tl.group_id[t == np.unique(t)[tick]])}
    before, during, after = ids(2), ids(7), ids(11)
    assert len(set(before.values())) == 1
    main = before[20]
    assert during[20] == main and after[20] == main  # the bulk keeps its id
    assert during[10] == during[11] != main  # the attackers form their own group
    assert after[10] == main
    kinds = [c[1] for c in tl.changes]
    assert "split" in kinds and "merge" in kinds


def test_labels_a_person_would_use():
    rank = np.arange(1, 6)
    size = np.array([2, 4, 120, 1, 25])
    gap = np.array([0.0, 60.0, 200.0, 260.0, 900.0])
    assert label_groups(rank, size, gap).tolist() == ["breakaway", "chase", "peloton", "solo", "gruppetto"]


def test_a_handful_of_stragglers_is_not_the_peloton():
    """Stage 4's last tick: the winner crossed 16 minutes ago, five riders are the biggest group left on the road."""
    rank = np.arange(1, 5)
    size = np.array([5, 3, 1, 2])
    gap = np.array([1262.8, 1263.8, 1264.4, 1264.7])
    assert label_groups(rank, size, gap).tolist() == ["group", "group", "solo", "group"]


def test_tracking_tick_by_tick_gives_the_ids_of_tracking_all_at_once():
    """The live engine feeds one window at a time: ids, splits and merges must not depend on that."""
    rng = np.random.default_rng(3)
    ticks = []
    for i in range(30):
        pos = {b: 60.0 * i - 3.0 * b + rng.normal(0, 4) for b in range(1, 25)}
        for b in (1, 2):  # an attack that is caught again
            pos[b] += 25.0 * min(i, 30 - i) if 5 <= i <= 25 else 0.0
        ticks.append(pos)
    t, bib, km, v, ok = _ticks(ticks)
    whole = track_groups(t, bib, km, v, ok)
    state = None
    pieces = []
    for tick in np.unique(t):
        sel = t == tick
        state = track_groups(t[sel], bib[sel], km[sel], v[sel], ok[sel], state=state)
        pieces.append(state.group_id)
    assert np.array_equal(np.concatenate(pieces), whole.group_id)
    assert state.changes == whole.changes and len(whole.changes) >= 2
    assert state.first_seen == whole.first_seen
