"""Race state from matched fixes: gaps, groups and race events (road stages), time-trial gaps.

Pure numpy over a whole stage's matched fixes (the batch replay has them all).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peloton.match.matching import Matched
from peloton.match.quality import Quality
from peloton.output.table import Columns
from peloton.state.gaps import Trajectory, gap_to_leader_s, gap_to_rider_ahead_s
from peloton.state.groups import GroupParams, label_groups, track_groups
from peloton.state.results import line_crossings, stage_results, stop_runs

__all__ = ["RaceParams", "RaceState", "RiderTracks", "derive_race_state", "riding_fixes", "groups_and_gap_ahead",
           "time_trial_gaps", "estimate_start_times", "virtual_standings", "trusted_tracks", "change_event",
           "change_lasted", "change_needs", "groups_by_tick", "groups_of_change", "signal_events", "stop_event",
           "finished_event", "standing_rows", "mark_kms"]


@dataclass(frozen=True)
class RaceParams:
    groups: GroupParams = GroupParams()
    stopped_kph: float = 3.0  # slower than this on the course is stopped ...
    stopped_min_s: float = 30.0  # ... for at least this long
    signal_lost_s: float = 60.0  # no fix for this long while the feed goes on
    finish_tolerance_km: float = 0.6  # trackers stop just before the line: last fix this close counts
    at_line_km: float = 0.05  # this close to the line a rider has finished: no longer on the road to lead
    itt_start_grid_s: float = 30.0  # time-trial riders start on whole or half minutes
    itt_grid_step_km: float = 0.05
    implausible_kph: float = 100.0  # faster than this, or backwards, between two fixes is implausible ...
    max_implausible_share: float = 0.05  # ... and a track with more of it sets no time-trial reference


@dataclass
class RaceState:
    gap_to_leader_s: np.ndarray
    gap_to_group_ahead_s: np.ndarray
    group_id: np.ndarray  # -1 = none
    groups: Columns
    events: Columns
    standings: Columns  # time trials: virtual standings at every km
    results: Columns | None = None  # the stage result (the replay; the live engine makes its own as riders finish)


def riding_fixes(m: Matched) -> np.ndarray:
    """Fixes that take part in groups: on the road, not past the line (the replay's and the live engine's
    groups are tracked over the same fixes)."""
    return np.isin(m.quality, Quality.RIDING)


def derive_race_state(m: Matched, finish_km: float, time_trial: bool = False,
                      params: RaceParams = RaceParams(), same_time_gap_s: float = 1.0) -> RaceState:
    """Gaps, groups, events and the result of a whole stage. ``same_time_gap_s``: the time rule's gap (3 s on
    flat stages, :func:`peloton.state.results.same_time_gap_s`)."""
    f = m.fixes
    n = len(f)
    usable = np.isin(m.quality, Quality.TIMED)
    if time_trial:
        starts = estimate_start_times(f.bib, f.t, m.km, usable, params.itt_start_grid_s)
        trusted = trusted_tracks(f.bib, f.t, m.km, usable, params)
        gap = time_trial_gaps(f.bib, f.t, m.km, usable, params, starts, trusted)
        empty = np.full(n, np.nan)
        events = _rider_events(m, finish_km, params, [])
        standings = Columns.from_rows("virtual_standings", virtual_standings(
            f.stage_id, f.bib, f.t, m.km, usable, finish_km, params, starts, trusted))
        no_group = np.full(n, -1, dtype=np.int64)
        results = _results(m, usable, no_group, params, same_time_gap_s, starts, set(trusted.tolist()))
        return RaceState(gap, empty, no_group, Columns.from_rows("groups", []), events, standings, results)
    on_road = m.km_to_finish > params.at_line_km
    gap, _leader = gap_to_leader_s(f.t, m.km, f.bib, usable, can_lead=on_road, km_to_finish=m.km_to_finish,
                                   speed_kph=m.speed_kph, sensor_kph=f.sensor_kph, at_line_km=params.at_line_km)
    riding = riding_fixes(m)
    timeline = track_groups(f.t, f.bib, m.km, m.speed_kph, riding, params.groups)
    gid = timeline.group_id
    group_rows, gap_ahead = groups_and_gap_ahead(f.stage_id, f.t, f.bib, m.km, m.km_to_finish, m.speed_kph, gap,
                                                 gid, params.groups)
    events = _rider_events(m, finish_km, params, _group_events(f.stage_id, timeline, group_rows, params.groups))
    return RaceState(gap, gap_ahead, gid, Columns.from_rows("groups", group_rows), events,
                     Columns.from_rows("virtual_standings", []), _results(m, usable, gid, params, same_time_gap_s))


def _results(m: Matched, usable, gid, params: RaceParams, gap_s: float, starts=None, ranked=None) -> Columns:
    f = m.fixes
    on_course = np.isin(m.quality, Quality.ON_COURSE)
    return Columns.from_rows("results", stage_results(
        f.stage_id, f.t, m.km, f.bib, usable, m.km_to_finish, m.speed_kph, on_course, gid,
        at_line_km=params.at_line_km, stopped_kph=params.stopped_kph, stopped_min_s=params.stopped_min_s,
        gap_s=gap_s, starts=starts, ranked=ranked))


def groups_and_gap_ahead(stage_id, t, bib, km, ktf, speed, gap, gid, gparams):
    """One row per group per tick, and every fix's gap to the tail of the group ahead: the groups table and
    ``gap_to_group_ahead_s``, from fixes, their gaps to the leader and group ids (the replay's whole stage,
    the live engine's newest window)."""
    tail_ahead = np.full(t.size, -1, dtype=np.int64)  # per fix: the last rider of the group ahead
    idx = np.flatnonzero(gid >= 0)
    rows = []
    if idx.size == 0:
        return rows, np.full(t.size, np.nan)
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
        tail_ahead[r] = np.r_[-1, tail[:-1]][np.repeat(np.arange(starts.size), size)]
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
    return rows, gap_to_rider_ahead_s(gap, tail_ahead)


def _group_events(stage_id, timeline, group_rows, gparams) -> list[dict]:
    """split / attack / dropped / bridge / merge events, without flicker (groups that lived long enough)."""
    rows_at = groups_by_tick(group_rows)
    events = []
    for change in timeline.changes:
        if change_lasted(timeline, change, gparams.min_life_s):
            event = change_event(stage_id, change, groups_of_change(rows_at, change), gparams)
            if event is not None:
                events.append(event)
    return events


def _ms(t: float) -> int:
    return int(round(t * 1000))


def groups_by_tick(group_rows: list[dict]) -> dict:
    """event_time (ms) -> {group_id: group row}."""
    out: dict = {}
    for r in group_rows:
        out.setdefault(r["event_time"], {})[r["group_id"]] = r
    return out


def groups_of_change(rows_at: dict, change: tuple) -> dict:
    """{group_id: group row} of the tick of a membership change, from :func:`groups_by_tick`."""
    return rows_at.get(_ms(change[0]), {})


def change_needs(change: tuple) -> tuple:
    """The groups that must live ``min_life_s`` for a membership change to be an event, not flicker."""
    _tick, kind, from_id, to_id, _members = change
    return {"split": (to_id,), "merge": (from_id,)}.get(kind, (from_id, to_id))


def change_lasted(timeline, change: tuple, min_life_s: float) -> bool:
    """Have the groups of a membership change lived long enough (so far) for it to be an event?"""
    return all(timeline.life_s(g) >= min_life_s for g in change_needs(change))


def change_event(stage_id: str, change: tuple, groups_then: dict, gparams) -> dict | None:
    """The race event of one membership change (a track_groups change), given the groups of its tick."""
    tick, kind, from_id, to_id, members = change
    dest = groups_then.get(to_id)
    if dest is None:
        return None
    if kind == "split":
        parent = groups_then.get(from_id)
        ahead = parent is not None and dest["rank"] < parent["rank"]
        small = len(members) <= gparams.attack_max_size
        etype = "attack" if (ahead and small) else ("dropped" if (small and not ahead) else "split")
    elif kind == "merge":
        etype = "merge"
    else:  # riders moving between two existing groups
        source = groups_then.get(from_id)
        if source is None:
            return None
        etype = "dropped" if dest["rank"] > source["rank"] else "bridge"
    return {"stage_id": stage_id, "event_time": _ms(tick), "event_type": etype,
            "km_to_finish": dest["km_to_finish_head"], "bibs": sorted(members),
            "group_ids": [from_id, to_id], "detail": f"{kind} {from_id}->{to_id}"}


def _rider_events(m: Matched, finish_km: float, params: RaceParams, events: list[dict]) -> Columns:
    """stopped, signal_lost / signal_back and finished, per rider (vectorised over fixes).

    Each rule is a kernel the live engine calls too, on what it has seen so far (:mod:`peloton.state.engine`).
    """
    f = m.fixes
    stage_id = f.stage_id
    n = len(f)
    if n:
        same_prev = np.r_[False, f.bib[1:] == f.bib[:-1]]
        prev_t = np.where(same_prev, np.r_[np.nan, f.t[:-1]], np.nan)
        prev_ktf = np.where(same_prev, np.r_[np.nan, m.km_to_finish[:-1]], np.nan)
        events += signal_events(stage_id, f.bib, f.t, m.km_to_finish, prev_t, prev_ktf, np.unique(f.t), params)
        on_course = np.isin(m.quality, Quality.ON_COURSE)
        a, z = stop_runs(f.bib, f.t, m.speed_kph, on_course, params.stopped_kph, params.stopped_min_s)
        events += [stop_event(stage_id, f.bib[i], f.t[i], m.km_to_finish[i], f.t[j]) for i, j in zip(a, z)]
        usable = np.isin(m.quality, Quality.TIMED)
        c = line_crossings(f.t, m.km, f.bib, usable, m.km_to_finish, m.speed_kph, params.at_line_km,
                           params.finish_tolerance_km)
        events += [finished_event(stage_id, rider, crossed, seen)
                   for rider, crossed, seen in zip(c.bib.tolist(), c.crossed_t.tolist(), c.seen_at_line.tolist())]
    events.sort(key=lambda e: (e["event_time"], e["event_type"]))
    return Columns.from_rows("race_events", events)


def signal_events(stage_id: str, bib: np.ndarray, t: np.ndarray, ktf: np.ndarray, prev_t: np.ndarray,
                  prev_ktf: np.ndarray, ticks: np.ndarray, params: RaceParams) -> list[dict]:
    """signal_lost / signal_back around every fix that ends a silence: ``signal_lost_s`` or more since the rider's
    previous fix (``prev_t``, nan for none) while the feed ticked on (3+ of ``ticks``, the feed's ticks, between)."""
    silent = t - prev_t
    between = np.searchsorted(ticks, t) - np.searchsorted(ticks, np.nan_to_num(prev_t, nan=np.inf)) - 1
    events = []
    for i in np.flatnonzero(np.isfinite(prev_t) & (silent >= params.signal_lost_s) & (between >= 3)).tolist():
        detail = f"silent for {silent[i]:.0f} s"
        events.append(_rider_event(stage_id, "signal_lost", prev_t[i], prev_ktf[i], bib[i], detail))
        events.append(_rider_event(stage_id, "signal_back", t[i], ktf[i], bib[i], detail))
    return events


def stop_event(stage_id: str, bib: int, t_first: float, ktf: float, t_last: float) -> dict:
    """A ``stopped`` event: the first and last fix of a stop (:func:`peloton.state.results.stop_runs`)."""
    return _rider_event(stage_id, "stopped", t_first, ktf, bib, f"stationary for {t_last - t_first:.0f} s")


def finished_event(stage_id: str, bib: int, crossed_t: float, seen_at_line: bool) -> dict:
    """A ``finished`` event: when he crossed the line, as the results table has it."""
    return _rider_event(stage_id, "finished", crossed_t, 0.0, bib,
                        "crossed the line" if seen_at_line else "last fix just before the line")


def _rider_event(stage_id, etype, t, ktf, bib, detail) -> dict:
    return {"stage_id": stage_id, "event_time": int(round(float(t) * 1000)), "event_type": etype,
            "km_to_finish": None if not np.isfinite(ktf) else round(float(ktf), 4), "bibs": [int(bib)],
            "group_ids": [],
            "detail": detail}


class RiderTracks:
    """Each rider's usable track (his fixes' t and km, in their order) among a stage's fixes, and what is derived
    from it: his trajectory, start, passage times.

    Derived values are kept in ``memo`` (bib -> (fixes in his track, {name: value})) for as long as his track
    has as many fixes: the live engine's time-trial history only grows, and it asks for every rider's start and
    passage times every window while only the riders on the road have new fixes.
    """

    def __init__(self, bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                 memo: dict | None = None):
        idx = np.flatnonzero(usable)
        idx = idx[np.argsort(bib[idx], kind="stable")]
        self.riders, first, count = np.unique(bib[idx], return_index=True, return_counts=True)
        self._t, self._km = t[idx], km[idx]
        self._span = dict(zip(self.riders.tolist(), zip(first.tolist(), count.tolist())))
        self.memo = {} if memo is None else memo

    def track(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        a, n = self._span[b]
        return self._t[a:a + n], self._km[a:a + n]

    def derived(self, b: int, name, compute):
        """``compute(t, km)`` of his track, once per track."""
        n = self._span[b][1]
        known = self.memo.get(b)
        if known is None or known[0] != n:
            known = self.memo[b] = (n, {})
        if name not in known[1]:
            known[1][name] = compute(*self.track(b))
        return known[1][name]

    def trajectory(self, b: int) -> Trajectory:
        return self.derived(b, "trajectory", Trajectory)

    def passage_times(self, b: int, km: np.ndarray, name) -> np.ndarray:
        """His passage times at ``km`` (kept under ``name``: the same name, the same km)."""
        return self.derived(b, name, lambda _t, _km: self.trajectory(b).passage_time(km))


def estimate_start_times(bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                         grid_s: float = 30.0, tracks: RiderTracks | None = None) -> dict:
    """Time-trial start of each rider whose track holds the start (epoch s).

    The time the matched track reaches km 0.3, less 0.3 km at the pace of
    the next 500 m, lands a steady few seconds after the real start (a
    standing start is slow). That lag is learnt from the field: starts are on
    a grid (whole or half minutes), so the estimates share one phase modulo
    the grid, and each estimate less that phase is snapped to the grid. A rider first seen beyond km 0.3 (on the road before the
    recording began) has no known start. ``tracks``: the riders' tracks of these fixes, when the caller keeps them.
    """
    tracks = RiderTracks(bib, t, km, usable) if tracks is None else tracks
    est = {}
    for b in tracks.riders.tolist():
        e = tracks.derived(b, "start", lambda tb, kb, b=b: _own_start(tracks, b, tb, kb))
        if e is not None:
            est[int(b)] = e
    if not est:
        return {}
    values = np.array(list(est.values()))
    angle = 2 * np.pi * (values % grid_s) / grid_s
    lag = (np.angle(np.exp(1j * angle).mean()) % (2 * np.pi)) * grid_s / (2 * np.pi) if values.size >= 3 else 0.0
    return {b: round((e - lag) / grid_s) * grid_s for b, e in est.items()}


def _own_start(tracks: RiderTracks, b: int, t: np.ndarray, km: np.ndarray):
    """A rider's start as his track shows it, before the field's lag (None: not in his track)."""
    if km[np.argmin(t)] > 0.3:
        return None
    t03, t08 = tracks.passage_times(b, np.array([0.3, 0.8]), "start_marks")
    if not (np.isfinite(t03) and np.isfinite(t08)) or t08 <= t03:
        return None
    return t03 - 0.3 * (t08 - t03) / 0.5


def time_trial_gaps(bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                    params: RaceParams = RaceParams(), starts: dict | None = None,
                    trusted: np.ndarray | None = None, line_km: float | None = None,
                    tracks: RiderTracks | None = None, only: np.ndarray | None = None) -> np.ndarray:
    """Elapsed time at this distance against the stage leader's at the same distance (s; negative = faster).

    The leader is the rider with the best finishing time among those who
    had finished at this fix's event time (the "hot seat"), and his time at
    a distance is his split there: what the feed's ``secToITTLead`` means
    (stage 16 shows it: the reference changes only when a rider finishes
    faster, not when one passes a distance faster). Before anyone has
    finished there is no reference (null). Riders whose start is not in the
    data have no elapsed time (null); untrusted tracks set no reference.
    ``starts`` and ``trusted`` are found here unless given. ``line_km``: where
    a ride counts as finished (default: a point 4 in 5 tracks reach; live,
    where most tracks have not reached the end yet, the finish less the
    trackers' usual shortfall). ``tracks``: the riders' tracks of these fixes, when the caller keeps them;
    ``only`` (a mask): just those fixes get a gap (the live engine wants the newest window's).
    """
    gap = np.full(t.size, np.nan)
    tracks = RiderTracks(bib, t, km, usable) if tracks is None else tracks
    if starts is None:
        starts = estimate_start_times(bib, t, km, usable, params.itt_start_grid_s, tracks)
    if trusted is None:
        trusted = trusted_tracks(bib, t, km, usable, params, tracks)
    if not starts:
        return gap
    step = params.itt_grid_step_km
    riders = np.array(sorted(starts))
    grid = np.arange(0.0, np.nanmax(km[usable]) + 2 * step, step)
    passage = np.full((riders.size, grid.size), np.nan)
    for i, b in enumerate(riders.tolist()):  # one row per rider
        passage[i] = tracks.passage_times(b, grid, ("grid", step, grid.size))  # (the same step and size: same km)
    start = np.array([starts[b] for b in riders.tolist()])
    elapsed = passage - start[:, None]
    # the finish for ranking: a point 4 in 5 tracks reach (trackers stop a few hundred metres short of the line)
    furthest = np.array([tracks.derived(b, "furthest", lambda _t, kb: np.nanmax(kb)) for b in riders.tolist()])
    line_at = np.percentile(furthest, 20) if line_km is None else line_km
    if line_at > grid[-1]:
        return gap  # nobody has reached the line yet: no reference
    line = int(np.clip(np.floor(line_at / step), 0, grid.size - 1))
    can_lead = np.isin(riders, trusted) & np.isfinite(passage[:, line])
    leaders = np.flatnonzero(can_lead)
    if leaders.size == 0:
        return gap
    order = leaders[np.argsort(passage[leaders, line])]  # in the order they finished
    finished_at = passage[order, line]
    best_so_far = order[_running_argmin(elapsed[order, line])]
    # every fix (or those wanted): the hot-seat rider at its event time, and his split at its distance
    at = np.arange(t.size) if only is None else np.flatnonzero(only)
    b, tt, kk = bib[at], t[at], km[at]
    pos = np.minimum(np.searchsorted(riders, b), riders.size - 1)
    row = np.where(riders[pos] == b, pos, -1)
    n_finished = np.searchsorted(finished_at, tt, side="right")
    ok = (row >= 0) & usable[at] & (kk >= 0) & (n_finished > 0)
    hot = best_so_far[np.maximum(n_finished, 1) - 1]
    pos = np.clip(kk / step, 0, grid.size - 1.000001)
    k = np.floor(pos).astype(int)
    frac = pos - k
    split = elapsed[hot, k] * (1 - frac) + elapsed[hot, np.minimum(k + 1, grid.size - 1)] * frac
    own = tt - start[np.maximum(row, 0)]
    gap[at[ok]] = (own - split)[ok]
    return gap


def virtual_standings(stage_id: str, bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                      finish_km: float, params: RaceParams = RaceParams(), starts: dict | None = None,
                      trusted: np.ndarray | None = None) -> list[dict]:
    """One row per rider per whole km (and the finish) his track reaches: his time there and his place so far.

    The place is provisional, as a broadcaster shows it when the rider
    passes: among the riders who had passed that km before him. Riders whose
    start is not in the data, and trackers whose track teleports
    (:func:`trusted_tracks`), have no time and no place. ``starts`` and
    ``trusted`` are found here unless given.
    """
    if starts is None:
        starts = estimate_start_times(bib, t, km, usable, params.itt_start_grid_s)
    if trusted is None:
        trusted = trusted_tracks(bib, t, km, usable, params)
    ranked = set(trusted.tolist())
    riders = np.array(sorted(b for b in starts if b in ranked))  # a teleporting tracker is not ranked
    if riders.size == 0:
        return []
    marks, labels = mark_kms(finish_km)
    passage = np.full((riders.size, marks.size), np.nan)
    for i, b in enumerate(riders.tolist()):  # one row per rider
        mine = usable & (bib == b)
        # a mark his track reaches (live, a rider a few metres short of it may still be riding: no standing yet)
        reached = marks <= np.nanmax(km[mine])
        passage[i, reached] = Trajectory(t[mine], km[mine]).passage_time(marks[reached])
    elapsed = passage - np.array([starts[b] for b in riders.tolist()])[:, None]
    rows = []
    for j in range(marks.size):  # one column per km mark
        rows += standing_rows(stage_id, float(labels[j]), riders, passage[:, j], elapsed[:, j])
    return rows


def mark_kms(finish_km: float) -> tuple[np.ndarray, np.ndarray]:
    """The km marks of the virtual standings (every whole km, and the finish: where the trackers stop, just short
    of the line) and the km each is reported as."""
    marks = np.r_[np.arange(1.0, np.floor(finish_km - 0.2) + 1.0), finish_km - 0.2]
    return marks, np.r_[marks[:-1], finish_km]


def standing_rows(stage_id: str, km: float, bibs: np.ndarray, passage: np.ndarray, elapsed: np.ndarray) -> list[dict]:
    """The standings at one km mark: each rider who passed it (``passage`` finite) ranked among those who had
    passed it before him (a provisional place, as a broadcaster shows it)."""
    have = np.flatnonzero(np.isfinite(elapsed))
    if have.size == 0:
        return []
    have = have[np.argsort(passage[have], kind="stable")]
    e = elapsed[have]
    earlier_better = np.tril(e[None, :] < e[:, None], k=-1)  # [i, k]: k passed before i and was faster
    best_at = _running_argmin(e)
    return [{"stage_id": stage_id, "event_time": int(round(passage[r] * 1000)), "bib": int(bibs[r]),
             "km": round(km, 3), "elapsed_s": round(float(e[i]), 2), "rank": int(earlier_better[i].sum()) + 1,
             "riders_ranked": i + 1, "gap_to_best_s": round(float(e[i] - e[best_at[i]]), 2),
             "best_bib": int(bibs[have[best_at[i]]])} for i, r in enumerate(have.tolist())]


def _running_argmin(values: np.ndarray) -> np.ndarray:
    """Index of the minimum of values[:i + 1], for every i."""
    best = np.minimum.accumulate(values)
    is_new = np.r_[True, best[1:] < best[:-1]]
    return np.maximum.accumulate(np.where(is_new, np.arange(values.size), 0))


def trusted_tracks(bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                   params: RaceParams = RaceParams(), tracks: RiderTracks | None = None) -> np.ndarray:
    """Bibs whose matched track is physically plausible: they may set reference times.

    A tracker that reports other riders' positions (stage 16 has one) moves
    backwards and teleports between fixes; a single such track would
    otherwise hold the best time at every distance for the rest of the day.
    ``tracks``: the riders' tracks of these fixes, when the caller keeps them.
    """
    tracks = RiderTracks(bib, t, km, usable) if tracks is None else tracks
    share = np.array([tracks.derived(b, ("implausible", params.implausible_kph),
                                     lambda tb, kb: _implausible_share(tb, kb, params.implausible_kph))
                      for b in tracks.riders.tolist()])
    return tracks.riders[share <= params.max_implausible_share] if share.size else tracks.riders


def _implausible_share(t: np.ndarray, km: np.ndarray, implausible_kph: float) -> float:
    """The share of a track's intervals (in time order) faster than ``implausible_kph`` or backwards."""
    order = np.argsort(t, kind="stable")
    t, km = t[order], km[order]
    dt = np.maximum(np.diff(t), 1e-9)
    kph = np.diff(km) / dt * 3600.0
    bad = (kph > implausible_kph) | (np.diff(km) < -0.05)
    return bad.sum() / max(t.size - 1, 1)