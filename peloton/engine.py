"""Race state one window at a time, from the past only: what a live pipeline can know.

The batch replay sees a whole stage and decides with hindsight: Viterbi over
each rider's whole track, speeds centred on the fix. Live, a window's rows
must come out while the race goes on, so :class:`RaceEngine` derives them
from the fixes up to that window: matching over each rider's last minutes
(the newest fix is the end of its chain), trailing speeds, gaps against the
leader's trajectory so far, groups tracked on from the previous tick.

Its output depends only on the fixes and the event-time order of windows,
not on how the fixes were cut into messages or panes: the engine splits
whatever it is given into windows itself. So the causal replay
(``peloton replay --causal``) and the live pipeline give the same rows,
which is what the equivalence tests check. The engine holds no course (it
is passed in) so that it pickles small into a runner's state.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from peloton.course import Candidates, Course
from peloton.feed import FixBatch, concat_batches
from peloton.gaps import gap_to_leader_s, leader_per_tick
from peloton.groups import GroupTimeline, track_groups
from peloton.incremental import LEADER_LOOKBACK_S, ColumnBuffer, LiveRoadClock, empty_candidates, stack_candidates
from peloton.matching import MatchParams, Matched, match_fixes
from peloton.classifications import StageClassifier
from peloton.quality import Quality
from peloton.predict import Predictor, StageModel, forecast_stage, time_trial_groups
from peloton.race import (RaceParams, RaceState, change_event, change_lasted, change_needs, finished_event,
                          groups_and_gap_ahead, groups_by_tick, groups_of_change, riding_fixes, time_trial_gaps)
from peloton.results import (FINALE_KM, RESULT_SETTLE_S, Crossings, finale_stops, last_seen, line_crossings,
                             rank_results)
from peloton.rows import add_wind, rider_state_columns
from peloton.table import Columns
from peloton.trackers import ClimbEfforts, Classifications, RiderEvents, VirtualStandings, Window
from peloton.windowing import TICK_S, window_index

__all__ = ["EngineParams", "Step", "RaceEngine", "window_index"]

_HIST = ("bib", "t", "km", "ktf", "speed", "sensor", "usable", "gid", "climbing")
#: Matched fixes that count on a climb (as the replay's climb efforts count them).
#: A group not seen for this long is gone: a change waiting for it to live long enough is dropped.
GROUP_GONE_S = 60.0
#: Trackers stop short of the line: a time-trial ride counts as finished this far before it (as in the standings).
TRACKER_SHORTFALL_KM = 0.2


@dataclass(frozen=True)
class EngineParams:
    window_s: float = TICK_S  # one feed tick
    match_context_s: float = 180.0  # each rider's recent fixes, to match the next (pace looks 90 s back)
    history_s: float = 2700.0  # matched fixes kept for gaps: the last rider may be 45 min behind the first
    speed_lookback_s: float = 45.0  # speed over the last 45 s: the feed has 36 s holes, and groups need a speed


@dataclass
class Step:
    """What one or more windows produced."""

    rider_state: Columns
    groups: Columns
    rejected: list  # (FixBatch, reason, detail), as match_fixes gives them
    stale: FixBatch  # fixes not newer than their rider's last processed one: not processed
    predictions: Columns = None  # when the engine was given a stage model
    race_events: Columns = None  # group events, once their groups have lived long enough (at their own time)
    results: Columns = None  # result rows, final (a rider's once his crossing has settled; the rest at the end)
    virtual_standings: Columns = None  # time trials: a rider's row at a km mark once he has passed it
    climb_efforts: Columns = None  # a rider's effort up a climb once he has passed its summit
    classifications: Columns = None  # the classifications after the stage: at its end only


class RaceEngine:
    """Incremental race state of one stage. Feed it fixes in event-time order of windows."""

    def __init__(self, stage_id: str, finish_km: float, time_trial: bool = False,
                 match_params: MatchParams = MatchParams(), race_params: RaceParams = RaceParams(),
                 params: EngineParams = EngineParams(), same_time_gap_s: float = 1.0,
                 classifier: StageClassifier | None = None):
        self.stage_id = stage_id
        self.same_time_gap_s = same_time_gap_s
        self.finish_km = finish_km
        self.time_trial = time_trial
        self.match_params = replace(match_params, speed_half_window_s=params.speed_lookback_s)  # trailing at the end
        self.race_params = race_params
        self.params = params
        self.context = FixBatch.empty(stage_id)
        self.context_candidates = empty_candidates()  # of self.context, row for row: searched once per fix
        kinds = {"bib": np.int64, "gid": np.int64, "usable": bool, "climbing": bool}
        self.hist = {k: np.zeros(0, dtype=kinds.get(k, float)) for k in _HIST}
        self.road_clock = LiveRoadClock()  # of the history (road stages): its cells summed again where it changed
        self.track_memo: dict = {}  # time trials: what is derived from each rider's track, until it grows (_tracks)
        self.groups: GroupTimeline | None = None
        self.pending_changes: list = []  # (membership change, groups at its tick) until its groups prove lasting
        self.predictor: Predictor | None = None
        self.known_bib = np.zeros(0, dtype=np.int64)  # sorted
        self.last_t = np.zeros(0)  # per known_bib: the newest processed event time
        self.newest_t = -np.inf
        # the result: crossings known for good, riders who stopped in the finale, where each rider was last seen
        self.crossed: dict = {}  # bib -> (last fix t, crossed t, line km, seen at the line, km short)
        self.stops: dict = {}  # bib -> (stop t, bibs of his group)
        self.last_seen: dict = {}  # bib -> (t, km)
        self.results_sent: set = set()
        self.over = False
        self.leader_ticks = np.zeros(0)  # the history's ticks walked so far and who led each (see _leaders)
        self.leader_bibs = np.zeros(0, dtype=np.int64)
        self.finished_said: set = set()
        # one tracker per rule, run in this order over each window (peloton.trackers)
        self.trackers = [*([VirtualStandings()] if time_trial else []), ClimbEfforts(),
                         *([] if classifier is None else [Classifications(classifier)]), RiderEvents()]

    def advance(self, fixes: FixBatch, course: Course, forecast: StageModel | None = None) -> Step:
        """Process ``fixes`` window by window (any order within; windows ascending).

        With ``forecast`` (the stage's prediction model) each window's groups (time trials: riders) are
        predicted too.
        """
        if not len(fixes):
            return self._empty_step()
        win = window_index(fixes.t, self.params.window_s)
        order = np.lexsort((fixes.t, fixes.bib, win))
        fixes, win = fixes.take(order), win[order]
        cuts = np.flatnonzero(np.diff(win)) + 1
        mp = self.match_params
        found = course.candidates(fixes.lat, fixes.lon, mp.radius_m, mp.max_candidates)  # one search, not one a window
        steps = [self._window(fixes.take(idx), course, forecast, found.take(idx))
                 for idx in np.split(np.arange(len(fixes)), cuts)]
        return Step(Columns.concat([s.rider_state for s in steps]), Columns.concat([s.groups for s in steps]),
                    [r for s in steps for r in s.rejected],
                    concat_batches([s.stale for s in steps], self.stage_id),
                    Columns.concat([s.predictions for s in steps]), Columns.concat([s.race_events for s in steps]),
                    Columns.concat([s.results for s in steps]),
                    Columns.concat([s.virtual_standings for s in steps]),
                    Columns.concat([s.climb_efforts for s in steps]), Columns.from_rows("classifications", []))

    def _empty_step(self) -> Step:
        return Step(Columns.from_rows("rider_state", []), Columns.from_rows("groups", []), [],
                    FixBatch.empty(self.stage_id), Columns.from_rows("predictions", []),
                    Columns.from_rows("race_events", []), Columns.from_rows("results", []),
                    Columns.from_rows("virtual_standings", []), Columns.from_rows("climb_efforts", []),
                    Columns.from_rows("classifications", []))

    def finish(self, forecast: StageModel | None = None) -> Step:
        """The stage is over (the end of the input): every result row not yet said, DNF rows included; the
        riders' events still open (a stop not over, a finish short of the line) and summit-finish efforts.

        A tracker that stopped short of the line counts as a finish at its
        rider's last speed without waiting for the silence to settle.
        """
        step = self._empty_step()
        if self.over:
            return step
        self.over = True
        h = self.hist
        c = line_crossings(h["t"], h["km"], h["bib"], h["usable"], h["ktf"], h["speed"],
                           self.race_params.at_line_km)
        events = self._finished_events(self._remember_crossings(c, np.inf))
        w = self._window_of(None, forecast)
        starts = ranked = None
        if self.time_trial:
            starts, ranked = w.starts, w.ranked
        rows = rank_results(self.stage_id, self._crossings(), self.same_time_gap_s, self.stops, self.last_seen,
                            starts, ranked)
        w.ranking = rows
        said = [t.finish(w) for t in self.trackers]
        step.race_events = _events_columns(events + [e for s in said for e in s.get("race_events", [])])
        step.climb_efforts = Columns.from_rows("climb_efforts", [r for s in said for r in s.get("climb_efforts", [])])
        step.results = Columns.from_rows("results", [r for r in rows if r["bib"] not in self.results_sent])
        self.results_sent |= {r["bib"] for r in rows}
        classified = [r for s in said for r in s.get("classifications", [])]
        if classified:
            step.classifications = Columns.from_rows("classifications", classified)
        return step

    def _window_of(self, m: Matched | None, forecast: StageModel | None) -> Window:
        """What the trackers read of this window (``m`` None: the end of the stage)."""
        return Window(self.stage_id, self.finish_km, self.time_trial, self.race_params, m, self.hist, self.newest_t,
                      forecast, self._leaders, self._clock, self._track_memo())

    def _last_t_of(self, bib: np.ndarray) -> np.ndarray:
        if not self.known_bib.size:
            return np.full(bib.size, -np.inf)
        pos = np.minimum(np.searchsorted(self.known_bib, bib), self.known_bib.size - 1)
        return np.where(self.known_bib[pos] == bib, self.last_t[pos], -np.inf)

    def _window(self, fixes: FixBatch, course: Course, forecast: StageModel | None = None,
                found: Candidates | None = None) -> Step:
        """One window's rows; ``found``: the candidates of ``fixes``, row for row, when already searched."""
        fresh = fixes.t > self._last_t_of(fixes.bib)
        stale = fixes.take(np.flatnonzero(~fresh))
        fixes = fixes.take(np.flatnonzero(fresh))
        if not len(fixes):
            step = self._empty_step()
            step.stale = stale
            return step
        newest = float(fixes.t.max())
        context = concat_batches([self.context, fixes], self.stage_id)
        cands = self._context_candidates(fixes, course,
                                         None if found is None else found.take(np.flatnonzero(fresh)))
        matched, rejected, _ = match_fixes(context, course, self.match_params, candidates=cands)
        is_new = lambda batch: batch.t > self._last_t_of(batch.bib)  # noqa: E731
        new = np.flatnonzero(is_new(matched.fixes))
        rejected = [(b.take(np.flatnonzero(is_new(b))), reason, detail) for b, reason, detail in rejected]
        rejected = [r for r in rejected if len(r[0])]
        m = matched.take(new)
        self._remember(fixes, newest, cands, dropped=[b for b, _, _ in rejected])
        self._append_history(m, newest)
        w = self._window_of(m, forecast)
        rider_state, groups, events = self._race_rows(w)
        if forecast is not None:
            add_wind(groups, forecast.profile)
        predictions, warnings = self._predict(m, groups, forecast)
        results, finished = self._results(m)
        said = [t.update(w) for t in self.trackers]
        own = [e for s in said for e in s.get("race_events", [])]
        events = Columns.concat([events, _events_columns(own + warnings + self._finished_events(finished))])
        standings = [r for s in said for r in s.get("virtual_standings", [])]
        efforts = [r for s in said for r in s.get("climb_efforts", [])]
        return Step(rider_state, groups, rejected, stale, predictions, events, results,
                    Columns.from_rows("virtual_standings", standings), Columns.from_rows("climb_efforts", efforts))

    def _predict(self, m: Matched, groups: Columns, forecast: StageModel | None) -> tuple[Columns, list[dict]]:
        """The window's predictions, and its crosswind warnings (the predictor's, as the replay's)."""
        if forecast is None:
            return Columns.from_rows("predictions", []), []
        if self.predictor is None:
            self.predictor = Predictor(forecast)
        self.predictor.attach(forecast)
        if self.time_trial:
            f = m.fixes
            rows = time_trial_groups(self.stage_id, f.t, f.bib, m.km_to_finish, m.speed_kph)
        else:
            rows = groups.to_rows()
        predictions, warnings = forecast_stage(rows, self.predictor)
        return Columns.from_rows("predictions", predictions), warnings

    def _context_candidates(self, fixes: FixBatch, course: Course, found: Candidates | None = None) -> Candidates:
        """Candidates of the context and then ``fixes`` (``found``, or searched), row for row: the context's
        were searched when its fixes were new."""
        mp = self.match_params
        known = getattr(self, "context_candidates", None)  # an engine pickled before it kept them has none
        if known is None or known.s.shape[0] != len(self.context):
            known = course.candidates(self.context.lat, self.context.lon, mp.radius_m, mp.max_candidates)
        if found is None:
            found = course.candidates(fixes.lat, fixes.lon, mp.radius_m, mp.max_candidates)
        return stack_candidates(known, found)

    def _remember(self, fixes: FixBatch, newest: float, cands=None, dropped=()) -> None:
        """Keep the recent context and the new fixes, but not those rejected when new (``dropped``): a rejection is
        final (its row never came out), and a rejected teleport left in the context could outvote, once the
        history before it is older than the context, the genuine fixes after it."""
        keep = self.context.t >= newest - self.params.match_context_s
        fresh = np.ones(len(fixes), dtype=bool)
        key = lambda f: np.rec.fromarrays([f.bib, f.t, f.lat, f.lon])  # noqa: E731
        for batch in dropped:
            fresh &= ~np.isin(key(fixes), key(batch))
        if cands is not None:  # the candidates of self.context then fixes
            rows = np.concatenate([np.flatnonzero(keep), len(self.context) + np.flatnonzero(fresh)])
            self.context_candidates = cands.take(rows)
        self.context = concat_batches([self.context.take(np.flatnonzero(keep)), fixes.take(np.flatnonzero(fresh))],
                                      self.stage_id)
        bibs = np.r_[self.known_bib, fixes.bib]
        times = np.r_[self.last_t, fixes.t]
        order = np.lexsort((times, bibs))
        bibs, times = bibs[order], times[order]
        last = np.r_[bibs[1:] != bibs[:-1], True]
        self.known_bib, self.last_t = bibs[last], times[last]
        self.newest_t = max(self.newest_t, newest)

    def _append_history(self, m: Matched, newest: float) -> None:
        usable = np.isin(m.quality, Quality.TIMED)
        new = dict(bib=m.fixes.bib, t=m.fixes.t, km=m.km, ktf=m.km_to_finish, speed=m.speed_kph,
                   sensor=m.fixes.sensor_kph, usable=usable, gid=np.full(len(m), -1, dtype=np.int64),
                   climbing=np.isin(m.quality, Quality.TRUSTED) & np.isfinite(m.km))
        cutoff = newest - self.params.history_s
        rows = self._history_rows()
        if not self.time_trial:  # (time trials keep every row: the hot seat may have started hours ago; no road clock)
            h = self.hist
            if getattr(self, "road_clock", None) is None:  # an engine pickled before it kept one
                self.road_clock = LiveRoadClock.of_history(h["bib"], h["t"], h["km"], h["usable"])
            self.road_clock.update(new["bib"], new["t"], new["km"], new["usable"], cutoff)
            rows.drop(~(h["t"] >= cutoff))
        rows.append(new)
        self.hist = rows.columns()

    def _history_rows(self) -> ColumnBuffer:
        """The buffers behind ``hist`` (made again from it after a pickle round trip)."""
        rows = getattr(self, "hist_rows", None)
        if rows is None or not rows.holds(self.hist):
            rows = self.hist_rows = ColumnBuffer({k: self.hist[k] for k in _HIST})
            self.hist = rows.columns()
        return rows

    def _race_rows(self, w: Window) -> tuple[Columns, Columns, Columns]:
        """Rider rows, group rows and the group events confirmed in the newest window (the last len(m) rows of
        the history)."""
        m = w.m
        h, n = self.hist, len(m)
        newest = np.zeros(h["t"].size, dtype=bool)
        newest[h["t"].size - n:] = True
        f = m.fixes
        empty = np.full(n, np.nan)
        if self.time_trial:
            gap = time_trial_gaps(h["bib"], h["t"], h["km"], h["usable"], self.race_params, w.starts,
                                  line_km=self.finish_km - TRACKER_SHORTFALL_KM, tracks=w.tracks, only=newest)[newest]
            race = RaceState(gap, empty, np.full(n, -1, dtype=np.int64), None, None, None)
            return rider_state_columns(m, race), Columns.from_rows("groups", []), Columns.from_rows("race_events", [])
        can_lead = h["ktf"] > self.race_params.at_line_km
        gap_all, _ = gap_to_leader_s(h["t"], h["km"], h["bib"], h["usable"], can_lead=can_lead,
                                     km_to_finish=h["ktf"], speed_kph=h["speed"], only=newest,
                                     sensor_kph=h["sensor"], at_line_km=self.race_params.at_line_km,
                                     leaders=self._leaders(newest, can_lead), clock=self._clock())
        gap = gap_all[newest]
        gparams = self.race_params.groups
        self.groups = track_groups(f.t, f.bib, m.km, m.speed_kph, riding_fixes(m), gparams, state=self.groups)
        gid = self.groups.group_id
        h["gid"][newest] = gid
        group_rows, gap_ahead = groups_and_gap_ahead(f.stage_id, f.t, f.bib, m.km, m.km_to_finish, m.speed_kph, gap,
                                                     gid, gparams)
        race = RaceState(gap, gap_ahead, gid, None, None, None)
        events = self._group_events(group_rows, float(f.t.max()) if len(f) else self.newest_t)
        return rider_state_columns(m, race), Columns.from_rows("groups", group_rows), events

    def _track_memo(self) -> dict:
        """What is derived from each rider's (time-trial) track, kept until it grows (not pickled)."""
        if getattr(self, "track_memo", None) is None:
            self.track_memo = {}
        return self.track_memo

    def __getstate__(self):
        """Pickled without the riders' derived values (trajectories are large): found again from the history."""
        state = dict(self.__dict__)
        state.pop("track_memo", None)
        state.pop("hist_rows", None)  # hist's buffers (hist, their views, pickles as its rows alone)
        return state

    def _clock(self):
        """The road clock of the history (None: built from it by :func:`gap_to_leader_s`)."""
        h = self.hist
        km = h["km"][h["usable"]]
        if not km.size:
            return None
        lo_km, hi_km = float(np.nanmin(km)), float(np.nanmax(km))
        clock = self.road_clock.clock(lo_km, hi_km)
        if clock is None:  # the neutral start came into the history or left it: its cells are counted anew
            self.road_clock = LiveRoadClock.of_history(h["bib"], h["t"], h["km"], h["usable"],
                                                       shift=LiveRoadClock.shift_for(lo_km))
            clock = self.road_clock.clock(lo_km, hi_km)
        return clock

    def _results(self, m: Matched) -> tuple[Columns, list[int]]:
        """Result rows that became final with this window (road stages: a rider's once his crossing settled).

        Only the finale is looked at (fixes in the last few km), so the rest
        of the stage costs nothing. Time trials rank by elapsed time, which
        the riders still on the course can change: their rows come at the end
        (:meth:`finish`). Also the riders whose crossing became known for good (their ``finished`` events).
        """
        f, ra = m.fixes, self.race_params
        racing = np.isin(m.quality, Quality.RACING) & (m.km_to_finish > ra.at_line_km) & (m.km >= 0)
        self.last_seen.update(last_seen(f.t, m.km, f.bib, racing))
        none = Columns.from_rows("results", [])
        if self.over:
            return none, []
        h = self.hist
        near = h["ktf"] <= FINALE_KM + 1.0
        if not near[h["t"].size - len(m):].any() and not self.crossed:
            return none, []
        t, bib, ktf, usable = h["t"][near], h["bib"][near], h["ktf"][near], h["usable"][near]
        c = line_crossings(t, h["km"][near], bib, usable, ktf, h["speed"][near], ra.at_line_km)
        finished = self._remember_crossings(c, self.newest_t)
        if self.time_trial:
            return none, finished
        stops = finale_stops(t, bib, ktf, h["speed"][near], usable & (ktf > 0), h["gid"][near], ra.stopped_kph,
                             ra.stopped_min_s)
        for rider, stop in stops.items():
            self.stops.setdefault(rider, stop)
        settled = {b for b, known in self.crossed.items() if known[1] <= self.newest_t - RESULT_SETTLE_S}
        if not settled - self.results_sent:
            return none, finished
        rows = rank_results(self.stage_id, self._crossings(), self.same_time_gap_s, self.stops)
        rows = [r for r in rows if r["bib"] in settled and r["bib"] not in self.results_sent]
        self.results_sent |= {r["bib"] for r in rows}
        return Columns.from_rows("results", rows), finished

    def _remember_crossings(self, c: Crossings, now: float) -> list[int]:
        """Keep crossings for good: seen at the line, or a tracker silent short of it for ``RESULT_SETTLE_S``.
        Returns the riders newly kept."""
        new = []
        for i in np.flatnonzero(c.seen_at_line | (now - c.last_fix_t >= RESULT_SETTLE_S)).tolist():
            if int(c.bib[i]) not in self.crossed:
                new.append(int(c.bib[i]))
            self.crossed.setdefault(int(c.bib[i]), (float(c.last_fix_t[i]), float(c.crossed_t[i]),
                                                    float(c.line_km[i]), bool(c.seen_at_line[i]),
                                                    float(c.short_km[i])))
        return new

    def _finished_events(self, riders: list[int]) -> list[dict]:
        """A ``finished`` event per rider whose crossing is known for good (as the results have it)."""
        out = []
        for b in riders:
            if b in self.finished_said:
                continue
            self.finished_said.add(b)
            _last, crossed_t, _line, seen, _short = self.crossed[b]
            out.append(finished_event(self.stage_id, b, crossed_t, seen))
        return out

    def _crossings(self) -> Crossings:
        bibs = sorted(self.crossed)
        cols = list(zip(*(self.crossed[b] for b in bibs))) if bibs else [[]] * 5
        return Crossings(np.array(bibs, dtype=np.int64), np.array(cols[0], float), np.array(cols[1], float),
                         np.array(cols[2], float), np.array(cols[3], bool), np.array(cols[4], float))

    def _leaders(self, newest: np.ndarray, can_lead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ticks, leader bib) of the history's ticks, as :func:`leader_per_tick` over the whole history gives them.

        The engine keeps who led each tick of its history (``leader_ticks``, ``leader_bibs``: the finish rule
        asks who led when the first finisher was last seen short of the line). Going on from the last tick's
        leader, the newest rows need only the history's last ``LEADER_LOOKBACK_S`` before them; rows older than
        that tick (late fixes) change earlier ticks, so then the whole history is walked again.
        """
        h = self.hist
        ticks, bibs = getattr(self, "leader_ticks", None), getattr(self, "leader_bibs", None)
        if not newest.any():
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        start = float(h["t"][newest].min())
        leading = h["usable"] & can_lead
        if ticks is not None and ticks.size and start > ticks[-1]:
            rows = np.flatnonzero(h["t"] >= start - LEADER_LOOKBACK_S)
            new_ticks, new_bibs = leader_per_tick(h["t"][rows], h["km"][rows], h["bib"][rows], leading[rows],
                                                  km_to_finish=h["ktf"][rows], speed_kph=h["speed"][rows],
                                                  after=(float(ticks[-1]), int(bibs[-1])))
            kept = ticks >= h["t"].min()  # the history was trimmed: so are its ticks
            ticks, bibs = np.r_[ticks[kept], new_ticks], np.r_[bibs[kept], new_bibs]
        else:
            ticks, bibs = leader_per_tick(h["t"], h["km"], h["bib"], leading, km_to_finish=h["ktf"],
                                          speed_kph=h["speed"])
        self.leader_ticks, self.leader_bibs = ticks, bibs
        return ticks, bibs

    def _group_events(self, group_rows: list[dict], now: float) -> Columns:
        """The replay's group events, each said once its groups have lived ``min_life_s`` (so, that much late).

        A change whose group is gone (unseen for ``GROUP_GONE_S``) before it lived that long was flicker.
        """
        gparams = self.race_params.groups
        rows_at = groups_by_tick(group_rows)
        self.pending_changes += [(c, groups_of_change(rows_at, c)) for c in self.groups.changes]
        self.groups.changes.clear()
        last_seen = self.groups.last_seen
        events, waiting = [], []
        for change, groups_then in self.pending_changes:
            if change_lasted(self.groups, change, gparams.min_life_s):
                event = change_event(self.stage_id, change, groups_then, gparams)
                if event is not None:
                    events.append(event)
            elif all(now - last_seen.get(g, -np.inf) <= GROUP_GONE_S for g in change_needs(change)):
                waiting.append((change, groups_then))
        self.pending_changes = waiting
        return Columns.from_rows("race_events", sorted(events, key=lambda e: (e["event_time"], e["event_type"])))


def _events_columns(events: list[dict]) -> Columns:
    return Columns.from_rows("race_events", sorted(events, key=lambda e: (e["event_time"], e["event_type"])))
