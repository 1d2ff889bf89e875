"""Groups on the road: who rides together, tracked over time, with names a person would use.

At every tick the riders on the road are sorted by distance; a new group
starts where the time gap between consecutive riders reaches the threshold
(1 s, the UCI rule). Hysteresis keeps GPS noise from flickering groups apart
and together: two riders who were together stay together until their gap
exceeds ``threshold + hysteresis``.

Group identity follows membership: a group keeps its id while riders join
and leave; when a group divides, the part holding most of its riders keeps
the id. The loop runs once per tick (not per fix), with numpy inside.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GroupParams", "GroupTimeline", "track_groups", "label_groups"]


@dataclass(frozen=True)
class GroupParams:
    threshold_s: float = 1.0  # UCI: a gap of 1 s or more makes a new group
    hysteresis_s: float = 0.75  # riders together stay together up to threshold + hysteresis
    min_speed_kph: float = 10.0  # floor for converting metres to seconds (stopped riders)
    min_life_s: float = 20.0  # groups shorter-lived than this are noise: no events for them
    attack_max_size: int = 3  # a split-off of at most this many riders ahead is an attack
    gruppetto_min_size: int = 10
    peloton_min_size: int = 10  # the last five stragglers on the road after the finish are not "the peloton"
    gruppetto_min_gap_s: float = 180.0


@dataclass
class GroupTimeline:
    """Per-fix group ids plus the changes of membership seen between ticks.

    ``changes`` holds (t, kind, from_id, to_id, bibs) with kind ``split`` (a
    new group formed from part of an existing one), ``merge`` (a whole group
    absorbed into another) or ``move`` (riders changing between two existing
    groups).
    """

    group_id: np.ndarray  # per fix, -1 when not grouped
    changes: list = field(default_factory=list)
    first_seen: dict = field(default_factory=dict)  # id -> t
    last_seen: dict = field(default_factory=dict)  # id -> t
    prev_gid: np.ndarray = field(default_factory=lambda: np.full(1, -1, dtype=np.int64))  # bib -> last group id
    next_id: int = 1

    def life_s(self, group_id: int) -> float:
        """How long a group has been seen so far (0 for one never seen)."""
        return self.last_seen.get(group_id, 0.0) - self.first_seen.get(group_id, 0.0)

    def continued(self, n: int) -> "GroupTimeline":
        """The same tracking state, for the next ``n`` fixes (the live engine's next window)."""
        return GroupTimeline(np.full(n, -1, dtype=np.int64), self.changes, self.first_seen, self.last_seen,
                             self.prev_gid, self.next_id)


def track_groups(t: np.ndarray, bib: np.ndarray, km: np.ndarray, speed_kph: np.ndarray, eligible: np.ndarray,
                 params: GroupParams = GroupParams(), state: GroupTimeline | None = None) -> GroupTimeline:
    """Group the eligible fixes of every tick and give groups stable ids.

    With ``state`` (the timeline of the ticks before these), tracking goes on
    from there: fed tick by tick it gives the same ids as fed all at once.
    """
    n = t.size
    timeline = GroupTimeline(np.full(n, -1, dtype=np.int64)) if state is None else state.continued(n)
    idx = np.flatnonzero(eligible)
    if idx.size == 0:
        return timeline
    order = idx[np.lexsort((-km[idx], t[idx]))]
    bounds = np.r_[0, np.flatnonzero(np.diff(t[order])) + 1, order.size]
    if timeline.prev_gid.size <= int(bib.max()):
        timeline.prev_gid = np.r_[timeline.prev_gid,
                                  np.full(int(bib.max()) + 1 - timeline.prev_gid.size, -1, dtype=np.int64)]
    prev_gid = timeline.prev_gid
    next_id = timeline.next_id
    speed = np.where(np.isfinite(speed_kph), np.maximum(speed_kph, params.min_speed_kph), params.min_speed_kph)
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = order[a:b]
        riders = bib[rows]
        tick = float(t[rows[0]])
        dx_m = (km[rows][:-1] - km[rows][1:]) * 1000.0
        pair_speed = np.maximum(speed[rows][:-1], speed[rows][1:]) / 3.6
        gap_s = dx_m / pair_speed
        before = prev_gid[riders]
        together = (before[:-1] == before[1:]) & (before[:-1] >= 0)
        linked = gap_s < np.where(together, params.threshold_s + params.hysteresis_s, params.threshold_s)
        label = np.r_[0, np.cumsum(~linked)]
        gid = _assign_ids(label, before, riders, tick, timeline, next_id)
        next_id = max(next_id, int(gid.max()) + 1)
        timeline.group_id[rows] = gid
        prev_gid[riders] = gid
        for g in np.unique(gid).tolist():
            timeline.first_seen.setdefault(g, tick)
            timeline.last_seen[g] = tick
    timeline.next_id = next_id
    return timeline


def _assign_ids(label: np.ndarray, before: np.ndarray, riders: np.ndarray, tick: float,
                timeline: GroupTimeline, next_id: int) -> np.ndarray:
    """Carry ids over from the previous tick by majority of members; record splits and merges."""
    n_labels = int(label.max()) + 1
    has_prev = before >= 0
    pairs = np.stack([label[has_prev], before[has_prev]], axis=1)
    ids = np.full(n_labels, -1, dtype=np.int64)
    if pairs.size:
        combos, counts = np.unique(pairs, axis=0, return_counts=True)
        # strongest claims first: most members, then the group nearer the front
        claim_order = np.lexsort((combos[:, 0], -counts))
        taken = set()
        for new_label, old_id in combos[claim_order]:
            if ids[new_label] < 0 and old_id not in taken:
                ids[new_label] = old_id
                taken.add(int(old_id))
    for lab in range(n_labels):
        if ids[lab] < 0:
            ids[lab] = next_id
            next_id += 1
    gid = ids[label]
    if pairs.size:
        present = set(ids.tolist())
        for new_label, old_id in combos.tolist():
            new_id = int(ids[new_label])
            if new_id == old_id:
                continue
            members = riders[(label == new_label) & (before == old_id)].tolist()
            if old_id not in present:
                kind = "merge"
            elif new_id not in timeline.first_seen:
                kind = "split"
            else:
                kind = "move"
            timeline.changes.append((tick, kind, old_id, new_id, members))
    return gid


def label_groups(rank: np.ndarray, size: np.ndarray, gap_s: np.ndarray, params: GroupParams = GroupParams()):
    """Names for one tick's groups, given rank from the front, size and gap to the leader.

    The peloton is the largest group; groups ahead of it are the breakaway
    (the head of the race) and chases; behind it, a large group far back is
    the gruppetto, single riders are solo and the rest are dropped groups.
    When no group has ``peloton_min_size`` riders (the race shattered, or the
    last riders on the road after the finish) there is no peloton to name
    the others by: they are groups and solo riders.
    """
    labels = np.full(rank.size, "group", dtype=object)
    if rank.size == 0:
        return labels
    if size.max() < params.peloton_min_size:
        labels[size == 1] = "solo"
        return labels
    biggest = int(np.argmax(np.where(size == size.max(), -rank, -np.inf)))  # largest, front-most on ties
    peloton_rank = rank[biggest]
    ahead = rank < peloton_rank
    labels[ahead] = "chase"
    labels[ahead & (rank == rank.min())] = "breakaway"
    behind = rank > peloton_rank
    labels[behind & (size == 1)] = "solo"
    labels[behind & (size > 1)] = "dropped"
    far = gap_s - gap_s[biggest] >= params.gruppetto_min_gap_s
    labels[behind & (size >= params.gruppetto_min_size) & far] = "gruppetto"
    labels[biggest] = "peloton"
    return labels
