"""What the engine carries between windows (peloton/state/incremental.py) changes no row: the same rows as searching
every fix's candidates, walking every tick's leader and building the road clock again each window."""
import pickle

import numpy as np
import pytest

from peloton.ingest.feed import FixBatch, concat_batches, parse_message
from peloton.ingest.recording import iter_messages
from peloton.match.matching import match_fixes
from peloton.predict.model import StageModel
from peloton.state.engine import EngineParams, RaceEngine, window_index
from peloton.state.gaps import RoadClock, leader_per_tick
from peloton.state.incremental import LiveRoadClock
from tests.conftest import slice_recording
from tests.helpers import canonical_rows

TABLES = ("rider_state", "groups", "predictions", "race_events")


class FromScratchEngine(RaceEngine):
    """The engine without its carried work: every window searches its whole context and walks all ticks."""

    def _context_candidates(self, fixes, course, found=None):
        self.context_candidates = None
        return super()._context_candidates(fixes, course)

    def _leaders(self, newest, can_lead):
        self.leader_ticks = None
        return super()._leaders(newest, can_lead)

    def _clock(self):
        return None  # built from the whole history by gap_to_leader_s


def _fixes(recording, stage):
    import json

    batches = [parse_message(stage.stage_id, k, p)[0] for k, p in iter_messages(json.dumps(recording))]
    return concat_batches(batches, stage.stage_id)


def _rows(steps, table):
    return canonical_rows([r for s in steps for r in getattr(s, table).to_rows()])


@pytest.fixture(scope="module")
def attack(stage4_recording, stage4):
    return _fixes(slice_recording(stage4_recording, 320, 400), stage4)  # the first attack: leaders change


def test_carried_candidates_and_leaders_give_the_rows_of_a_fresh_search(attack, stage4, stage4_course):
    """Window by window, the engine pickled between windows as the live runner keeps it, and with late fixes
    (a rider's fix older than the newest tick: the leaders are walked again from the whole history)."""
    forecast = StageModel.of_stage(stage4, stage4_course)
    win = window_index(attack.t, 6.0)
    rng = np.random.default_rng(3)
    late = np.zeros(attack.bib.size, dtype=bool)
    late[rng.choice(attack.bib.size, 200, replace=False)] = True  # each arrives one window after its own
    new = RaceEngine(stage4.stage_id, stage4_course.finish_km)
    fresh = FromScratchEngine(stage4.stage_id, stage4_course.finish_km)
    carried, scratch, sizes = [], [], []
    windows = np.unique(win)
    for w in windows:
        batch = attack.take(np.flatnonzero(((win == w) & ~late) | ((win == w - 1) & late)))
        new = pickle.loads(pickle.dumps(new))
        sizes.append(len(pickle.dumps(new)))
        carried.append(new.advance(batch, stage4_course, forecast))
        scratch.append(fresh.advance(batch, stage4_course, forecast))
    assert sum(len(s.rider_state) for s in carried) > 0.95 * len(attack)
    for table in TABLES:
        assert _rows(carried, table) == _rows(scratch, table), table
    assert sum(len(s.race_events) for s in carried) > 0 and sum(len(s.predictions) for s in carried) > 0
    assert [(r[1], len(r[0])) for s in carried for r in s.rejected] == \
           [(r[1], len(r[0])) for s in scratch for r in s.rejected]
    # what is carried is the context's candidates, a few columns per fix: the engine stays small
    assert new.context_candidates.s.shape[0] == len(new.context)
    assert new.context_candidates.s.nbytes <= 8 * 8 * len(new.context)


def test_a_silent_leader_held_across_windows_is_still_held():
    """The leader of the tick before is carried: a breakaway rider out of coverage stays the reference."""
    t = np.arange(0.0, 120.0, 6.0)
    a_t = t[t <= 30]  # rider 1 leads, silent after 30 s
    b_t = t
    bib = np.r_[np.full(a_t.size, 1), np.full(b_t.size, 2)]
    tt = np.r_[a_t, b_t]
    km = np.r_[10.0 + a_t * 0.011, 9.95 + b_t * 0.01]  # 1 rides 40 km/h, 2 36 km/h, 50 m behind
    speed = np.r_[np.full(a_t.size, 39.6), np.full(b_t.size, 36.0)]
    ktf = 100.0 - km
    usable = np.ones(tt.size, dtype=bool)
    ticks, whole = leader_per_tick(tt, km, bib, usable, km_to_finish=ktf, speed_kph=speed)
    assert (whole[ticks > 42] == 1).all()  # held while silent (not the furthest of the last 12 s): carried
    cut = 48.0
    first = tt <= cut
    t1, l1 = leader_per_tick(tt[first], km[first], bib[first], usable[first], km_to_finish=ktf[first],
                             speed_kph=speed[first])
    t2, l2 = leader_per_tick(tt, km, bib, usable, km_to_finish=ktf, speed_kph=speed,
                             after=(float(t1[-1]), int(l1[-1])))
    assert np.array_equal(np.r_[t1, t2], ticks) and np.array_equal(np.r_[l1, l2], whole)
    # without the carried leader the walk restarts from whoever is furthest among the fixes: rider 2
    _, restarted = leader_per_tick(tt, km, bib, usable, km_to_finish=ktf, speed_kph=speed, after=(cut, -1))
    assert restarted[0] == 2


def test_carried_candidates_are_the_searched_ones_with_duplicates(attack, stage4_course):
    """A (bib, t) twice at two positions, a fix repeated: the kept fixes get their own rows' candidates, as the
    search gives them."""
    part = attack.take(np.flatnonzero(attack.t < attack.t.min() + 600))
    rng = np.random.default_rng(5)
    twice = rng.choice(len(part), 50, replace=False)
    moved = part.take(twice)
    moved = FixBatch(moved.stage_id, moved.bib, moved.t, moved.lat + 0.01, moved.lon, moved.sensor_kph)
    # two positions per (bib, t): one is rejected as a conflict; a repeat is dropped
    batch = concat_batches([moved, part, part.take(twice[:10])], part.stage_id)
    cands = stage4_course.candidates(batch.lat, batch.lon, 500.0, 32)
    searched, rej_a, dupes_a = match_fixes(batch, stage4_course)
    carried, rej_b, dupes_b = match_fixes(batch, stage4_course, candidates=cands)
    assert np.array_equal(searched.s, carried.s, equal_nan=True) and len(searched) > 0
    assert np.array_equal(searched.off_m, carried.off_m) and np.array_equal(searched.fixes.lat, carried.fixes.lat)
    assert [(r[1], len(r[0])) for r in rej_a] == [(r[1], len(r[0])) for r in rej_b]
    assert dupes_a == dupes_b == 10 and any(r[1] == "conflicting_fix" for r in rej_a)


def test_the_road_clock_kept_window_by_window_is_the_one_built_from_the_history(attack, stage4, stage4_course):
    """Bit for bit, window by window, with fixes leaving the history (2 minutes of it here) and the engine
    pickled between windows; before km 0 (the neutral start in the history) the clock is built instead."""
    engine = RaceEngine(stage4.stage_id, stage4_course.finish_km, params=EngineParams(history_s=120.0))
    win = window_index(attack.t, 6.0)
    for w in np.unique(win):
        engine = pickle.loads(pickle.dumps(engine))
        engine.advance(attack.take(np.flatnonzero(win == w)), stage4_course)
        h = engine.hist
        live, built = engine._clock(), RoadClock(h["t"], h["km"], h["bib"], h["usable"])
        assert np.array_equal(live.km, built.km) and np.array_equal(live.s, built.s)
    assert engine.road_clock.t0.min() >= engine.hist["t"].max() - 126.0  # the intervals left with their fixes
    # a history reaching back before km 0: the cells counted from km 0 are not the built clock's; shifted, they are
    t = np.arange(0.0, 60.0, 6.0)
    neutral = LiveRoadClock.of_history(np.ones(t.size, dtype=np.int64), t, -0.5 + t * 0.012, np.ones(t.size, bool))
    assert neutral.clock(-0.5, 0.2) is None and neutral.clock(0.1, 0.2) is not None


def test_the_road_clock_kept_over_the_neutral_start_is_the_one_built_from_the_history():
    """Fixes before km 0 in the history: kept in the built clock's shifted cells, window by window, the clock is the
    built one bit for bit (interval ends at odd kms, which the shift rounds); when the neutral start leaves the
    history the cells are counted from km 0 again (the engine builds the clock anew)."""
    rng = np.random.default_rng(11)
    riders, ticks = 40, np.arange(0.0, 600.0, 6.0)
    bib = np.repeat(np.arange(1, riders + 1), ticks.size)
    t = np.tile(ticks, riders)
    km = -0.73 + rng.uniform(0, 0.2, riders).repeat(ticks.size) + t * rng.uniform(0.009, 0.012, t.size)
    usable = (rng.random(t.size) > 0.05) | (t == 0)  # the first fixes (the furthest back) usable: one origin
    lo_km = float(km[usable].min())
    shift = LiveRoadClock.shift_for(lo_km)
    assert 70 < shift < 76
    clock = LiveRoadClock(shift=shift)
    for tick in ticks:
        now = t == tick
        clock.update(bib[now], t[now], km[now], usable[now], -np.inf)
        seen = t <= tick
        hi_km = float(km[seen & usable].max())
        built = RoadClock(t[seen], km[seen], bib[seen], usable[seen])
        live = clock.clock(float(km[seen & usable].min()), hi_km)
        assert np.array_equal(live.km, built.km) and np.array_equal(live.s, built.s)
    assert LiveRoadClock(shift=0).clock(lo_km, 5.0) is None and clock.clock(0.3, 5.0) is None
    assert LiveRoadClock.shift_for(0.3) == 0 and LiveRoadClock.shift_for(0.0) == 1
