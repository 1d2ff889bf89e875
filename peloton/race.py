"""Race state from matched fixes: gaps, groups and race events (road stages), time-trial gaps.

Pure numpy over a whole stage's matched fixes (the batch replay has them all).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peloton.gaps import Trajectory, gap_to_leader_s
from peloton.groups import GroupParams, label_groups, track_groups
from peloton.matching import Matched
from peloton.table import Columns

__all__ = ["RaceParams", "RaceState", "derive_race_state", "time_trial_gaps", "estimate_start_times"]


@dataclass(frozen=True)
class RaceParams:
    groups: GroupParams = GroupParams()
    stopped_kph: float = 3.0  # slower than this on the course is stopped ...
    stopped_min_s: float = 30.0  # ... for at least this long
    signal_lost_s: float = 60.0  # no fix for this long while the feed goes on
    finish_tolerance_km: float = 0.6  # trackers stop just before the line: last fix this close counts
    itt_start_grid_s: float = 60.0  # time-trial riders start on whole minutes
    itt_grid_step_km: float = 0.05


@dataclass
class RaceState:
    gap_to_leader_s: np.ndarray
    gap_to_group_ahead_s: np.ndarray
    group_id: np.ndarray  # -1 = none
    groups: Columns
    events: Columns


def _riding(m: Matched) -> np.ndarray:
    """Fixes that take part in groups: on the road, not past the line."""
    return np.isin(m.quality, ("good", "off_route", "neutral"))


def derive_race_state(m: Matched, finish_km: float, time_trial: bool = False,
                      params: RaceParams = RaceParams()) -> RaceState:
    f = m.fixes
    n = len(f)
    usable = np.isin(m.quality, ("good", "finished", "neutral"))
    if time_trial:
        gap = time_trial_gaps(f.bib, f.t, m.km, usable, params)
        empty = np.full(n, np.nan)
        events = _rider_events(m, finish_km, params, [])
        return RaceState(gap, empty, np.full(n, -1, dtype=np.int64), _groups_columns(f.stage_id, []), events)
    gap, _leader = gap_to_leader_s(f.t, m.km, f.bib, usable)
    riding = _riding(m)
    timeline = track_groups(f.t, f.bib, m.km, m.speed_kph, riding, params.groups)
    gid = timeline.group_id
    group_rows, gap_ahead = _group_rows(f.stage_id, f.t, f.bib, m.km, m.km_to_finish, m.speed_kph, gap, gid,
                                        params.groups)
    events = _rider_events(m, finish_km, params, _group_events(f.stage_id, timeline, group_rows, params.groups))
    return RaceState(gap, gap_ahead, gid, _groups_columns(f.stage_id, group_rows), events)


def _group_rows(stage_id, t, bib, km, ktf, speed, gap, gid, gparams):
    """One row per group per tick, and every fix's gap to the tail of the group ahead."""
    gap_ahead = np.full(t.size, np.nan)
    idx = np.flatnonzero(gid >= 0)
    rows = []
    if idx.size == 0:
        return rows, gap_ahead
    order = idx[np.lexsort((-km[idx], t[idx]))]
    bounds = np.r_[0, np.flatnonzero(np.diff(t[order])) + 1, order.size]
    for a, b in zip(bounds[:-1], bounds[1:]):  # one iteration per tick
        r = order[a:b]
        g = gid[r]
        starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]  # riders sorted by km: groups are contiguous
        ends = np.r_[starts[1:], r.size] - 1
        head, tail = r[starts], r[ends]
        size = ends - starts + 1
        rank = np.arange(1, starts.size + 1)
        group_gap = gap[head]
        labels = label_groups(rank, size, group_gap, gparams)
        ahead_gap = np.r_[np.nan, gap[head[1:]] - gap[tail[:-1]]]
        tail_ahead = np.r_[-1, tail[:-1]]
        member_group = np.repeat(np.arange(starts.size), size)
        ta = tail_ahead[member_group]
        gap_ahead[r] = np.where(ta >= 0, gap[r] - gap[np.maximum(ta, 0)], np.nan)
        mean_speed = np.add.reduceat(np.nan_to_num(speed[r]), starts) / np.maximum(
            np.add.reduceat(np.isfinite(speed[r]).astype(float), starts), 1)
        bibs = np.split(bib[r], starts[1:])
        tick = float(t[r[0]])
        for i in range(starts.size):
            rows.append({
                "stage_id": stage_id, "event_time": int(round(tick * 1000)), "group_id": int(g[starts[i]]),
                "rank": int(rank[i]), "label": labels[i], "size": int(size[i]), "bibs": bibs[i].tolist(),
                "km_to_finish_head": round(float(ktf[head[i]]), 4), "km_to_finish_tail": round(float(ktf[tail[i]]), 4),
                "length_m": round(float((km[head[i]] - km[tail[i]]) * 1000.0), 1),
                "speed_kph": round(float(mean_speed[i]), 2), "gap_to_leader_s": round(float(group_gap[i]), 2),
                "gap_to_group_ahead_s": None if i == 0 else round(float(max(ahead_gap[i], 0.0)), 2),
            })
    return rows, np.maximum(gap_ahead, 0.0)


def _groups_columns(stage_id: str, rows: list[dict]) -> Columns:
    return Columns.from_rows("groups", rows)


def _group_events(stage_id, timeline, group_rows, gparams) -> list[dict]:
    """split / attack / dropped / bridge / merge events, without flicker."""
    life = {g: timeline.last_seen[g] - timeline.first_seen[g] for g in timeline.first_seen}
    where = {(r["event_time"], r["group_id"]): r for r in group_rows}
    events = []
    for tick, kind, from_id, to_id, members in timeline.changes:
        ms = int(round(tick * 1000))
        dest = where.get((ms, to_id))
        if dest is None:
            continue
        if kind == "split":
            if life.get(to_id, 0) < gparams.min_life_s:
                continue
            parent = where.get((ms, from_id))
            ahead = parent is not None and dest["rank"] < parent["rank"]
            small = len(members) <= gparams.attack_max_size
            etype = "attack" if (ahead and small) else ("dropped" if (small and not ahead) else "split")
        elif kind == "merge":
            if life.get(from_id, 0) < gparams.min_life_s:
                continue
            etype = "merge"
        else:  # riders moving between two existing groups
            if life.get(to_id, 0) < gparams.min_life_s or life.get(from_id, 0) < gparams.min_life_s:
                continue
            source = where.get((ms, from_id))
            if source is None:
                continue
            etype = "dropped" if dest["rank"] > source["rank"] else "bridge"
        events.append({"stage_id": stage_id, "event_time": ms, "event_type": etype,
                       "km_to_finish": dest["km_to_finish_head"], "bibs": sorted(members),
                       "group_ids": [from_id, to_id], "detail": f"{kind} {from_id}->{to_id}"})
    return events


def _rider_events(m: Matched, finish_km: float, params: RaceParams, events: list[dict]) -> Columns:
    """stopped, signal_lost / signal_back and finished, per rider (vectorised over fixes)."""
    f = m.fixes
    stage_id = f.stage_id
    n = len(f)
    if n:
        same_prev = np.r_[False, f.bib[1:] == f.bib[:-1]]
        ticks = np.unique(f.t)
        # signal: a silence longer than signal_lost_s while the feed kept ticking
        dt = np.r_[0.0, np.diff(f.t)]
        ticks_between = np.searchsorted(ticks, f.t) - np.searchsorted(ticks, np.r_[f.t[0], f.t[:-1]]) - 1
        lost = np.flatnonzero(same_prev & (dt >= params.signal_lost_s) & (ticks_between >= 3))
        for i in lost.tolist():
            for etype, j in (("signal_lost", i - 1), ("signal_back", i)):
                events.append(_rider_event(stage_id, etype, f.t[j], m.km_to_finish[j], f.bib[j],
                                           f"silent for {dt[i]:.0f} s"))
        # stopped: slow on the course for long enough (first fix of each stop)
        on_course = np.isin(m.quality, ("good", "off_route"))
        slow = on_course & (np.nan_to_num(m.speed_kph, nan=99.0) < params.stopped_kph)
        run_start = slow & ~(np.r_[False, slow[:-1]] & same_prev)
        run_id = np.cumsum(run_start) * slow
        if slow.any():
            firsts = np.flatnonzero(run_start)
            lasts = np.r_[firsts[1:], n]
            for a in firsts.tolist():
                b = a
                while b + 1 < n and run_id[b + 1] == run_id[a]:
                    b += 1
                if f.t[b] - f.t[a] >= params.stopped_min_s:
                    events.append(_rider_event(stage_id, "stopped", f.t[a], m.km_to_finish[a], f.bib[a],
                                               f"stationary for {f.t[b] - f.t[a]:.0f} s"))
            del lasts
        # finished: first fix past the line, or a last fix just short of it (trackers stop there)
        last = np.r_[~same_prev[1:], True]
        crossed = (m.km_to_finish <= 0) & ~(np.r_[False, m.km_to_finish[:-1] <= 0] & same_prev)
        near_end = last & (m.km_to_finish <= params.finish_tolerance_km)
        done = set()
        for i in np.flatnonzero(crossed | near_end).tolist():
            if f.bib[i] in done:
                continue
            done.add(int(f.bib[i]))
            t_cross = f.t[i]
            v = m.speed_kph[i]
            if m.km_to_finish[i] > 0 and np.isfinite(v) and v > 5:
                t_cross += m.km_to_finish[i] / v * 3600.0
            events.append(_rider_event(stage_id, "finished", t_cross, 0.0, f.bib[i], "crossed the line"
                                       if m.km_to_finish[i] <= 0 else "last fix just before the line"))
    events.sort(key=lambda e: (e["event_time"], e["event_type"]))
    return Columns.from_rows("race_events", events)


def _rider_event(stage_id, etype, t, ktf, bib, detail) -> dict:
    return {"stage_id": stage_id, "event_time": int(round(float(t) * 1000)), "event_type": etype,
            "km_to_finish": None if not np.isfinite(ktf) else round(float(ktf), 4), "bibs": [int(bib)],
            "group_ids": [],
            "detail": detail}


def estimate_start_times(bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                         grid_s: float = 60.0) -> dict:
    """Time-trial start of each rider: when the track leaves km 0, snapped to the start grid.

    Riders start at fixed intervals on whole minutes; the time the matched
    track reaches km 0.3, less the time at the rider's early pace, lands
    within seconds of the real start and is rounded to the grid when close.
    """
    starts = {}
    for b in np.unique(bib[usable]).tolist():
        mine = usable & (bib == b)
        traj = Trajectory(t[mine], km[mine])
        t03, t08 = traj.passage_time(np.array([0.3, 0.8]))
        if not (np.isfinite(t03) and np.isfinite(t08)) or t08 <= t03:
            continue
        est = t03 - 0.3 * (t08 - t03) / 0.5
        snapped = round(est / grid_s) * grid_s
        starts[int(b)] = snapped if abs(snapped - est) <= grid_s / 4 else est
    return starts


def time_trial_gaps(bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                    params: RaceParams = RaceParams()) -> np.ndarray:
    """Elapsed time at a distance against the best elapsed time there so far (s; negative = faster).

    "So far" means among riders who passed that distance before this fix's
    event time, the rider himself excluded: the meaning of the feed's
    ``secToITTLead``.
    """
    gap = np.full(t.size, np.nan)
    starts = estimate_start_times(bib, t, km, usable, params.itt_start_grid_s)
    if not starts:
        return gap
    riders = np.array(sorted(starts))
    grid = np.arange(0.0, np.nanmax(km[usable]) + params.itt_grid_step_km, params.itt_grid_step_km)
    passage = np.full((riders.size, grid.size), np.nan)
    for i, b in enumerate(riders.tolist()):  # one row per rider
        mine = usable & (bib == b)
        passage[i] = Trajectory(t[mine], km[mine]).passage_time(grid)
    start = np.array([starts[b] for b in riders.tolist()])
    elapsed = passage - start[:, None]
    rider_row = {b: i for i, b in enumerate(riders.tolist())}
    fix_row = np.array([rider_row.get(int(b), -1) for b in bib])
    ok = (fix_row >= 0) & usable & (km >= 0)
    # compare at the grid point just behind each fix, where the rider's own time is known
    k = np.clip(np.floor(km / params.itt_grid_step_km).astype(int), 0, grid.size - 1)
    own = elapsed[np.maximum(fix_row, 0), k]
    for col in np.unique(k[ok]).tolist():  # one iteration per grid point
        p, e = passage[:, col], elapsed[:, col]
        have = np.isfinite(p)
        if not have.any():
            continue
        order = np.argsort(p[have])
        p_sorted, e_sorted = p[have][order], e[have][order]
        who = np.flatnonzero(have)[order]
        fixes = np.flatnonzero(ok & (k == col))
        # best before this fix, excluding the rider himself: cumulative minimum of the two best
        best1 = np.minimum.accumulate(e_sorted)
        n_before = np.searchsorted(p_sorted, t[fixes], side="left")
        has = n_before > 0
        best = np.full(fixes.size, np.nan)
        best[has] = best1[n_before[has] - 1]
        # if the best so far is the rider himself, use the best of the others
        self_best = has & (who[np.argmin(np.where(np.arange(e_sorted.size)[None, :] < n_before[:, None],
                                                     e_sorted[None, :], np.inf), axis=1)] == fix_row[fixes])
        if self_best.any():
            for j in np.flatnonzero(self_best).tolist():
                others = (np.arange(e_sorted.size) < n_before[j]) & (who != fix_row[fixes[j]])
                best[j] = e_sorted[others].min() if others.any() else np.nan
        gap[fixes] = own[fixes] - best
    return gap
