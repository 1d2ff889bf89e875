"""What will happen next: arrival times at the checkpoints ahead, and whether a group will be caught.

Pure numpy. :class:`Predictor` coordinates, tick by tick, over every group's
typed state (:class:`peloton.predict.group_state.GroupState`); each job has its module:

* :mod:`peloton.predict.physics`: the force balance, and the speed tables it gives
  (time to the finish from every km of the profile at every power);
* :mod:`peloton.predict.power_fit`: a group's power, fitted to its last minutes and
  pulled towards the official timetable's, and its spread;
* :mod:`peloton.predict.etas`: the arrival interval at the line and the checkpoints
  (the finale model, :mod:`peloton.predict.finale`, in the last kilometres);
* :mod:`peloton.predict.catch`: the probability that a group ahead is caught;
* :mod:`peloton.predict.time_trial`: a time trial's riders, timed from the rides
  before them;
* :mod:`peloton.predict.crosswind`: warnings of crosswind sections ahead.

Times are epoch seconds; powers are W/kg of rider mass, "effective" (what the
model needs to match the speed; drafting included).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peloton.predict.catch import (CATCH_COEF, catch_probability, catch_probability_monte_carlo,  # noqa: F401
                           catch_probability_rule)
from peloton.predict.crosswind import CrosswindWatch
from peloton.predict.etas import group_etas, timetable
from peloton.predict.finale import FinaleModel, FinaleParams
from peloton.predict.group_state import GroupHistory, GroupRow, GroupState
from peloton.predict.physics import (DRAG_CLASSES, G, POWER_GRID, TIME_TRIAL_MODEL, RiderModel, SpeedTables,  # noqa: F401
                             drag_class, drag_class_of, speed_for_power)
from peloton.match.profile import Profile, build_profile
from peloton.predict.power_fit import Z80, Rides, fit_powers, rides_of
from peloton.predict.time_trial import FinishedRides, time_trial_groups

__all__ = ["RiderModel", "SpeedTables", "PredictParams", "StageModel", "Predictor", "Forecast", "forecast_race",
           "forecast_stage", "time_trial_groups", "timetable", "catch_probability_rule",
           "catch_probability_monte_carlo", "CATCH_COEF", "Z80", "TIME_TRIAL_MODEL"]


@dataclass(frozen=True)
class PredictParams:
    lookback_s: float = 1200.0  # the group's recent riding that sets its power
    min_history_s: float = 120.0  # less than this: the timetable alone
    segment_s: float = 300.0  # power of each 5 min in the lookback: its spread is the power's uncertainty
    power_sigma_floor: float = 0.15  # W/kg: nobody holds a power exactly
    timetable_sigma: float = 0.6  # W/kg when the timetable gives no spread
    catch_coef: tuple = tuple(CATCH_COEF)
    every_s: float = 4.5  # a group's prediction at most this often: every 6 s feed tick, every 5th of a 1 Hz feed
    refit_s: float = 30.0  # a group's power is fitted again this often (its ETAs every tick)
    echelon_min_size: int = 10  # groups this big are warned of crosswinds ahead ...
    crosswind_warn_km: float = 10.0  # ... this far before the section
    finale: bool = True  # the finale model (peloton.predict.finale) on the last kilometres' ETAs
    finale_params: FinaleParams = FinaleParams()


@dataclass
class StageModel:
    """What predictions need to know of a stage and never change during it: built once per worker."""

    profile: Profile
    tables: SpeedTables
    timetable: np.ndarray | None
    time_trial: bool = False

    @classmethod
    def build(cls, profile: Profile, timetable_rows: np.ndarray | None = None, time_trial: bool = False,
              model: RiderModel | None = None) -> "StageModel":
        model = model or (TIME_TRIAL_MODEL if time_trial else RiderModel())
        return cls(profile, SpeedTables(profile, model), None if time_trial else timetable_rows, time_trial)

    def finale(self, params: FinaleParams = FinaleParams()) -> FinaleModel:
        """The finale's model of this stage (peloton.predict.finale), built on first use."""
        cached = getattr(self, "_finale", None)
        if cached is None or cached.params != params:
            cached = self._finale = FinaleModel(self.profile, self.tables.model, params)
        return cached

    @classmethod
    def of_stage(cls, stage, course=None) -> "StageModel":
        """A stage spec's model: its profile (from ``course`` when already built) and its timetable."""
        course = course if course is not None else stage.course()
        return cls.build(build_profile(course, stage.checkpoints),
                         timetable(stage.checkpoints, stage.date, stage.timezone), stage.is_time_trial)


class Predictor:
    """Predictions for every group at every tick, from the groups rows of that tick and the ones before.

    Its memory (histories, rides, warnings) pickles small: the stage model is left out and attached again
    (:meth:`attach`) where it runs, so a live runner can keep a predictor in state.
    """

    def __init__(self, stage_model: StageModel, params: PredictParams = PredictParams()):
        self.stage_model = stage_model
        self.events: list[dict] = []  # crosswind_ahead warnings, drained by the caller
        self.finished_rides = FinishedRides()  # time trials: the rides before
        self.crosswinds = CrosswindWatch()
        self.params = params
        self.history: dict[int, GroupHistory] = {}
        self._group_of: dict[int, int] = {}  # bib -> group id at the previous tick

    def __getstate__(self):
        state = dict(self.__dict__)
        state["stage_model"] = None
        return state

    def attach(self, stage_model: StageModel) -> "Predictor":
        self.stage_model = stage_model
        return self

    profile = property(lambda self: self.stage_model.profile)
    tables = property(lambda self: self.stage_model.tables)
    timetable = property(lambda self: self.stage_model.timetable)
    time_trial = property(lambda self: self.stage_model.time_trial)

    def update(self, groups: list[dict]) -> list[dict]:
        """Groups rows of one tick (any order) -> prediction rows (and the catch features under ``_features``)."""
        if not groups:
            return []
        groups = sorted(groups, key=lambda g: g["rank"])
        now = groups[0]["event_time"] / 1000.0
        finish = self.profile.finish_km
        params = self.params
        state, to_fit, group_of = [], [], {}
        for row in groups:
            row = GroupRow.of(row, finish)
            if row is None:
                continue
            h = self._remember(row, now, group_of)
            fresh = (h.fit is not None and now - h.fit[0] < params.refit_s
                     and h.fit[1] == drag_class_of(row.size))
            state.append(GroupState(row, h))
            to_fit.append(Rides() if fresh else rides_of(h, row.km, now, params, self.timetable, finish))
        fit_powers(state, to_fit, self.tables, now, params, finish)
        self._group_of = group_of
        alive = set(group_of.values())
        self.history = {gid: h for gid, h in self.history.items() if gid in alive}
        self.events.extend(self.crosswinds.warn(state, self.profile, params.echelon_min_size,
                                                params.crosswind_warn_km))
        if params.every_s:
            state = [g for g in state if now - g.history.last_predicted >= params.every_s]
        if not state:
            return []
        for g in state:
            g.history.last_predicted = now
        return self._rows(state, now)

    def _remember(self, row: GroupRow, now: float, group_of: dict) -> GroupHistory:
        """The group's history, extended by this tick; a new group (a split, an attack, a merge) goes on from
        where its first rider's group was."""
        gid = row.group_id
        bibs = row.bibs
        group_of.update((b, gid) for b in bibs)
        h = self.history.get(gid)
        if h is None:
            parent = self.history.get(self._group_of.get(bibs[0], -1)) if bibs else None
            h = self.history[gid] = (GroupHistory(list(parent.t), list(parent.km), list(parent.gap))
                                     if parent is not None else GroupHistory())
        if not h.t or now > h.t[-1]:
            h.t.append(now)
            h.km.append(row.km)
            h.gap.append(row.gap_to_leader_s)
        cutoff = -np.inf if self.time_trial else now - max(self.params.lookback_s, 900.0)  # TT: whole rides
        while h.t and h.t[0] < cutoff:
            h.t.pop(0), h.km.pop(0), h.gap.pop(0)
        return h

    def _rows(self, state: list[GroupState], now: float) -> list[dict]:
        """Every group's prediction row: its ETAs (finish and checkpoints, central and interval) and catch
        probability."""
        profile = self.profile
        finish = profile.finish_km
        etas = group_etas(state, now, self.stage_model, self.params, self.finished_rides)
        km = np.array([g.km for g in state])
        sigma = np.array([g.sigma for g in state])
        headwind, crosswind = profile.wind_at(km)
        eta_ms = np.round(etas.checkpoints * 1000).astype(np.int64).tolist()  # (n, 3, checkpoints)
        finish_ms = np.round(etas.finish * 1000).astype(np.int64).tolist()
        wind = np.round(np.c_[headwind, crosswind] * 3.6, 1).tolist()
        km_to_finish = np.round(finish - km, 4).tolist()
        power_out = np.round(np.array([g.power for g in state]), 3).tolist()
        cps = profile.checkpoints
        cp_left = [round(finish - c.km, 3) for c in cps]
        rows = []
        for k, g in enumerate(state):
            e = eta_ms[k]
            checkpoints = [{"name": c.name, "kind": c.kind, "category": c.category, "km_to_finish": cp_left[i],
                            "eta": e[0][i], "eta_low": e[2][i], "eta_high": e[1][i]}
                           for i, c in enumerate(cps) if c.km > km[k] + 1e-6]
            prob, features = (None, None) if self.time_trial else catch_probability(
                k, state, etas.remaining_s, etas.d_time, sigma, now, finish, self.params.catch_coef)
            row = g.row
            rows.append({"stage_id": row.stage_id, "event_time": row.event_time, "group_id": row.group_id,
                         "rank": row.rank, "label": row.label, "size": row.size,
                         "km_to_finish": km_to_finish[k], "power_wkg": power_out[k],
                         "eta_finish": finish_ms[k][0], "eta_finish_low": finish_ms[k][2],
                         "eta_finish_high": finish_ms[k][1], "catch_probability": prob,
                         "headwind_kph": wind[k][0], "crosswind_kph": wind[k][1],
                         "checkpoints": checkpoints, "_features": features})
        return rows


def forecast_stage(groups: list[dict], predictor: Predictor) -> tuple[list[dict], list[dict]]:
    """A whole stage's groups rows (any order) -> (prediction rows, crosswind_ahead events), tick by tick."""
    by_tick: dict[int, list[dict]] = {}
    for g in groups:
        by_tick.setdefault(int(g["event_time"]), []).append(g)
    rows = []
    for tick in sorted(by_tick):
        rows.extend(predictor.update(by_tick[tick]))
    events, predictor.events = predictor.events, []
    return rows, events


@dataclass
class Forecast:
    predictions: list  # prediction rows
    events: list  # crosswind_ahead race events


def forecast_race(stage_id: str, groups: list[dict], model: StageModel, riders: tuple | None = None,
                  params: PredictParams = PredictParams()) -> Forecast:
    """Predictions over a whole stage: per group (road stage) or per rider (time trial, from ``riders`` =
    (t, bib, km_to_finish, speed_kph) arrays), each tick from that tick and the ones before only."""
    predictor = Predictor(model, params)
    if model.time_trial:
        groups = time_trial_groups(stage_id, *riders) if riders is not None else []
    rows, events = forecast_stage(groups, predictor)
    return Forecast(rows, events)
