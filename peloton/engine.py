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
from peloton.classifications import StageClassifier, passage_intervals
from peloton.quality import Quality
from peloton.climbs import effort_rows
from peloton.passage import passage_times
from peloton.predict import Predictor, StageModel, forecast_stage, time_trial_groups
from peloton.race import (RaceParams, RaceState, RiderTracks, change_event, change_lasted, change_needs,
                          estimate_start_times, finished_event, groups_and_gap_ahead, groups_by_tick, groups_of_change,
                          mark_kms, riding_fixes, signal_events, standing_rows, stop_event, time_trial_gaps,
                          trusted_tracks)
from peloton.results import (CROSSING_BASE_S, FINALE_KM, RESULT_SETTLE_S, Crossings, crossing_uncertainty_s,
                             finale_stops, last_seen, line_crossings, rank_results, stop_runs)
from peloton.rows import add_wind, rider_state_columns
from peloton.table import Columns
from peloton.windowing import TICK_S, Windowing, window_index

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

    @classmethod
    def on(cls, windowing: Windowing, **overrides) -> "EngineParams":
        """The engine's parameters on the windows of the live ingest (the engine depends on the windowing, not
        the other way round)."""
        return cls(window_s=windowing.window_s, **overrides)


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
        self.classifier = classifier  # the classifications at the end (None: not derived)
        self.point_passed: dict = {}  # (bib, classified point) -> (lo, hi) passage interval, once he is past it
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
        # riders' own events, climb efforts and standings, each said once decided (see _rider_events)
        self.riders = _PerRider()  # each rider's last matched fix and how far he has been seen
        self.feed_ticks = np.zeros(0)  # every tick of matched fixes so far (sorted): silences while the feed ticked
        self.open_stops: dict = {}  # bib -> (first fix t, its km to finish, last fix t) of a stop not over yet
        self.finished_said: set = set()
        self.climb_passed: dict = {}  # (bib, climb point) -> passage time (nan: not known closely enough)
        self.standings_seen: dict = {}  # km mark index -> (bibs, passages, elapsed) of the riders ranked there

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
        events += [stop_event(self.stage_id, b, t_a, ktf, t_z) for b, (t_a, ktf, t_z) in sorted(self.open_stops.items())
                   if t_z - t_a >= self.race_params.stopped_min_s]
        self.open_stops = {}
        step.race_events = _events_columns(events)
        step.climb_efforts = Columns.from_rows("climb_efforts", self._summit_finishes(forecast))
        starts = ranked = None
        if self.time_trial:
            tracks = self._tracks()
            starts = estimate_start_times(h["bib"], h["t"], h["km"], h["usable"], self.race_params.itt_start_grid_s,
                                          tracks)
            ranked = set(trusted_tracks(h["bib"], h["t"], h["km"], h["usable"], self.race_params, tracks).tolist())
        rows = rank_results(self.stage_id, self._crossings(), self.same_time_gap_s, self.stops, self.last_seen,
                            starts, ranked)
        step.results = Columns.from_rows("results", [r for r in rows if r["bib"] not in self.results_sent])
        self.results_sent |= {r["bib"] for r in rows}
        if self.classifier is not None:
            step.classifications = Columns.from_rows("classifications", self.classifier.rows(rows, self._passages()))
        return step

    def _passages(self) -> list[tuple]:
        """Per classified point: (riders, lo, hi) of the riders seen past it (see :meth:`_point_passages`)."""
        out = []
        for p in range(self.classifier.at_km.size):
            got = sorted((b, v) for (b, q), v in self.point_passed.items() if q == p)
            out.append((np.array([b for b, _ in got], np.int64), np.array([v[0] for _, v in got], float),
                        np.array([v[1] for _, v in got], float)))
        return out

    def _point_passages(self, m: Matched) -> None:
        """Passages at the sprints, bonus points and summits, kept as riders pass them: the replay's intervals
        (:func:`peloton.classifications.passage_intervals`) on the rider's track in the history."""
        if self.classifier is None or not self.classifier.at_km.size or not len(m):
            return
        points = self.classifier.at_km
        riders, before, now = self._reach(m, np.isin(m.quality, Quality.TRUSTED), "points_reach")
        passed = (before[:, None] < points[None, :]) & (points[None, :] <= now[:, None])
        if not passed.any():
            return
        h = self.hist
        idx = np.flatnonzero(np.isin(h["bib"], riders[passed.any(axis=1)]) & h["climbing"])
        who, lo, hi = passage_intervals(h["bib"][idx], h["t"][idx], h["km"][idx], points)
        for r, p in zip(*np.nonzero(passed)):
            k = int(np.searchsorted(who, riders[r]))
            if k < who.size and who[k] == riders[r] and np.isfinite(lo[k, p]):
                self.point_passed[(int(riders[r]), int(p))] = (float(lo[k, p]), float(hi[k, p]))

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
        rider_state, groups, events = self._race_rows(m)
        if forecast is not None:
            add_wind(groups, forecast.profile)
        predictions, warnings = self._predict(m, groups, forecast)
        results, finished = self._results(m)
        standings = self._standings(m)
        efforts = self._climb_efforts(m, forecast)
        self._point_passages(m)
        own = self._rider_events(m)  # after the others: it moves each rider's last fix and reach on
        events = Columns.concat([events, _events_columns(own + warnings + self._finished_events(finished))])
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

    def _race_rows(self, m: Matched) -> tuple[Columns, Columns, Columns]:
        """Rider rows, group rows and the group events confirmed in the newest window (the last len(m) rows of
        the history)."""
        h, n = self.hist, len(m)
        newest = np.zeros(h["t"].size, dtype=bool)
        newest[h["t"].size - n:] = True
        f = m.fixes
        empty = np.full(n, np.nan)
        if self.time_trial:
            tracks = self._tracks()
            starts = estimate_start_times(h["bib"], h["t"], h["km"], h["usable"], self.race_params.itt_start_grid_s,
                                          tracks)
            self.window_starts = starts  # this window's: the standings use them too
            gap = time_trial_gaps(h["bib"], h["t"], h["km"], h["usable"], self.race_params, starts,
                                  line_km=self.finish_km - TRACKER_SHORTFALL_KM, tracks=tracks, only=newest)[newest]
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

    def _tracks(self) -> RiderTracks:
        """The riders' tracks of the (time-trial) history: what is derived from a track is kept until it grows."""
        if getattr(self, "track_memo", None) is None:
            self.track_memo = {}
        h = self.hist
        return RiderTracks(h["bib"], h["t"], h["km"], h["usable"], self.track_memo)

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
        # final once no crossing still unknown can overlap his interval: an unknown one's starts no sooner than
        # RESULT_SETTLE_S + CROSSING_BASE_S ago (his last fix is newer, and he extrapolates from it)
        settled = {b for b, known in self.crossed.items()
                   if known[1] + _uncertainty(known) <= self.newest_t - RESULT_SETTLE_S - CROSSING_BASE_S}
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

    def _rider_events(self, m: Matched) -> list[dict]:
        """signal_lost / signal_back (said when the signal is back) and stopped (said when the rider moves on, or at
        the end): the replay's kernels over this window's fixes, each rider's carried on from his last fix."""
        f, ra = m.fixes, self.race_params
        if not len(m):
            return []
        order = np.lexsort((f.t, f.bib))
        bib, t, ktf = f.bib[order], f.t[order], m.km_to_finish[order]
        speed, quality = m.speed_kph[order], m.quality[order]
        same_prev = np.r_[False, bib[1:] == bib[:-1]]
        last_t, last_ktf = self.riders.get(bib, "t"), self.riders.get(bib, "ktf")
        prev_t = np.where(same_prev, np.r_[np.nan, t[:-1]], last_t)
        prev_ktf = np.where(same_prev, np.r_[np.nan, ktf[:-1]], last_ktf)
        self.feed_ticks = np.union1d(self.feed_ticks, t)
        events = signal_events(self.stage_id, bib, t, ktf, prev_t, prev_ktf, self.feed_ticks, ra)
        last = np.r_[bib[1:] != bib[:-1], True]
        self.riders.set(bib[last], t=t[last], ktf=ktf[last])
        # stops: a stop still open at the last window goes on with this one's fixes (its first and last fix stand in)
        carried = [(b, *self.open_stops.pop(b)) for b in np.unique(bib).tolist() if b in self.open_stops]
        pre_bib = np.array([c[0] for c in carried for _ in range(2)], dtype=np.int64)
        pre_t = np.array([x for c in carried for x in (c[1], c[3])], dtype=float)
        pre_ktf = np.array([x for c in carried for x in (c[2], np.nan)], dtype=float)
        B, T, K = np.r_[pre_bib, bib], np.r_[pre_t, t], np.r_[pre_ktf, ktf]
        S = np.r_[np.zeros(pre_t.size), speed]
        on_course = np.r_[np.ones(pre_t.size, dtype=bool), np.isin(quality, Quality.ON_COURSE)]
        order = np.lexsort((T, B))
        is_last = np.zeros(B.size, dtype=bool)
        is_last[order[np.r_[B[order][1:] != B[order][:-1], True]]] = True
        first, final = stop_runs(B, T, S, on_course, ra.stopped_kph, 0.0)  # every run, however short
        for a, z in zip(first[is_last[final]].tolist(), final[is_last[final]].tolist()):
            self.open_stops[int(B[a])] = (float(T[a]), float(K[a]), float(T[z]))
        first, final = stop_runs(B, T, S, on_course, ra.stopped_kph, ra.stopped_min_s)
        over = ~is_last[final]
        events += [stop_event(self.stage_id, B[a], T[a], K[a], T[z]) for a, z in zip(first[over], final[over])]
        return events

    def _reach(self, m: Matched, mask: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(riders of this window, how far each had been seen before it, how far now), over ``mask`` fixes."""
        f = m.fixes
        riders = np.unique(f.bib)
        before = self.riders.get(riders, column, -np.inf)
        km = np.where(mask & np.isfinite(m.km), m.km, -np.inf)
        now = np.full(riders.size, -np.inf)
        np.maximum.at(now, np.searchsorted(riders, f.bib), km)
        now = np.maximum(before, now)
        self.riders.set(riders, **{column: now})
        return riders, before, now

    def _climb_efforts(self, m: Matched, forecast: StageModel | None) -> list[dict]:
        """Climb efforts said as riders pass summits: each passage (foot or summit) is the replay's
        (:func:`peloton.passage.passage_times` on the rider's track), taken once he has a fix past the point."""
        if forecast is None or not forecast.profile.climbs or not len(m):
            return []
        profile = forecast.profile
        climbs = profile.climbs
        points = np.r_[[c.start_km for c in climbs], [c.summit_km for c in climbs]]  # feet, then summits
        riders, before, now = self._reach(m, np.isin(m.quality, Quality.TRUSTED), "climb_reach")
        passed = (before[:, None] < points[None, :]) & (points[None, :] <= now[:, None])
        h = self.hist
        rows = []
        for r in np.flatnonzero(passed.any(axis=1)).tolist():  # the few riders at a foot or a summit
            rider = int(riders[r])
            idx = np.flatnonzero((h["bib"] == rider) & h["climbing"])
            idx = idx[np.argsort(h["t"][idx], kind="stable")]
            cols = np.flatnonzero(passed[r])
            for p, when in zip(cols.tolist(), passage_times(h["t"][idx], h["km"][idx], points[cols]).tolist()):
                self.climb_passed[(rider, p)] = when
            rows += self._efforts_of(rider, [p - len(climbs) for p in cols.tolist() if p >= len(climbs)], profile)
        return rows

    def _efforts_of(self, rider: int, summits: list[int], profile) -> list[dict]:
        climbs = profile.climbs
        rows = []
        for c in summits:
            foot, top = self.climb_passed.get((rider, c), np.nan), self.climb_passed.get((rider, len(climbs) + c))
            if top is None:
                continue
            rows += effort_rows(self.stage_id, np.array([rider]), [climbs[c]], np.array([[foot]]),
                                np.array([[top]]), profile, profile.finish_km)
        return rows

    def _summit_finishes(self, forecast: StageModel | None) -> list[dict]:
        """At the end: a summit the track ends just short of is reached at the last speed (as the replay has it)."""
        if forecast is None or not forecast.profile.climbs:
            return []
        profile, climbs, h = forecast.profile, forecast.profile.climbs, self.hist
        rows = []
        for (rider, p), when in sorted(self.climb_passed.items()):
            if p >= len(climbs) or not np.isfinite(when) or (rider, len(climbs) + p) in self.climb_passed:
                continue
            idx = np.flatnonzero((h["bib"] == rider) & h["climbing"])
            idx = idx[np.argsort(h["t"][idx], kind="stable")]
            top = passage_times(h["t"][idx], h["km"][idx], np.array([climbs[p].summit_km]))[0]
            if np.isfinite(top):
                self.climb_passed[(rider, len(climbs) + p)] = float(top)
                rows += self._efforts_of(rider, [p], profile)
        return rows

    def _standings(self, m: Matched) -> list[dict]:
        """Time trials: a rider's virtual standing at a km mark once he has a fix past it, ranked among the riders
        who passed it before him (:func:`peloton.race.standing_rows`, the replay's rule)."""
        if not self.time_trial or not len(m):
            return []
        marks, labels = mark_kms(self.finish_km)
        riders, before, now = self._reach(m, np.isin(m.quality, Quality.TIMED), "mark_reach")
        passed = (before[:, None] < marks[None, :]) & (marks[None, :] <= now[:, None])
        if not passed.any():
            return []
        h, ra = self.hist, self.race_params
        starts = self.window_starts  # estimated over the same history for this window's gaps (_race_rows)
        tracks = self._tracks()
        ranked = set(trusted_tracks(h["bib"], h["t"], h["km"], h["usable"], ra, tracks).tolist())
        rows = []
        for r in np.flatnonzero(passed.any(axis=1)).tolist():
            rider = int(riders[r])
            if rider not in starts or rider not in ranked:
                continue
            cols = np.flatnonzero(passed[r])
            passage = tracks.trajectory(rider).passage_time(marks[cols])
            for j, when in zip(cols.tolist(), passage.tolist()):
                if not np.isfinite(when):
                    continue
                bibs, times, elapsed = self.standings_seen.setdefault(j, ([], [], []))
                bibs.append(rider)
                times.append(when)
                elapsed.append(when - starts[rider])
                mark = standing_rows(self.stage_id, float(labels[j]), np.array(bibs), np.array(times),
                                     np.array(elapsed))
                rows += [row for row in mark if row["bib"] == rider]
        return rows

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


class _PerRider:
    """Per-rider numbers the engine carries (sorted bibs, a column per name): looked up and set for many at once."""

    def __init__(self):
        self.bib = np.zeros(0, dtype=np.int64)
        self.cols: dict = {}

    def get(self, bib: np.ndarray, name: str, default: float = np.nan) -> np.ndarray:
        col = self.cols.get(name)
        if col is None or not self.bib.size:
            return np.full(np.size(bib), default)
        pos = np.minimum(np.searchsorted(self.bib, bib), self.bib.size - 1)
        value = np.where(self.bib[pos] == bib, col[pos], default)
        return np.where(np.isnan(value), default, value)

    def set(self, bib: np.ndarray, **values: np.ndarray) -> None:
        """``bib`` unique."""
        missing = np.setdiff1d(bib, self.bib)
        if missing.size:
            merged = np.union1d(self.bib, missing)
            at = np.searchsorted(merged, self.bib)
            for name, col in self.cols.items():
                grown = np.full(merged.size, np.nan)
                grown[at] = col
                self.cols[name] = grown
            self.bib = merged
        pos = np.searchsorted(self.bib, bib)
        for name, v in values.items():
            col = self.cols.setdefault(name, np.full(self.bib.size, np.nan))
            col[pos] = v


def _uncertainty(known: tuple) -> float:
    """The half-width of a remembered crossing's interval ((last fix t, crossed t, ...): :meth:`_remember_crossings`)."""
    last, crossed = known[0], known[1]
    return float(crossing_uncertainty_s(Crossings(*(np.array([x]) for x in (0, last, crossed, 0, True, 0))))[0])
