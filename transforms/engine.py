"""Beam glue of the incremental race engine: the causal replay (batch) and the live race state (streaming).

Both run :class:`peloton.state.engine.RaceEngine` over a stage's fixes in window
order, so they give the same rows. Live, one engine per stage lives in the
runner's keyed state, and two streams come out:

* **provisional** rows, at once for every pane (early, on time or late), from
  a second engine that takes fixes in arrival order and skips a rider's fix
  older than one it already used: what a live graphic shows within a second;
* **final** rows, once the watermark has passed a window's end by the settle
  time (the allowed lateness plus one window): every fix that may still
  arrive for it has arrived, windows go through the engine in event-time
  order, and the rows equal the causal replay's.

A fix arriving for a window already final is set aside as ``late`` (reason,
counted), never dropped silently.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.coders import FloatCoder, PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow, TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from peloton.ingest.clock import ClockWatch
from peloton.ingest.feed import FixBatch, Reason, concat_batches, dead_letter, fix_json
from peloton.ingest.windowing import window_end, window_index, window_start
from peloton.match.matching import MatchParams, dedupe
from peloton.match.stage import Stage
from peloton.output.table import Columns
from peloton.state.classifications import StageClassifier
from peloton.state.engine import EngineParams, RaceEngine, Step
from peloton.state.race import RaceParams
from peloton.state.results import same_time_gap_s
from peloton.state.rows import dead_letter_columns, rejected_dead_letters, split_by_time
from transforms.worker_cache import stage_model

__all__ = ["CausalRaceState", "LiveRaceState", "LiveRaceStateFn", "PROVISIONAL", "LATE", "DEAD_LETTER"]

log = logging.getLogger("peloton")

from peloton.output.tables import DEAD_LETTER  # noqa: E402 - the tag is the table
LATE = Reason.LATE  # the tag of late rows is their reason
PROVISIONAL = "provisional"  # tag prefix: provisional_rider_state, provisional_groups, provisional_predictions


def _new_engine(stage: Stage, course, race_params: RaceParams, params: EngineParams) -> RaceEngine:
    return RaceEngine(stage.stage_id, course.finish_km, stage.is_time_trial, MatchParams(), race_params, params,
                      same_time_gap_s(stage.stage_type), StageClassifier(stage))


def _rejected_rows(stage_id: str, step: Step) -> list[dict]:
    for batch, reason, _detail in step.rejected:
        beam.metrics.Metrics.counter("peloton", f"dead_letter.{reason}").inc(len(batch))
    return rejected_dead_letters(stage_id, step.rejected)


class _EngineFn(beam.DoFn):
    """A DoFn running race engines: the stage and its course (spatial index built) once per worker."""

    def __init__(self, stage_json: str, race_params: RaceParams, params: EngineParams):
        self.stage_json, self.race_params, self.params = stage_json, race_params, params

    def setup(self):
        self.stage, self.course, self.forecast = stage_model(self.stage_json)


@beam.typehints.with_output_types(Columns)
class CausalReplayFn(_EngineFn):
    """(stage_id, [FixBatch]) -> what the live pipeline would have said: rider_state, groups, predictions,
    race_events, results, dead letters. The end of the input is the end of the stage."""

    def process(self, keyed):
        stage_id, batches = keyed
        fixes, n_dupes = dedupe(concat_batches(list(batches), stage_id))
        engine = _new_engine(self.stage, self.course, self.race_params, self.params)
        counter = beam.metrics.Metrics.counter
        counter("peloton", "duplicates_removed").inc(n_dupes)
        win = window_index(fixes.t, self.params.window_s)
        order = np.argsort(win, kind="stable")
        cuts = np.flatnonzero(np.diff(win[order])) + 1
        # 300 windows at a time (the engine splits them itself): progress in the log, bounded elements
        for chunk in _chunks(order, cuts, 300):
            step = engine.advance(fixes.take(chunk), self.course, self.forecast)
            counter("peloton", "fixes_matched").inc(len(step.rider_state))
            log.info("causal replay of stage %s: %d fixes up to %s", stage_id, len(step.rider_state),
                     _clock(engine.newest_t))
            yield from _emit(step, "")
            dead = _rejected_rows(stage_id, step)
            if dead:
                yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(dead))
        yield from _emit(engine.finish(self.forecast), "")


def _clock(t: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.gmtime(t)) if math.isfinite(t) else "-"


def _chunks(order: np.ndarray, cuts: np.ndarray, windows: int):
    bounds = np.r_[0, cuts[windows - 1::windows], order.size] if cuts.size else np.r_[0, order.size]
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b > a:
            yield order[a:b]


def _emit(step: Step, prefix: str, stamp: bool = True):
    """Rows of a step, one Columns batch per tick; stamped with their event time unless ``stamp`` is off.

    Race events and results are final only: each event is said once its groups have lasted, so a
    provisional one would say nothing sooner; a result row once its rider's crossing has settled; a standing
    or a climb effort once the rider has passed the mark or the summit.
    """
    tables = [("rider_state", step.rider_state), ("groups", step.groups), ("predictions", step.predictions)]
    if not prefix:
        tables += [(name, getattr(step, name)) for name in FINAL_ONLY]
    for name, cols in tables:
        if cols is None or not len(cols):
            continue
        tag = f"{prefix}_{name}" if prefix else name
        for t, idx in split_by_time(cols.data["event_time"] / 1000.0):
            batch = cols.take(idx)
            value = TimestampedValue(batch, t) if stamp else batch
            yield value if tag == "rider_state" else pvalue.TaggedOutput(tag, value)


#: The engine's tables said only when final (no provisional rows).
FINAL_ONLY = ("race_events", "results", "virtual_standings", "climb_efforts", "classifications")


class CausalRaceState(beam.PTransform):
    """FixBatches -> {'rider_state', 'groups', 'predictions', 'race_events', 'results', 'virtual_standings',
    'climb_efforts', 'classifications', 'dead_letter'} as the live
    pipeline derives them (batch)."""

    def __init__(self, stage: Stage, race_params: RaceParams = RaceParams(), params: EngineParams = EngineParams()):
        super().__init__()
        self.stage_json = stage.to_json()
        self.race_params, self.params = race_params, params

    def expand(self, fixes):
        return (fixes
                | "KeyByStage" >> beam.Map(lambda b: (b.stage_id, b))
                | "GatherStage" >> beam.GroupByKey()
                | "Engine" >> beam.ParDo(CausalReplayFn(self.stage_json, self.race_params, self.params))
                .with_outputs("groups", "predictions", *FINAL_ONLY, DEAD_LETTER, main="rider_state"))


@beam.typehints.with_output_types(Columns)
class LiveRaceStateFn(_EngineFn):
    """(stage_id, FixBatch pane) -> provisional rows now, final rows when a window settles.

    Keyed by stage, in the global window: one engine per stage, in state.
    """

    PENDING = BagStateSpec("pending", PickleCoder())
    FINAL_ENGINE = ReadModifyWriteStateSpec("final_engine", PickleCoder())
    FAST_ENGINE = ReadModifyWriteStateSpec("fast_engine", PickleCoder())
    SETTLED = ReadModifyWriteStateSpec("settled_until", FloatCoder())
    CLOCKS = ReadModifyWriteStateSpec("clocks", PickleCoder())  # peloton.ingest.clock.ClockWatch: trackers' clocks
    SETTLE = TimerSpec("settle", TimeDomain.WATERMARK)
    END = TimerSpec("end_of_stage", TimeDomain.WATERMARK)  # the input is over (drained, or a test stream's end)

    def __init__(self, stage_json: str, settle_s: float, race_params: RaceParams = RaceParams(),
                 params: EngineParams = EngineParams()):
        super().__init__(stage_json, race_params, params)
        self.settle_s = settle_s

    def process(self, keyed, pending=beam.DoFn.StateParam(PENDING), fast=beam.DoFn.StateParam(FAST_ENGINE),
                settled=beam.DoFn.StateParam(SETTLED), settle=beam.DoFn.TimerParam(SETTLE),
                end=beam.DoFn.TimerParam(END), clocks=beam.DoFn.StateParam(CLOCKS)):
        stage_id, batch = keyed
        end.set(GlobalWindow().max_timestamp())
        until = settled.read()
        until = -math.inf if until is None else until
        late = batch.t < until
        if late.any():
            yield from self._late(batch.take(np.flatnonzero(late)), until)
            batch = batch.take(np.flatnonzero(~late))
        if not len(batch):
            return
        if batch.seen_s is not None:  # decided once, on arrival: the final rows keep the flags with the fixes
            watch = clocks.read() or ClockWatch()
            batch = dataclasses.replace(batch, clock_off=watch.flags(batch.bib, batch.t, batch.seen_s))
            clocks.write(watch)
            beam.metrics.Metrics.counter("peloton", "clock_off").inc(int(batch.clock_off.sum()))
        pending.add(batch)
        engine = fast.read() or _new_engine(self.stage, self.course, self.race_params, self.params)
        step = engine.advance(batch, self.course, self.forecast)
        fast.write(engine)
        beam.metrics.Metrics.counter("peloton", "provisional_skipped").inc(len(step.stale))
        yield from _emit(step, PROVISIONAL, stamp=False)
        first = min(float(b.t.min()) for b in pending.read())
        settle.set(Timestamp.of(self._window_end(first) + self.settle_s))

    def _window_end(self, t: float) -> float:
        return float(window_end(t, self.params.window_s))

    def _late(self, batch: FixBatch, until: float):
        beam.metrics.Metrics.counter("peloton", "late_after_final").inc(len(batch))
        rows = [dead_letter(batch.stage_id, Reason.LATE, fix_json(batch, i),
                            f"arrived {until - batch.t[i]:.0f} s behind a window already final "
                            f"(settle {self.settle_s:.0f} s)", bib=batch.bib[i], t=batch.t[i], source="live")
                for i in range(len(batch))]
        yield pvalue.TaggedOutput(LATE, dead_letter_columns(rows))

    @on_timer(SETTLE)
    def settle_windows(self, fired=beam.DoFn.TimestampParam, pending=beam.DoFn.StateParam(PENDING),
                       final=beam.DoFn.StateParam(FINAL_ENGINE), settled=beam.DoFn.StateParam(SETTLED),
                       settle=beam.DoFn.TimerParam(SETTLE)):
        fixes = concat_batches(list(pending.read()), self.stage.stage_id)
        horizon = float(window_start(float(fired) - self.settle_s, self.params.window_s))
        ready = fixes.t < horizon
        pending.clear()
        rest = fixes.take(np.flatnonzero(~ready))
        if len(rest):
            pending.add(rest)
            settle.set(Timestamp.of(self._window_end(float(rest.t.min())) + self.settle_s))
        previous = settled.read()
        settled.write(max(horizon, previous if previous is not None else -math.inf))
        if not ready.any():
            return
        engine = final.read() or _new_engine(self.stage, self.course, self.race_params, self.params)
        yield from self._advance_final(engine, fixes.take(np.flatnonzero(ready)))
        final.write(engine)

    @on_timer(END)
    def end_of_stage(self, pending=beam.DoFn.StateParam(PENDING), final=beam.DoFn.StateParam(FINAL_ENGINE),
                     settled=beam.DoFn.StateParam(SETTLED)):
        """The input is over: settle what is pending, then the stage's last results (DNF rows included)."""
        fixes = concat_batches(list(pending.read()), self.stage.stage_id)
        pending.clear()
        settled.write(math.inf)
        engine = final.read() or _new_engine(self.stage, self.course, self.race_params, self.params)
        if len(fixes):
            yield from self._advance_final(engine, fixes)
        yield from _emit(engine.finish(self.forecast), "", stamp=False)
        final.write(engine)

    def _advance_final(self, engine: RaceEngine, fixes: FixBatch):
        """Final rows of settled fixes, in event-time order of windows."""
        step = engine.advance(fixes, self.course, self.forecast)
        counter = beam.metrics.Metrics.counter
        counter("peloton", "fixes_matched").inc(len(step.rider_state))
        counter("peloton", "duplicates_removed").inc(len(step.stale))  # a repeat that escaped the dedup window
        yield from _emit(step, "", stamp=False)
        dead = _rejected_rows(self.stage.stage_id, step)
        if dead:
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter_columns(dead))
        if len(step.stale):
            log.debug("%d repeated fixes at settle time", len(step.stale))


class LiveRaceState(beam.PTransform):
    """(stage_id, FixBatch) panes -> {'rider_state', 'groups', 'predictions', 'race_events', 'results' (final),
    'provisional_rider_state', 'provisional_groups', 'provisional_predictions', 'late', 'dead_letter'}."""

    def __init__(self, stage: Stage, settle_s: float, race_params: RaceParams = RaceParams(),
                 params: EngineParams = EngineParams()):
        super().__init__()
        self.stage_json = stage.to_json()
        self.settle_s = settle_s
        self.race_params, self.params = race_params, params

    def expand(self, panes):
        from apache_beam.transforms import window

        return (panes
                | "OneStateForTheStage" >> beam.WindowInto(window.GlobalWindows())
                | "Engine" >> beam.ParDo(LiveRaceStateFn(self.stage_json, self.settle_s, self.race_params,
                                                         self.params))
                .with_outputs("groups", "predictions", *FINAL_ONLY, f"{PROVISIONAL}_rider_state",
                              f"{PROVISIONAL}_groups",
                              f"{PROVISIONAL}_predictions", LATE, DEAD_LETTER, main="rider_state"))

