"""What will happen next: arrival times at the checkpoints ahead, and whether a group will be caught.

Pure numpy. The speed model is physics on the profile ahead: at a steady
power a group rides each 100 m of the course at the speed where that power
balances gravity, rolling resistance and drag in the local wind (drafting
lowers a group's drag), capped on descents. A group's power is not measured
but *fitted*: the power at which the model would have ridden the group's
last minutes in the time it really took (its own recent speed against the
gradient it rode), pulled towards the power the official timetable implies
from here to the finish, in proportion to how sure each is. The arrival
interval rides the same course at that power minus and plus its spread.

Whether a group ahead is caught compares the two groups' projected arrival
times with their uncertainty (the physics projection), and turns that, the
gap against the "10 km per minute" rule (the nearer the line, the more it
counts) and the gap's recent trend into a probability with a logistic
calibration fitted on simulated races (``benchmarks/predictions.py --fit``),
where the outcome is known.

A time trial has no groups: every rider is predicted from the rides of the
riders who finished before him, or by the physics until one has.

Times are epoch seconds; powers are W/kg of rider mass, "effective" (what the
model needs to match the speed; drafting included).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from peloton.finale import FinaleModel, FinaleParams, first_to_line
from peloton.profile import Profile, build_profile

__all__ = ["RiderModel", "SpeedTables", "PredictParams", "StageModel", "Predictor", "Forecast", "forecast_race",
           "forecast_stage", "time_trial_groups", "timetable", "catch_probability_rule",
           "catch_probability_monte_carlo", "CATCH_COEF", "Z80", "TIME_TRIAL_MODEL"]

G = 9.81
Z80 = 1.2816  # half-width of a central 80 % interval, in standard deviations
POWER_GRID = np.round(np.arange(0.5, 12.0001, 0.1), 4)
#: Logistic calibration of the catch probability, P(caught) = 1 / (1 + exp(coef . features)), on the features
#: [1, physics margin z, rule = log(gap / a minute per 10 km), gap trend, rule * near, near] with
#: near = 1 / (1 + km to go / 20). Fitted on simulated races of the TRAIN courses by
#: ``python benchmarks/predictions.py --fit``; scored on the TEST courses (BENCHMARKS.md).
CATCH_COEF = np.array([-1.792, 0.015, -0.372, 0.874, 6.401, 6.472])


@dataclass(frozen=True)
class RiderModel:
    """The physical model of a rider on a bike (stated in the schemas' docs)."""

    rider_kg: float = 68.0
    bike_kg: float = 8.0
    cda_m2: float = 0.28  # drag area of a professional riding alone on the drops
    crr: float = 0.004
    drivetrain: float = 0.976  # share of the power at the pedals that reaches the wheel
    max_kph: float = 75.0  # descents are braked, not ridden flat out

    @property
    def mass(self) -> float:
        return self.rider_kg + self.bike_kg


DRAG_CLASSES = (1.0, 0.7, 0.5)  # share of a lone rider's drag: alone, a small group, a bunch


#: On a time-trial bike, in the aero position.
TIME_TRIAL_MODEL = RiderModel(cda_m2=0.22)


def drag_class(size) -> np.ndarray:
    """Index into DRAG_CLASSES: riders in a group take turns in the wind and shelter behind."""
    size = np.asarray(size)
    return np.where(size <= 1, 0, np.where(size <= 7, 1, 2))


def _drag_class_of(size: int) -> int:
    return 0 if size <= 1 else (1 if size <= 7 else 2)


def speed_for_power(wkg, gradient, headwind_ms, rho, model: RiderModel = RiderModel(), drag: float = 1.0):
    """Steady speed (m/s) at power ``wkg`` on each gradient (fraction), by bisection; arrays broadcast."""
    wkg, gradient, headwind_ms, rho = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                                            (wkg, gradient, headwind_ms, rho)))
    power = wkg * model.rider_kg * model.drivetrain
    theta = np.arctan(gradient)
    resist = model.mass * G * (np.sin(theta) + model.crr * np.cos(theta))
    k = 0.5 * rho * model.cda_m2 * drag
    lo = np.full(power.shape, 0.3)
    hi = np.full(power.shape, model.max_kph / 3.6)

    def surplus(v):
        air = v + headwind_ms
        return power - v * (resist + k * air * np.abs(air))

    for _ in range(26):  # 75 km/h / 2^26: a micrometre per second
        mid = 0.5 * (lo + hi)
        faster = surplus(mid) > 0
        lo = np.where(faster, mid, lo)
        hi = np.where(faster, hi, mid)
    return np.where(surplus(hi) > 0, hi, 0.5 * (lo + hi))


class SpeedTables:
    """Time to the finish from every km of the grid at every power of POWER_GRID, per drafting class."""

    def __init__(self, profile: Profile, model: RiderModel = RiderModel()):
        self.profile = profile
        self.model = model
        step_m = np.diff(profile.km) * 1000.0
        rho = profile.rho()
        tables = []
        for drag in DRAG_CLASSES:
            v = speed_for_power(POWER_GRID[:, None], profile.gradient[None, :], profile.headwind_ms[None, :],
                                rho[None, :], model, drag)
            seg = step_m[None, :] / v
            tables.append(np.c_[np.cumsum(seg[:, ::-1], axis=1)[:, ::-1], np.zeros(POWER_GRID.size)])
        self.to_finish = np.stack(tables)  # (class, power, km)

    def remaining_s(self, wkg, km, size) -> np.ndarray:
        """Seconds from ``km`` to the finish at power ``wkg`` for a group of ``size`` (arrays broadcast)."""
        wkg, km, size = np.broadcast_arrays(np.asarray(wkg, dtype=float), np.asarray(km, dtype=float),
                                            np.asarray(size))
        c = drag_class(size)
        km = np.clip(km, 0.0, self.profile.finish_km)
        p = np.clip(wkg, POWER_GRID[0], POWER_GRID[-1])
        j = np.clip(np.searchsorted(POWER_GRID, p) - 1, 0, POWER_GRID.size - 2)
        w = (p - POWER_GRID[j]) / (POWER_GRID[j + 1] - POWER_GRID[j])
        grid = self.profile.km
        i = np.clip(np.searchsorted(grid, km, side="right") - 1, 0, grid.size - 2)
        f = (km - grid[i]) / np.maximum(grid[i + 1] - grid[i], 1e-9)
        t = self.to_finish
        lo = t[c, j, i] + f * (t[c, j, i + 1] - t[c, j, i])
        hi = t[c, j + 1, i] + f * (t[c, j + 1, i + 1] - t[c, j + 1, i])
        return lo + w * (hi - lo)

    def elapsed_s(self, wkg, km_from, km_to, size) -> np.ndarray:
        return self.remaining_s(wkg, km_from, size) - self.remaining_s(wkg, km_to, size)

    def _columns(self, km: np.ndarray, cls: np.ndarray) -> np.ndarray:
        """Time to the finish from each ``km`` at every grid power: (n, powers)."""
        grid = self.profile.km
        km = np.clip(km, 0.0, self.profile.finish_km)
        i = np.clip(np.searchsorted(grid, km, side="right") - 1, 0, grid.size - 2)
        f = ((km - grid[i]) / np.maximum(grid[i + 1] - grid[i], 1e-9))[:, None]
        t = self.to_finish
        powers = np.arange(POWER_GRID.size)[None, :]
        lo = t[cls[:, None], powers, i[:, None]]
        return lo + f * (t[cls[:, None], powers, i[:, None] + 1] - lo)

    def powers_for(self, km_from, km_to, seconds, size) -> np.ndarray:
        """The steady powers that ride ``km_from`` -> ``km_to`` in ``seconds`` (1-D arrays; clipped to the grid)."""
        km_from, km_to, seconds, size = (np.atleast_1d(np.asarray(a, dtype=float)) for a in
                                         np.broadcast_arrays(km_from, km_to, seconds, size))
        if not km_from.size:
            return np.zeros(0)
        cls = drag_class(size).astype(np.int64)
        times = self._columns(km_from, cls) - self._columns(km_to, cls)  # decreasing in power
        j = np.clip((times > seconds[:, None]).sum(axis=1), 1, POWER_GRID.size - 1)
        rows = np.arange(times.shape[0])
        t_lo, t_hi = times[rows, j - 1], times[rows, j]
        w = np.clip((t_lo - seconds) / np.maximum(t_lo - t_hi, 1e-9), 0.0, 1.0)
        return POWER_GRID[j - 1] + w * (POWER_GRID[j] - POWER_GRID[j - 1])

    def power_for(self, km_from: float, km_to: float, seconds: float, size: int) -> float:
        return float(self.powers_for(km_from, km_to, seconds, size)[0])


def _interp_list(x: float, xs: list, ys: list) -> float:
    """np.interp for one x on short Python lists, without building arrays."""
    i = bisect.bisect_left(xs, x)
    if i <= 0:
        return ys[0]
    if i >= len(xs):
        return ys[-1]
    x0, x1 = xs[i - 1], xs[i]
    return ys[i - 1] + (x - x0) / (x1 - x0) * (ys[i] - ys[i - 1]) if x1 > x0 else ys[i]


def _clamp(x: float, bound: float) -> float:
    return float(min(max(x, -bound), bound))


def _nan_quantiles(a: np.ndarray, qs) -> list[np.ndarray]:
    """Quantiles over axis 0 ignoring nan (linear), vectorised over the other axes: nan where all are nan."""
    ordered = np.sort(a, axis=0)  # nan last
    count = np.isfinite(a).sum(axis=0)
    out = []
    for q in qs:
        pos = q * np.maximum(count - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        v_lo = np.take_along_axis(ordered, lo[None], axis=0)[0]
        v_hi = np.take_along_axis(ordered, hi[None], axis=0)[0]
        out.append(np.where(count > 0, v_lo + (pos - lo) * (v_hi - v_lo), np.nan))
    return out


def _clock_s(date: str, hhmmss: str | None, tz: ZoneInfo) -> float | None:
    if not hhmmss:
        return None
    try:
        day = datetime.strptime(date[:10], "%Y-%m-%d")
        h, m, s = (int(x) for x in (hhmmss.split(":") + ["0"])[:3])
    except ValueError:
        return None
    return day.replace(hour=h, minute=m, second=s, tzinfo=tz).timestamp()


def timetable(checkpoints: list[dict], date: str, timezone: str = "Europe/Paris") -> np.ndarray | None:
    """The official timetable as an array (n, 4): km and the low/middle/high passage epochs; None if absent.

    Only checkpoints from km 0 on (the neutral zone's are at length 0), first of equal kms kept, kms rising.
    """
    try:
        tz = ZoneInfo(timezone or "Europe/Paris")
    except (ValueError, KeyError):
        tz = ZoneInfo("Europe/Paris")
    rows = []
    for cp in checkpoints:
        times = [_clock_s(date, x, tz) for x in (cp.get("schedule") or [None, None, None])[:3]]
        if any(x is None for x in times) or len(times) < 3:
            continue
        rows.append([float(cp.get("km") or 0.0), *times])
    if len(rows) < 2:
        return None
    tt = np.array(sorted(rows, key=lambda r: (r[0], r[2])))
    # km 0 is the real start: the neutral zone's checkpoints share it; keep its last (latest) time
    zero = np.flatnonzero(tt[:, 0] <= 0)
    if zero.size > 1:
        tt = tt[zero[-1]:]
    tt = tt[np.r_[True, np.diff(tt[:, 0]) > 0]]
    return tt if tt.shape[0] >= 2 and np.all(np.diff(tt[:, 2]) >= 0) else None


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
    finale: bool = True  # the finale model (peloton.finale) on the last kilometres' ETAs
    finale_params: FinaleParams = FinaleParams()


@dataclass
class _GroupHistory:
    t: list = field(default_factory=list)
    km: list = field(default_factory=list)  # head's official km
    gap: list = field(default_factory=list)  # head's gap to the leader
    last_predicted: float = -np.inf
    fit: tuple | None = None  # (when, drafting class, power, sigma) of the last fit


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
        """The finale's model of this stage (peloton.finale), built on first use."""
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
        self._rides: dict[int, np.ndarray] = {}  # time trials: bib -> time at every grid km of a finished ride
        self._ride_table: np.ndarray | None = None
        self._warned: set = set()
        self.params = params
        self.history: dict[int, _GroupHistory] = {}
        self._group_of: dict[int, int] = {}  # bib -> group id at the previous tick

    def __getstate__(self):
        state = dict(self.__dict__)
        state["stage_model"] = None
        state["_ride_table"] = None
        return state

    def attach(self, stage_model: StageModel) -> "Predictor":
        self.stage_model = stage_model
        return self

    profile = property(lambda self: self.stage_model.profile)
    tables = property(lambda self: self.stage_model.tables)
    timetable = property(lambda self: self.stage_model.timetable)
    time_trial = property(lambda self: self.stage_model.time_trial)

    # ---------------------------------------------------------------- fitting
    def _power_queries(self, h: _GroupHistory, km: float, now: float) -> list[tuple]:
        """(km_from, km_to, seconds) rides whose powers set this group's: the lookback whole, its 5-minute
        pieces, then the timetable's low/middle/high from here to the finish (absent ones are None)."""
        p = self.params
        t, kms = np.asarray(h.t), np.asarray(h.km)
        keep = t >= now - p.lookback_s
        t, kms = t[keep], kms[keep]
        fit, pieces, table = None, [], None
        if t.size >= 2 and t[-1] - t[0] >= p.min_history_s and kms[-1] - kms[0] >= 0.2:
            fit = (kms[0], kms[-1], t[-1] - t[0])
            edges = np.arange(t[0], t[-1] + 1e-9, p.segment_s)
            if edges.size >= 3:
                k = np.interp(edges, t, kms)
                pieces = [(k[i], k[i + 1], edges[i + 1] - edges[i]) for i in range(edges.size - 1)
                          if k[i + 1] - k[i] > 0.1]
        tt = self.timetable
        if tt is not None and km < tt[-1, 0] - 0.5:
            table = [(km, self.profile.finish_km, tt[-1, col] - np.interp(km, tt[:, 0], tt[:, col]))
                     for col in (1, 2, 3)]
        return [fit, pieces, table]

    def _combine(self, fit, pieces, table, span_s) -> tuple[float | None, float]:
        """The group's power and its spread: the fit pulled towards the timetable by their precisions."""
        p = self.params
        p_fit = s_fit = p_tt = s_tt = None
        if fit is not None:
            spread = float(np.std(pieces)) if len(pieces) >= 2 else 2 * p.power_sigma_floor
            short = np.sqrt(max(1.0, 0.5 * p.lookback_s / max(span_s, 1.0)))  # less history, less sure
            p_fit, s_fit = fit, max(spread, p.power_sigma_floor) * short
        if table is not None:
            low, mid, high = table
            spread = abs(low - high) / (2 * Z80)
            p_tt, s_tt = mid, max(spread, p.power_sigma_floor) if spread > 0 else p.timetable_sigma
        if p_tt is None:
            return p_fit, (s_fit if s_fit is not None else np.inf)
        if p_fit is None:
            return p_tt, s_tt
        w_fit, w_tt = 1 / s_fit ** 2, 1 / s_tt ** 2
        power = (p_fit * w_fit + p_tt * w_tt) / (w_fit + w_tt)
        return power, float(np.sqrt(1 / (w_fit + w_tt) + s_fit ** 2))  # the group's pace varies on: s_fit stays

    def _remember(self, g: dict, km: float, now: float, group_of: dict) -> _GroupHistory:
        """The group's history, extended by this tick; a new group (a split, an attack, a merge) goes on from
        where its first rider's group was."""
        gid = int(g["group_id"])
        bibs = list(g.get("bibs") or [])
        group_of.update((b, gid) for b in bibs)
        h = self.history.get(gid)
        if h is None:
            parent = self.history.get(self._group_of.get(bibs[0], -1)) if bibs else None
            h = self.history[gid] = (_GroupHistory(list(parent.t), list(parent.km), list(parent.gap))
                                     if parent is not None else _GroupHistory())
        if not h.t or now > h.t[-1]:
            h.t.append(now)
            h.km.append(km)
            h.gap.append(g.get("gap_to_leader_s") or 0.0)
        cutoff = -np.inf if self.time_trial else now - max(self.params.lookback_s, 900.0)  # TT: whole rides
        while h.t and h.t[0] < cutoff:
            h.t.pop(0), h.km.pop(0), h.gap.pop(0)
        return h

    def _fit_powers(self, state: list, now: float) -> list[tuple]:
        """Every group's rides solved for power at once -> (row, history, km, size, power, sigma) per group."""
        queries, owners = [], []
        for k, (_g, _h, _km, size, parts) in enumerate(state):
            for part, rides in enumerate(parts):
                for ride in ([rides] if part == 0 else rides) if rides else []:
                    queries.append(ride)
                    owners.append((k, part, size))
        solved = (self.tables.powers_for(*np.array(queries).T, [o[2] for o in owners]) if queries
                  else np.zeros(0))
        answers = [[None, [], None] for _ in state]
        for (k, part, _size), power in zip(owners, solved.tolist()):
            if part == 0:
                answers[k][0] = power
            elif part == 1:
                answers[k][1].append(power)
            else:
                answers[k][2] = (answers[k][2] or []) + [power]
        out = []
        for (g, h, km, size, parts), (fit, pieces, table) in zip(state, answers):
            if fit is None and table is None and h.fit is not None and now - h.fit[0] < self.params.refit_s:
                power, sigma = h.fit[2], h.fit[3]  # fitted moments ago
            else:
                power, sigma = self._combine(fit, pieces, table, parts[0][2] if parts[0] else 0.0)
                if power is None:  # nothing to go on yet: its current speed on the next km
                    speed = max(float(g.get("speed_kph") or 0.0), 20.0)
                    power = self.tables.power_for(km, min(km + 1.0, self.profile.finish_km), 3600.0 / speed, size)
                    sigma = 1.0
                h.fit = (now, _drag_class_of(size), power, float(sigma))
            out.append((g, h, km, size, power, float(sigma)))
        return out

    # -------------------------------------------------------------- predicting
    def update(self, groups: list[dict]) -> list[dict]:
        """Groups rows of one tick (any order) -> prediction rows (and the catch features under ``_features``)."""
        if not groups:
            return []
        groups = sorted(groups, key=lambda g: g["rank"])
        now = groups[0]["event_time"] / 1000.0
        finish = self.profile.finish_km
        state, group_of = [], {}
        for g in groups:
            if g.get("km_to_finish_head") is None:
                continue
            km = finish - float(g["km_to_finish_head"])
            h = self._remember(g, km, now, group_of)
            size = int(g.get("size") or 1)
            fresh = (h.fit is not None and now - h.fit[0] < self.params.refit_s
                     and h.fit[1] == _drag_class_of(size))
            state.append([g, h, km, size, [None, [], None] if fresh else self._power_queries(h, km, now)])
        state = self._fit_powers(state, now)
        self._group_of = group_of
        alive = set(group_of.values())
        self.history = {gid: h for gid, h in self.history.items() if gid in alive}
        self._warn_crosswinds(state, now)
        if self.params.every_s:
            state = [x for x in state if now - x[1].last_predicted >= self.params.every_s]
        if not state:
            return []
        for x in state:
            x[1].last_predicted = now
        return self._rows(state, now)

    def _rows(self, state, now) -> list[dict]:
        """Every group's ETAs (finish and checkpoints, central and interval) and catch probability, at once."""
        finish = self.profile.finish_km
        km = np.array([x[2] for x in state])
        size = np.array([x[3] for x in state])
        power = np.array([x[4] for x in state])
        sigma = np.array([x[5] for x in state])
        cps = self.profile.checkpoints
        cp_km = np.array([c.km for c in cps])
        eps = 0.05
        # powers per group: central, low (late), high (early), and +-eps for the derivative
        powers = np.stack([power, power - Z80 * sigma, power + Z80 * sigma, power - eps, power + eps], axis=1)
        here = self.tables.remaining_s(powers, km[:, None], size[:, None])  # (n, 5)
        at_cp = self.tables.remaining_s(powers[:, :3, None], cp_km[None, None, :], size[:, None, None])  # (n, 3, c)
        eta = now + here[:, :3, None] - at_cp
        to_line = here[:, :3]
        if self.params.finale and not self.time_trial:
            finale_params = self.params.finale_params
            to_line = self.stage_model.finale(finale_params).remaining_s(state, km, size, now, here[:, :3], sigma)
            if finale_params.caught_finish_together:
                in_finale = finish - km <= finale_params.window_km
                to_line = first_to_line(now + to_line, in_finale) - now  # state is in road order
        if self.time_trial:
            self._learn_rides(state)
            ridden, known = self._eta_from_rides(state, km, now, np.r_[finish, cp_km])
            for k in np.flatnonzero(known):  # (n, 3, 1 + checkpoints): central, early, late
                here[k, 0], here[k, 2], here[k, 1] = ridden[k, :, 0] - now
                eta[k] = ridden[k][[0, 2, 1], 1:]
        d_time = (here[:, 3] - here[:, 4]) / (2 * eps)  # seconds earlier per W/kg more
        headwind, crosswind = self.profile.wind_at(km)
        if self.params.finale and not self.time_trial:
            eta[:, :, cp_km >= finish - 1e-6] = (now + to_line)[:, :, None]  # the line's checkpoint: the finish ETA
        eta_ms = np.round(eta * 1000).astype(np.int64).tolist()  # (n, 3, checkpoints)
        if self.time_trial:
            to_line = here[:, :3]
        finish_ms = np.round((now + to_line) * 1000).astype(np.int64).tolist()
        wind = np.round(np.c_[headwind, crosswind] * 3.6, 1).tolist()
        km_to_finish = np.round(finish - km, 4).tolist()
        power_out = np.round(power, 3).tolist()
        cp_left = [round(finish - c.km, 3) for c in cps]
        remaining = here[:, 0]
        rows = []
        for k, (g, h, _km, _size, _power, _sigma) in enumerate(state):
            e = eta_ms[k]
            checkpoints = [{"name": c.name, "kind": c.kind, "category": c.category, "km_to_finish": cp_left[i],
                            "eta": e[0][i], "eta_low": e[2][i], "eta_high": e[1][i]}
                           for i, c in enumerate(cps) if c.km > km[k] + 1e-6]
            prob, features = self._catch(k, state, remaining, d_time, sigma, now)
            rows.append({"stage_id": g["stage_id"], "event_time": g["event_time"], "group_id": int(g["group_id"]),
                         "rank": int(g["rank"]), "label": g.get("label") or "", "size": int(size[k]),
                         "km_to_finish": km_to_finish[k], "power_wkg": power_out[k],
                         "eta_finish": finish_ms[k][0], "eta_finish_low": finish_ms[k][2],
                         "eta_finish_high": finish_ms[k][1], "catch_probability": prob,
                         "headwind_kph": wind[k][0], "crosswind_kph": wind[k][1],
                         "checkpoints": checkpoints, "_features": features})
        return rows

    # ------------------------------------------------------------ time trials
    def _learn_rides(self, state) -> None:
        """Keep the time at every km of each ride seen from (near) the start ramp to (near) the line."""
        finish = self.profile.finish_km
        for g, h, km, _size, _power, _sigma in state:
            bib = int(g["group_id"])
            if bib in self._rides or km < finish - 0.3 or not h.km or h.km[0] > 1.0:
                continue
            reach = np.maximum.accumulate(np.asarray(h.km))
            t = np.asarray(h.t)
            first = np.flatnonzero(np.r_[True, np.diff(reach) > 0])  # time at each new furthest km
            if first.size < 10:
                continue
            grid = self.profile.km
            times = np.interp(grid, reach[first], t[first])
            beyond = grid > reach[first][-1]  # the last metres to the line at the last speed
            speed = max((reach[first][-1] - reach[first][-2]) / max(t[first][-1] - t[first][-2], 1e-9), 1e-3)
            times[beyond] = t[first][-1] + (grid[beyond] - reach[first][-1]) / speed
            times[grid < reach[first][0]] = np.nan  # before the first fix: unknown
            self._rides[bib] = times

    def _eta_from_rides(self, state, km, now, targets_km) -> tuple[np.ndarray, np.ndarray]:
        """Time-trial riders' passages at ``targets_km`` from the riders who rode the course before them.

        Each earlier ride says: at your pace over your last minutes relative to mine over the same
        stretch, the rest takes you my time for the rest scaled alike; asked with the last 5, 10 and 20
        minutes of pace. The median of all those is the prediction, their 10-90 % spread its interval.
        Returns (n, 3, targets) and which riders have one.
        """
        n = len(state)
        known = np.zeros(n, dtype=bool)
        if not self._rides:
            return np.zeros((n, 3, np.size(targets_km))), known
        if self._ride_table is None or self._ride_table.shape[0] != len(self._rides):
            self._ride_table = np.array(list(self._rides.values()))  # (rides, grid)
        grid, rides = self.profile.km, self._ride_table

        def at(x):  # every ride's time at each km of x: (rides, len(x))
            x = np.clip(np.atleast_1d(np.asarray(x, dtype=float)), grid[0], grid[-1])
            i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
            f = (x - grid[i]) / np.maximum(grid[i + 1] - grid[i], 1e-9)
            return rides[:, i] + f * (rides[:, i + 1] - rides[:, i])

        here_t = at(km)  # (rides, n)
        ahead = at(targets_km)  # (rides, targets)
        etas, oks = [], []
        # the pace over the last quarter, half and whole lookback: how the rider's pace is changing is part
        # of the uncertainty, as is how differently the earlier riders rode the rest
        for share in (0.25, 0.5, 1.0):
            since_km, since_t = np.zeros(n), np.zeros(n)
            for k, (_g, h, _km, _size, _power, _sigma) in enumerate(state):
                i = min(int(np.searchsorted(h.t, now - share * self.params.lookback_s)), len(h.t) - 1)
                since_km[k], since_t[k] = h.km[i], h.t[i]
            start_t = at(since_km)
            ok = (np.isfinite(start_t) & np.isfinite(here_t) & (here_t > start_t)
                  & ((km - since_km) >= 0.3)[None, :])
            pace = np.where(ok, (now - since_t)[None, :] / np.where(ok, here_t - start_t, 1.0), np.nan)
            etas.append(now + pace[:, :, None] * (ahead[:, None, :] - here_t[:, :, None]))  # (rides, n, targets)
            oks.append(ok)
        eta, ok = np.concatenate(etas), oks[-1]
        mid, lo, hi = _nan_quantiles(eta, (0.5, 0.1, 0.9))
        count = ok.sum(axis=0)
        few = (count < 3)[:, None]  # too few rides for a spread: +-5 % of the time to go
        lo = np.where(few, mid - 0.05 * (mid - now), lo)
        hi = np.where(few, mid + 0.05 * (mid - now), hi)
        known = (count >= 1) & np.isfinite(mid).all(axis=1)
        return np.stack([mid, lo, hi], axis=1), known

    def _warn_crosswinds(self, state, now) -> None:
        """A ``crosswind_ahead`` event when a group of echelon size comes within reach of an exposed section."""
        p = self.params
        for g, _h, km, size, _power, _sigma in state:
            if size < p.echelon_min_size:
                continue
            for start, end, cross_kph in self.profile.crosswinds:
                key = (int(g["group_id"]), start)
                if key in self._warned or not (start - p.crosswind_warn_km <= km < start):
                    continue
                self._warned.add(key)
                self.events.append({
                    "stage_id": g["stage_id"], "event_time": g["event_time"], "event_type": "crosswind_ahead",
                    "km_to_finish": round(self.profile.finish_km - km, 3), "bibs": sorted(g.get("bibs") or []),
                    "group_ids": [int(g["group_id"])],
                    "detail": f"crosswind {cross_kph:.0f} km/h from km {start:.1f} to {end:.1f}, "
                              f"{start - km:.1f} km ahead: echelon risk"})

    def _catch(self, k, state, remaining, d_time, sigma, now):
        """P(group k is caught before the line by the strongest group behind), and the features behind it."""
        behind = range(k + 1, len(state))
        if not behind or self.time_trial:
            return None, None
        # the chaser: the largest group behind (the nearest of equals), usually the peloton
        c = max(behind, key=lambda i: (state[i][3], -i))
        g, cg = state[k][0], state[c][0]
        gap = max(float((cg.get("gap_to_leader_s") or 0.0) - (g.get("gap_to_leader_s") or 0.0)), 0.0)
        margin = remaining[c] - remaining[k]  # projected gap at the line (s); <= 0: caught
        spread = math.hypot(d_time[k] * sigma[k], d_time[c] * sigma[c]) + 5.0
        km_to_go = max(self.profile.finish_km - state[k][2], 0.1)
        rule = math.log(max(gap, 1.0) / (6.0 * km_to_go))  # the rule of thumb: a minute per 10 km is enough
        rule = _clamp(rule, 5.0)
        near = 1.0 / (1.0 + km_to_go / 20.0)  # the closer the line, the surer the rule
        features = [1.0, _clamp(margin / spread, 10.0), rule, self._trend(g, cg, now), rule * near, near]
        logit = sum(w * x for w, x in zip(self.params.catch_coef, features))
        return round(1.0 / (1.0 + math.exp(min(max(logit, -50.0), 50.0))), 4), features

    def _trend(self, g, cg, now) -> float:
        """The gap's change over the last 10 minutes against what it is (s per s of gap); 0 without history."""
        a, b = self.history.get(int(g["group_id"])), self.history.get(int(cg["group_id"]))
        if a is None or b is None or len(a.t) < 2 or len(b.t) < 2:
            return 0.0
        then = now - 600.0
        if a.t[0] > then + 60 or b.t[0] > then + 60:
            return 0.0
        gap_then = _interp_list(then, b.t, b.gap) - _interp_list(then, a.t, a.gap)
        gap_now = b.gap[-1] - a.gap[-1]
        return _clamp((gap_now - gap_then) / max(abs(gap_now), 30.0), 3.0)


def catch_probability_rule(gap_s, km_to_go) -> np.ndarray:
    """The rule of thumb: a chase takes back a minute every 10 km; caught (1) if the gap is smaller than that."""
    return (np.asarray(gap_s, dtype=float) < 6.0 * np.asarray(km_to_go, dtype=float)).astype(float)


def catch_probability_monte_carlo(km_to_go_ahead, km_to_go_chase, kph_ahead, kph_chase,
                                  sd_kph: float = 2.5, draws: int = 2000, seed: int = 0) -> np.ndarray:
    """Both groups hold their current speed, each with a draw of noise: share of draws where the chase arrives first.

    The gap is in the distances: the chase has further to go.
    """
    rng = np.random.default_rng(seed)
    args = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                 (km_to_go_ahead, km_to_go_chase, kph_ahead, kph_chase)))
    ahead_km, chase_km, v_a, v_c = (a[..., None] for a in args)
    va = np.maximum(v_a + rng.normal(0, sd_kph, v_a.shape[:-1] + (draws,)), 5.0)
    vc = np.maximum(v_c + rng.normal(0, sd_kph, v_c.shape[:-1] + (draws,)), 5.0)
    return np.mean(chase_km / vc <= ahead_km / va, axis=-1)


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


def time_trial_groups(stage_id: str, t, bib, km_to_finish, speed_kph) -> list[dict]:
    """A time trial has no groups: every rider on the course is a group of one (id = bib) for the predictions."""
    t, bib, ktf, speed = (np.asarray(a) for a in (t, bib, km_to_finish, speed_kph))
    ok = np.isfinite(ktf) & (ktf > 0.05)
    order = np.flatnonzero(ok)[np.lexsort((ktf[ok], t[ok]))]
    rows, rank, last = [], 0, None
    for i in order.tolist():
        tick = int(round(float(t[i]) * 1000))
        rank = 1 if tick != last else rank + 1
        last = tick
        rows.append({"stage_id": stage_id, "event_time": tick, "group_id": int(bib[i]), "rank": rank,
                     "label": "solo", "size": 1, "bibs": [int(bib[i])], "km_to_finish_head": float(ktf[i]),
                     "speed_kph": None if not np.isfinite(speed[i]) else float(speed[i]), "gap_to_leader_s": None})
    return rows


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
