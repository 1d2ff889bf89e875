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

from dataclasses import dataclass, fields, replace

import numpy as np

from peloton.ingest.feed import FixBatch, concat_batches
from peloton.ingest.windowing import TICK_S, Windowing, window_index
from peloton.match.course import Candidates, Course
from peloton.match.matching import MatchParams, Matched, match_fixes
from peloton.match.quality import Quality
from peloton.output.table import Columns
from peloton.predict.model import StageModel
from peloton.state.classifications import StageClassifier
from peloton.state.gaps import leader_per_tick
from peloton.state.incremental import LEADER_LOOKBACK_S, ColumnBuffer, LiveRoadClock, empty_candidates, stack_candidates
from peloton.state.race import RaceParams
from peloton.state.trackers import Window, stage_trackers
from peloton.state.trackers.group_events import events_sorted

__all__ = ["EngineParams", "Step", "RaceEngine", "EngineStateError", "STATE_VERSION", "window_index"]

#: The shape of a pickled engine: its own fields, its trackers' and theirs. Raise it with any change to them. Live,
#: the runner keeps the engine in state between windows; one pickled by another version is refused whole
#: (:class:`EngineStateError`), never half read with defaults for what it lacks.
STATE_VERSION = 3  # 1: the engine of one class (before peloton.state.trackers), unversioned; 2: no virtual GC tracker

#: The history's columns: each matched fix's rider, time, km, km to finish, speeds, whether it is usable for times,
#: its group (the groups tracker fills it) and whether it counts on a climb (as the replay's climb efforts count).
_HIST = ("bib", "t", "km", "ktf", "speed", "sensor", "usable", "gid", "climbing")


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
    classifications: Columns = None  # the virtual general classification as it changes; the rest at the end only


#: The tables of a step: the trackers' (``rejected`` and ``stale`` are the matching's).
TABLES = tuple(f.name for f in fields(Step) if f.name not in ("rejected", "stale"))


class EngineStateError(RuntimeError):
    """A pickled engine of another :data:`STATE_VERSION`."""


class RaceEngine:
    """Incremental race state of one stage. Feed it fixes in event-time order of windows.

    It matches each window's fixes against the recent context, appends them to its history (with the road clock
    and the leaders it carries) and hands the window to its trackers (:mod:`peloton.state.trackers`), one per rule.
    """

    def __init__(self, stage_id: str, finish_km: float, time_trial: bool = False,
                 match_params: MatchParams = MatchParams(), race_params: RaceParams = RaceParams(),
                 params: EngineParams = EngineParams(), same_time_gap_s: float = 1.0,
                 classifier: StageClassifier | None = None):
        self.stage_id = stage_id
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
        self.hist_rows: ColumnBuffer | None = None  # the buffers behind hist (not pickled: hist is)
        self.track_memo: dict = {}  # time trials: what is derived from each rider's track, until it grows (not pickled)
        self.known_bib = np.zeros(0, dtype=np.int64)  # sorted
        self.last_t = np.zeros(0)  # per known_bib: the newest processed event time
        self.newest_t = -np.inf
        self.over = False
        self.leader_ticks = np.zeros(0)  # the history's ticks walked so far and who led each (see _leaders)
        self.leader_bibs = np.zeros(0, dtype=np.int64)
        self.trackers = stage_trackers(time_trial, same_time_gap_s, classifier)  # one per rule, run in this order

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
        merged = Step(**{name: Columns.concat([getattr(s, name) for s in steps]) for name in TABLES},
                      rejected=[r for s in steps for r in s.rejected],
                      stale=concat_batches([s.stale for s in steps], self.stage_id))
        return merged

    def _empty_step(self) -> Step:
        return self._step([])

    def _step(self, said: list[dict], rejected: list = (), stale: FixBatch | None = None) -> Step:
        """The trackers' tables ({table: Columns or rows} each) as one step; a window's events in time order."""
        tables = {}
        for name in TABLES:
            parts = [s[name] for s in said if name in s]
            cols = [p for p in parts if isinstance(p, Columns)]
            rows = [r for p in parts if not isinstance(p, Columns) for r in p]
            if name == "race_events":
                rows = events_sorted([r for c in cols for r in c.to_rows()] + rows)
                cols = []
            tables[name] = Columns.concat(cols + [Columns.from_rows(name, rows)])
        return Step(**tables, rejected=list(rejected), stale=FixBatch.empty(self.stage_id) if stale is None else stale)

    def finish(self, forecast: StageModel | None = None) -> Step:
        """The stage is over (the end of the input): what each tracker leaves to the end (every result row not yet
        said, DNF rows included; the riders' events still open; summit-finish efforts; the classifications)."""
        if self.over:
            return self._empty_step()
        self.over = True
        w = self._window_of(None, forecast)
        return self._step([t.finish(w) for t in self.trackers])

    def _window_of(self, m: Matched | None, forecast: StageModel | None) -> Window:
        """What the trackers read of this window (``m`` None: the end of the stage)."""
        return Window(self.stage_id, self.finish_km, self.time_trial, self.race_params, m, self.hist, self.newest_t,
                      forecast, self._leaders, self._clock, self.track_memo)

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
        return self._step([t.update(w) for t in self.trackers], rejected, stale)

    def _context_candidates(self, fixes: FixBatch, course: Course, found: Candidates | None = None) -> Candidates:
        """Candidates of the context and then ``fixes`` (``found``, or searched), row for row: the context's
        were searched when its fixes were new."""
        mp = self.match_params
        known = self.context_candidates  # (None: searched again)
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
            self.road_clock.update(new["bib"], new["t"], new["km"], new["usable"], cutoff)
            rows.drop(~(h["t"] >= cutoff))
        rows.append(new)
        self.hist = rows.columns()

    def _history_rows(self) -> ColumnBuffer:
        """The buffers behind ``hist`` (made again from it after a pickle round trip)."""
        rows = self.hist_rows
        if rows is None or not rows.holds(self.hist):
            rows = self.hist_rows = ColumnBuffer({k: self.hist[k] for k in _HIST})
            self.hist = rows.columns()
        return rows

    def __getstate__(self):
        """Pickled with its version, without the riders' derived values (trajectories are large: found again from
        the history) and hist's buffers (hist, their views, pickles as its rows alone)."""
        state = dict(self.__dict__, state_version=STATE_VERSION)
        state.pop("track_memo", None)
        state.pop("hist_rows", None)
        return state

    def __setstate__(self, state: dict) -> None:
        """An engine of this version, or :class:`EngineStateError`: one kept by another version (a runner's state
        from before an upgrade) is not read with guesses for what it lacks; the stage is restarted instead."""
        version = state.get("state_version", 1)
        if version != STATE_VERSION:
            raise EngineStateError(
                f"race engine state of version {version} (stage {state.get('stage_id', '?')}); this peloton reads "
                f"version {STATE_VERSION} only. Restart the stage: 'peloton live' rebuilds the race state from the "
                "subscription's retained messages (or replay the archive with 'peloton replay --causal')")
        state = dict(state)
        del state["state_version"]
        self.__dict__.update(state, hist_rows=None, track_memo={})

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

    def _leaders(self, newest: np.ndarray, can_lead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ticks, leader bib) of the history's ticks, as :func:`leader_per_tick` over the whole history gives them.

        The engine keeps who led each tick of its history (``leader_ticks``, ``leader_bibs``: the finish rule
        asks who led when the first finisher was last seen short of the line). Going on from the last tick's
        leader, the newest rows need only the history's last ``LEADER_LOOKBACK_S`` before them; rows older than
        that tick (late fixes) change earlier ticks, so then the whole history is walked again.
        """
        h = self.hist
        ticks, bibs = self.leader_ticks, self.leader_bibs  # (ticks None: walked again from the whole history)
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
