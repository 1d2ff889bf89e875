"""The live virtual general classification: the general time as it stands on the road, window by window.

A rider's virtual general time is his general time before the stage, plus his
current time behind the head of the race on the road, less the time bonuses
already decided. Pure numpy; the race engine's tracker
(:class:`peloton.state.trackers.virtual_gc.VirtualGeneral`) and the hindsight replay
feed :class:`VirtualGC` the same arrays.

* **Time behind the head of the race**: the time-at-position gap of the
  pipeline's one gap rule (:mod:`peloton.gaps`, as the rider_state rows have
  it), read at his group's first rider: the same-time rule the finish applies
  (a group at the UCI's 1 s is credited its first rider's time), so a bunch
  does not reshuffle its riders by where each rides in it. It is read to
  :data:`GAP_UNCERTAINTY_S` either side (a leader's passage between his fixes:
  p90 1.05 s on stage 4, ``benchmarks/gaps.py``); riders of one group share
  that error, so their order is their general time before. A gap older than
  :data:`GAP_HOLD_S` is not current (a silent tracker): the rider's time is
  then only bounded below (a gap is never negative) and above by
  :data:`GAP_CEILING_S`, the longest gap the engine measures (its history),
  and it is undecided.
* **Once he has finished** (his result row said): his credited time behind the
  winner, with the result's range (:func:`peloton.classifications.credited_bounds`),
  and the finish bonus of his place (a range where the place is one); the
  head of the race on the road is, from the first crossing on, the first
  finisher (the gaps' rule), so the two frames agree.
* **Bonus points on the road** (8-5-2 s): from the passages there
  (:func:`peloton.classifications.passage_intervals`) of the riders seen past
  it; a rider not seen past it yet passes it later (an ordering the
  rule of passage already guarantees for anyone whose last fix is short of it).
  Bonuses still to be raced for are not counted: the virtual classification
  is the one "if the stage stopped now".

Places come from the value intervals as in every classification row
(:func:`peloton.classifications.places_from_intervals`), the error a group
shares taken out between its riders; a value is decided only within
:data:`peloton.classifications.GC_TOLERANCE_S` of its middle either side.

Volume: a rider's row is said when his row's claim (place, range, value, gap
to the leader, decided) changes, with times in whole seconds (the value
rounded, the range widened outwards to whole seconds): at every window for
the top :data:`TOP_EVERY_WINDOW` (a rider in it, or whose last row had him in
it), and for everyone at the first window of each minute
(:data:`REFRESH_S`). A rider's latest row is his standing, at most a minute
old outside the top ten (its event time says when). The rows depend only on
the windows given, in order: the live pipeline's final rows equal the causal
replay's.
"""
from __future__ import annotations

import numpy as np

from peloton.ingest.eventtime import row_ms
from peloton.ingest.windowing import TICK_S, window_index
from peloton.state.classifications import (BONUS_POINT_S, FINISH_BONUS_S, GC_TOLERANCE_S, TIME_TRIAL_TYPES,
                                           Standings, credited_bounds, finish_places, passage_intervals, point_places,
                                           scale_range)

__all__ = ["VIRTUAL_GENERAL", "GAP_UNCERTAINTY_S", "GAP_HOLD_S", "GAP_CEILING_S", "TOP_EVERY_WINDOW", "REFRESH_S", "group_head_gaps",
           "virtual_places", "VirtualGC", "leader_change_event"]

#: The classification name of the rows (beside general, points, ...): not the general classification after the
#: stage, but the one standing on the road.
VIRTUAL_GENERAL = "virtual_general"
#: Half-width of a time-at-position gap, s: the p90 of the gaps' error against the official ``secToFirstRider`` on
#: stage 4 (2.10 s, BENCHMARKS.md). With 1 s (the error of the leader's passage alone) a simulated tour had a
#: decided virtual time 2 s off: a time on the road is a range, decided only within the head of the race's group.
GAP_UNCERTAINTY_S = 2.0
#: A rider's last gap is his current one for this long (s): the feed's holes are 36 s, a tracker silent longer
#: gives no current gap.
GAP_HOLD_S = 60.0
#: The riders whose row is said at every window where it changes: the top of the classification (a rider in it, or
#: whose last row put him in it); the others' at most once every REFRESH_S (s), at the first window of each.
TOP_EVERY_WINDOW = 10
REFRESH_S = 60.0
#: The longest gap the engine measures (its history, ``EngineParams.history_s``): the upper end of a time not known.
GAP_CEILING_S = 2700.0


def group_head_gaps(t: np.ndarray, km: np.ndarray, gap: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """Per fix, the gap of his group's first rider at his tick (the furthest along of the fixes of that group and
    tick); his own gap where he rides in no group (``gid`` < 0). nan where that gap is not known."""
    out = np.asarray(gap, float).copy()
    grouped = np.flatnonzero(np.asarray(gid) >= 0)
    if not grouped.size:
        return out
    order = grouped[np.lexsort((-np.asarray(km, float)[grouped], gid[grouped], t[grouped]))]
    key_t, key_g = t[order], gid[order]
    first = np.r_[True, (key_t[1:] != key_t[:-1]) | (key_g[1:] != key_g[:-1])]
    head = order[first][np.cumsum(first) - 1]
    out[order] = np.asarray(gap, float)[head]
    return out


def virtual_places(lo: np.ndarray, hi: np.ndarray, shared_lo: np.ndarray, shared_hi: np.ndarray,
                   key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(place_min, place_max) of riders whose virtual time lies in ``[lo, hi]`` (less is better); between two
    riders of one ``key`` (>= 0: a group, whose gap and its error they share) the comparison is on
    ``[shared_lo, shared_hi]``, their times less that shared gap. ``key`` < 0: shares with nobody."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    key = np.asarray(key)
    same = (key[:, None] == key[None, :]) & (key[:, None] >= 0)
    ahead = np.where(same, shared_hi[None, :] < shared_lo[:, None], hi[None, :] < lo[:, None])  # [i, j]: j ahead
    maybe = np.where(same, shared_lo[None, :] <= shared_hi[:, None], lo[None, :] <= hi[:, None])
    return 1 + ahead.sum(axis=1), maybe.sum(axis=1)


def leader_change_event(stage_id: str, event_ms: int, new: int, old: int | None, gap_s: float | None,
                        ktf: float | None) -> dict:
    """The ``virtual_leader_change`` race event: ``new`` holds a decided first place of the virtual general
    classification, and ``old`` (the leader before: the last one said, else the leader of the standings before)
    no longer does."""
    lead = f" by {gap_s:.0f} s" if gap_s is not None else ""
    was = f" from bib {old}" if old is not None else ""
    return {"stage_id": stage_id, "event_time": int(event_ms), "event_type": "virtual_leader_change",
            "km_to_finish": None if ktf is None or not np.isfinite(ktf) else round(float(ktf), 4),
            "bibs": [int(new)] + ([int(old)] if old is not None else []), "group_ids": [],
            "detail": f"bib {new} leads the virtual general classification{lead}, taking it{was} on the road"}


class VirtualGC:
    """The virtual general classification of one stage, kept up to date window by window.

    Feed :meth:`update` each window's fixes (rider, time, km, gap to the leader, group), the result rows said in it
    and the passages at bonus points; it returns the rows that changed and, when the decided leader changes
    hands, a ``virtual_leader_change`` event.
    """

    def __init__(self, stage_id: str, stage_type: str, standings: Standings | None, teams: dict,
                 bonus_km: np.ndarray | None = None):
        self.stage_id, self.stage_type, self.standings = stage_id, stage_type, standings
        self.teams = teams
        self.bonus_km = np.zeros(0) if bonus_km is None else np.asarray(bonus_km, float)
        self.classified = None if standings is None else np.array(sorted(standings.gc_s), np.int64)
        self.riders = np.zeros(0, np.int64) if standings is None else self.classified.copy()  # sorted
        n = self.riders.size
        self.gap_t = np.full(n, -np.inf)  # when his current gap was read (epoch s)
        self.gap = np.full(n, np.nan)  # his group's gap then
        self.group = np.full(n, -1, np.int64)  # and his group then
        self.ktf = np.full(n, np.nan)  # km to go at his last fix
        self.results: list = []  # result rows said so far
        self._said = None  # the claims last said (fields x riders), of riders _said_riders
        self._said_riders = np.zeros(0, np.int64)
        self._slot = None  # the REFRESH_S slot of the last window
        self._before = None  # (least, most) general time before, per rider
        self._fresh = None  # per rider: his gap read in the window being updated
        self.leader = None  # the virtual leader last said
        if standings is not None and standings.gc_s:
            best = min(standings.gc_s.values())
            first = [b for b, v in standings.gc_s.items() if v == best and b not in standings.gc_s_max]
            self.leader = first[0] if len(first) == 1 else None  # the yellow jersey before the stage, if one

    @classmethod
    def of(cls, classifier) -> "VirtualGC":
        """The virtual classification of a stage (:class:`peloton.state.classifications.StageClassifier`: its standings
        before, teams, bonus points)."""
        bonus = [p[2] for p in classifier.points if p[0] == "bonus"]
        return cls(classifier.stage_id, classifier.stage_type, classifier.standings,
                   {b: t for b, t in classifier.teams.items() if t}, np.array(bonus, float))

    def bonus_passages(self, bib: np.ndarray, t: np.ndarray, km: np.ndarray) -> list:
        """Per bonus point, (riders, lo, hi) of the passages there over these (trusted) fixes."""
        if not self.bonus_km.size:
            return []
        riders, lo, hi = passage_intervals(bib, t, km, self.bonus_km)
        return [(riders, lo[:, p], hi[:, p]) for p in range(self.bonus_km.size)]

    def _grow(self, bib: np.ndarray) -> None:
        """Without standings before, every rider seen is classified (this stage alone, from 0)."""
        new = np.setdiff1d(bib, self.riders)
        if not new.size or self.classified is not None:
            return
        merged = np.union1d(self.riders, new)
        at = np.searchsorted(merged, self.riders)
        for name, fill in (("gap_t", -np.inf), ("gap", np.nan), ("group", -1), ("ktf", np.nan)):
            col = getattr(self, name)
            grown = np.full(merged.size, fill, dtype=col.dtype)
            grown[at] = col
            setattr(self, name, grown)
        self.riders = merged

    def update(self, now: float, bib: np.ndarray, t: np.ndarray, km: np.ndarray, ktf: np.ndarray,
               gap: np.ndarray, gid: np.ndarray, results: list, bonus_passages: list,
               everyone: bool = False) -> tuple[list, list]:
        """(classification rows that changed, race events) at ``now`` (epoch s, the window's newest time).

        ``bib`` .. ``gid``: the window's fixes, their gaps to the leader (nan: not known) and groups (-1: none);
        ``results``: the result rows said in this window; ``bonus_passages``: per bonus point, (riders, lo, hi)
        of the riders seen past it so far."""
        self.results.extend(r for r in results if r.get("status") == "finished")
        bib = np.asarray(bib, np.int64)
        self._grow(np.unique(bib))
        head_gap = group_head_gaps(np.asarray(t, float), np.asarray(km, float), np.asarray(gap, float),
                                   np.asarray(gid, np.int64))
        order = np.lexsort((t, bib))
        last = order[np.r_[bib[order][1:] != bib[order][:-1], True]] if order.size else order
        last = last[np.isin(bib[last], self.riders)]
        pos = np.searchsorted(self.riders, bib[last])
        self.ktf[pos] = np.asarray(ktf, float)[last]
        known = np.isfinite(head_gap[last])
        p, g = pos[known], last[known]
        self.gap_t[p], self.gap[p], self.group[p] = np.asarray(t, float)[g], head_gap[g], np.asarray(gid)[g]
        self._fresh = np.zeros(self.riders.size, bool)  # read in this window: his group's gap is shared as read
        self._fresh[p] = True
        c = self._claims(now, bonus_passages)
        return self._rows(now, c, self._changed(c, now, everyone)), self._leader_events(now, c)

    def close(self, now: float, results: list, bonus_passages: list) -> tuple[list, list]:
        """The end of the stage (the rest of the result rows): every rider's changed claim, whatever the minute."""
        e = np.zeros(0)
        return self.update(now, np.zeros(0, np.int64), e, e, e, e, np.zeros(0, np.int64), results, bonus_passages,
                           everyone=True)

    def over_stage(self, t: np.ndarray, bib: np.ndarray, km: np.ndarray, ktf: np.ndarray, gap: np.ndarray,
                   gid: np.ndarray, results: list, bonus_passages: list,
                   window_s: float = TICK_S) -> tuple[list, list]:
        """The hindsight replay's: (rows, events) of a whole stage's fixes, window by window as :meth:`update` takes
        them live: a result row from its event time on, a passage at a bonus point once it has ended."""
        win = window_index(np.asarray(t, float), window_s)
        order = np.argsort(win, kind="stable")
        cuts = np.flatnonzero(np.diff(win[order])) + 1
        res = sorted(results, key=lambda r: row_ms(r["event_time"]))
        res_ms = np.array([row_ms(r["event_time"]) for r in res], np.int64)
        rows, events, said = [], [], 0
        for idx in np.split(order, cuts):
            if not idx.size:
                continue
            now = float(np.max(t[idx]))
            upto = int(np.searchsorted(res_ms, int(round(now * 1000)), side="right"))
            passed = [(r, np.where(h <= now, lo, np.nan), h) for r, lo, h in bonus_passages]
            got, ev = self.update(now, bib[idx], t[idx], km[idx], ktf[idx], gap[idx], gid[idx], res[said:upto],
                                  passed)
            said = upto
            rows += got
            events += ev
        if len(t):  # the end of the stage: the result rows not yet said, every rider's latest claim
            got, ev = self.close(float(np.max(t)), res[said:], bonus_passages)
            rows += got
            events += ev
        return rows, events

    def _claims(self, now: float, bonus_passages: list) -> dict:
        """Every classified rider's claim now, as arrays (riders in :attr:`riders` order)."""
        riders = self.riders
        n = riders.size
        if self._before is None or self._before[0].size != n:
            s = self.standings or Standings()
            upper = s.upper("gc_s")
            self._before = (np.array([s.gc_s.get(int(b), 0.0) for b in riders.tolist()], float),
                            np.array([upper.get(int(b), 0.0) for b in riders.tolist()], float))
        before_lo, before_hi = self._before
        bonus_lo, bonus_hi = self._road_bonus(bonus_passages)
        current = (now - self.gap_t <= GAP_HOLD_S) & np.isfinite(self.gap)
        g = np.where(current, self.gap, 0.0)
        u = np.where(current & (g > 0), GAP_UNCERTAINTY_S, 0.0)  # the head of the race is his own reference
        gap_lo, gap_hi = np.maximum(g - u, 0.0), np.where(current, g + u, GAP_CEILING_S)  # never ahead of the head
        # one group's riders share its gap's error when read at one tick: those read in this window, whose group
        # gap is the same number (a gap carried from an earlier window is compared as an interval)
        fresh = current & (self._fresh if self._fresh is not None and self._fresh.size == n else np.zeros(n, bool))
        key = np.full(n, -1, np.int64)
        if fresh.any():  # one key per group and tick
            pairs = np.stack([self.group[fresh].astype(float), self.gap_t[fresh]], axis=1)
            key[fresh] = np.unique(pairs, axis=0, return_inverse=True)[1].ravel()
        key[fresh & (self.group < 0)] = -1
        how = np.where(current, 0, 1)  # 0 on the road, 1 no current gap, 2 finished, 3 finished (group undecided)
        known = current.copy()
        fin = self._finished()
        if fin is not None:
            fbib, c_lo, c_hi, c_known, f_lo, f_hi, same = fin
            at = np.searchsorted(riders, fbib)
            ok = (at < n) & (riders[np.minimum(at, n - 1)] == fbib)
            at, c_lo, c_hi, c_known, f_lo, f_hi, same = (x[ok] for x in (at, c_lo, c_hi, c_known, f_lo, f_hi, same))
            gap_lo[at], gap_hi[at], known[at] = c_lo, c_hi, c_known
            bonus_lo[at] += f_lo
            bonus_hi[at] += f_hi
            key[at] = np.where(same >= 0, 10_000_000 + same, -1)  # a same-time group shares its credited time
            how[at] = np.where(c_known, 2, 3)
        shared_lo, shared_hi = before_lo - bonus_hi, before_hi - bonus_lo
        lo, hi = shared_lo + gap_lo, shared_hi + gap_hi
        offset = np.where(key >= 0, gap_lo, 0.0)  # within a group: the shared gap, without its error
        pmin, pmax = virtual_places(lo, hi, shared_lo + offset, shared_hi + offset, key)
        exact = known & (bonus_lo == bonus_hi) & (hi - lo <= 2 * GC_TOLERANCE_S + 1e-9)
        mid = (lo + hi) / 2
        decided = exact & (pmin == pmax)
        leader = np.flatnonzero(decided & (pmin == 1))
        gap = np.where(exact & (leader.size > 0), np.round(mid - (mid[leader[0]] if leader.size else 0.0)), np.nan)
        return {"pmin": pmin, "pmax": pmax, "value": np.where(exact, np.round(mid), np.nan),
                "value_min": np.floor(lo), "value_max": np.ceil(hi), "gap": gap, "decided": decided,
                "lo": lo, "hi": hi, "exact": exact, "bonus_lo": bonus_lo, "bonus_hi": bonus_hi, "how": how}

    _HOW = ("on the road: his group's gap to the head of the race",
            f"no gap read in the last {GAP_HOLD_S:.0f} s (tracker silent or not seen)",
            "finished: credited time behind the winner", "finished: credited time behind the winner (group undecided)")

    def _rows(self, now: float, c: dict, idx: np.ndarray) -> list[dict]:
        """The rows of riders ``idx``, in place order."""
        riders = self.riders
        event_ms = int(round(now * 1000))
        src = (f"standings before from {self.standings.source}" if self.standings is not None
               else "this stage alone (from 0)")
        rows = []
        idx = idx[np.lexsort((riders[idx], c["pmax"][idx], c["pmin"][idx]))]
        for i in idx.tolist():
            pmin, pmax, decided = int(c["pmin"][i]), int(c["pmax"][i]), bool(c["decided"][i])
            b_lo, b_hi = c["bonus_lo"][i], c["bonus_hi"][i]
            bonus = f"{b_lo:g} s" if b_lo == b_hi else f"{b_lo:g}..{b_hi:g} s"
            detail = f"{src} + {self._HOW[c['how'][i]]} - bonuses decided {bonus}"
            if not decided:
                detail += "; undecided: " + ("the order is not decided by the data" if c["exact"][i] else
                                             f"the value is a range: {c['lo'][i]:.1f}..{c['hi'][i]:.1f}")
            value, gap = c["value"][i], c["gap"][i]
            rows.append({"stage_id": self.stage_id, "event_time": event_ms, "classification": VIRTUAL_GENERAL,
                         "bib": int(riders[i]), "team": self.teams.get(int(riders[i])) or None,
                         "position": pmin if pmin == pmax else None, "place_min": pmin, "place_max": pmax,
                         "value": None if np.isnan(value) else float(value),
                         "value_min": float(c["value_min"][i]), "value_max": float(c["value_max"][i]),
                         "gap_to_leader": None if np.isnan(gap) else float(gap), "decided": decided,
                         "source": "provisional", "detail": detail})
        return rows

    def _finished(self):
        """(bib, credited lo, hi, decided, finish bonus lo, hi, same-time group) of the riders whose result is said,
        or None."""
        res = self.results
        if not res:
            return None
        lo, hi, known = credited_bounds(res, False)
        bib = np.array([r["bib"] for r in res], np.int64)
        has = np.isfinite(lo) & np.isfinite(hi)
        fmin, fmax = finish_places([r.get("position") for r in res], [r.get("place_min") for r in res],
                                   [r.get("place_max") for r in res], [r.get("order_decided") for r in res])
        if self.stage_type in TIME_TRIAL_TYPES:
            b_lo = b_hi = np.zeros(bib.size)
        else:
            b_lo, b_hi = scale_range(FINISH_BONUS_S, fmin, fmax)
        same = np.array([-1 if r.get("same_time_group") is None or not r.get("credited_time_decided")
                         else r["same_time_group"] for r in res], np.int64)
        return bib[has], lo[has], hi[has], known[has], b_lo[has], b_hi[has], same[has]

    def _road_bonus(self, bonus_passages: list) -> tuple[np.ndarray, np.ndarray]:
        """(least, most) bonus seconds each rider has won at the bonus points so far (riders seen past them; one
        not seen past it passes it later)."""
        n = self.riders.size
        out_lo, out_hi = np.zeros(n), np.zeros(n)
        for riders, lo, hi in bonus_passages:
            riders = np.asarray(riders, np.int64)
            seen = np.isfinite(np.asarray(lo, float))
            if not seen.any():
                continue
            pmin, pmax = point_places(riders[seen], riders[seen], np.asarray(lo, float)[seen],
                                      np.asarray(hi, float)[seen])
            b_lo, b_hi = scale_range(BONUS_POINT_S, pmin, pmax)
            at = np.searchsorted(self.riders, riders[seen])
            ok = (at < n) & (self.riders[np.minimum(at, max(n - 1, 0))] == riders[seen]) if n else at < 0
            out_lo[at[ok]] += b_lo[ok]
            out_hi[at[ok]] += b_hi[ok]
        return out_lo, out_hi

    def _changed(self, c: dict, now: float, everyone: bool = False) -> np.ndarray:
        """The riders whose claim differs from the one last said (and remember it): those who are or were in the
        top :data:`TOP_EVERY_WINDOW` at every window, everyone at the first window of each
        :data:`REFRESH_S` (the rows then are the whole classification again)."""
        claim = np.stack([c["pmin"], c["pmax"], c["value"], c["value_min"], c["value_max"], c["gap"],
                          c["decided"]]).astype(float)
        last = self._said
        if last is None or last.shape != claim.shape:
            grown = np.full(claim.shape, np.nan)
            if last is not None:  # riders seen for the first time (no standings before): said first now
                grown[:, np.searchsorted(self.riders, self._said_riders)] = last
            last = grown
        slot = np.floor(now / REFRESH_S)
        due = (c["pmin"] <= TOP_EVERY_WINDOW) | ~(last[0] > TOP_EVERY_WINDOW)  # (never said: nan, due)
        if slot != self._slot or everyone:
            due[:] = True
            self._slot = slot
        changed = due & ~((claim == last) | (np.isnan(claim) & np.isnan(last))).all(axis=0)
        last[:, changed] = claim[:, changed]
        self._said, self._said_riders = last, self.riders.copy()
        return np.flatnonzero(changed)

    def _leader_events(self, now: float, c: dict) -> list[dict]:
        """A ``virtual_leader_change`` when a rider other than the last leader holds a decided first place: a first
        place the data does not decide changes nothing (no flip-flop between riders within the gap's error)."""
        first = np.flatnonzero(c["decided"] & (c["pmin"] == 1))
        if not first.size or int(self.riders[first[0]]) == self.leader:
            return []
        k = int(first[0])
        new = int(self.riders[k])
        second = np.flatnonzero(c["decided"] & (c["pmin"] == 2))
        margin = float(c["gap"][second[0]]) if second.size and np.isfinite(c["gap"][second[0]]) else None
        event = leader_change_event(self.stage_id, int(round(now * 1000)), new, self.leader, margin,
                                    float(self.ktf[k]))
        self.leader = new
        return [event]
