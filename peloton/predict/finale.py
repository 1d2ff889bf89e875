"""The finale: how a group rides its last kilometres, for the arrival times there.

Pure numpy. Far from the line a group's power is its pace over 20 minutes,
pulled towards the timetable (peloton.predict.model). In the finale both mislead:
the timetable is one average speed for the whole stage, and 20 minutes back
the group was on another road (a climb before the descent to the line), often
another group. So, once a group has fewer than ``window_km`` to go:

* **the group's own last minutes**: its power is what it rode over its last
  ``recent_s`` seconds (the spread of its 2-minute pieces is the
  uncertainty), not the timetable's;
* **descents** are raced, not braked: the speed cap is ``descent_kph``
  (the road model's 75 km/h is a whole stage's average descender);
* **the last 3 km**: a group does not slow below the pace it holds now on a
  flat or falling run-in (lead-outs and attacks, then the sprint), so the
  last ``run_in_km`` on a flat road are ridden at least at the group's
  recent speed, moved to the run-in's wind (a group that came with the wind
  behind it and turns into a headwind is not floored at its tailwind speed);
* **the interval**: at least ``pace_spread`` of the time to go either way
  (the last minutes' pace swings with attacks, lead-outs and the sprint);
* **a group caught before the line finishes with the group that caught
  it**: no group is predicted to finish after a group behind it;
* **a bunch races for the line** (:class:`BunchRunIn`, issue 26): on a
  flat or rolling run-in a big group that already rides like a chase
  does not hold its recent pace, it speeds up: a chase, then a lead-out
  and the sprint, at the published speeds of Grand Tour bunch finales
  (the shape), at the level its last minutes show, in the wind ahead,
  if it is within a minute per 10 km of the leader. With the rule above,
  the head of the race's finish is the earliest of the groups' (the catch
  included). Its cost: a bunch of 15+ that rides tempo to a flat line
  without sprinting is predicted early (BENCHMARKS.md, "Sprint finales
  (issue 26)").

The finale's prediction takes over from the stage's gradually, from
``window_km`` to ``full_km`` to go, so the ETA does not jump, and by the two
predictions' spreads (inverse variance): a group with few minutes of history
like the road ahead keeps more of the stage's prediction.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np

from peloton.predict.physics import BUNCH_FINALE_KPH, SpeedTables
from peloton.predict.power_fit import Z80

__all__ = ["FinaleParams", "FinaleModel", "BunchRunIn", "recent_rides", "first_to_line", "blend_weight"]


@dataclass(frozen=True)
class FinaleParams:
    window_km: float = 30.0  # the finale starts here ...
    full_km: float = 15.0  # ... and is the whole prediction from here on
    recent_s: float = 600.0  # the group's own last minutes
    piece_s: float = 120.0  # its pace in pieces of this: their spread is the power's uncertainty
    min_recent_s: float = 180.0  # less history than this: the stage's prediction
    power_sigma_floor: float = 0.2  # W/kg
    descent_kph: float = 90.0
    run_in_km: float = 3.0
    run_in_max_gradient: float = 0.02
    pace_spread: float = 0.15  # the 80 % interval is at least this share of the time to go either way
    descent_gradient: float = 0.02  # pieces falling more than this do not set the power
    timing_s: float = 3.0  # how well a piece's time is known (ticks, the group's head changing)
    run_in_floor: bool = True  # the run-in no slower than the group's recent speed
    by_precision: bool = True  # the finale's share also by the two predictions' spreads (inverse variance)
    caught_finish_together: bool = True  # no group finishes after a group behind it
    run_in_wind: bool = True  # the run-in floor's speed moved by the wind there against the last minutes'
    bunch_run_in: bool = True  # a bunch racing for the line (BunchRunIn): issue 26's rounds 3 and 4 (BENCHMARKS.md)
    bunch_min_size: int = 15  # riders: a bunch (stage 4's winning group of 10 is not one)
    bunch_max_gradient: float = 0.05  # the run-in is flat or rolling: no km ahead steeper than this up or down
    bunch_racing: float = 0.8  # it races: its last minutes at least this share of the chase's speed there
    bunch_level: tuple = (0.95, 1.1)  # its level against the published speeds, bounded
    bunch_spread: float = 0.08  # the 80 % interval of its time to go either way (the level's spread over races)
    # round 2's candidate (B), off: it kept the rule from the sprints it was for (BENCHMARKS.md)
    bunch_trend_s: float = 0.0  # > 0: its level over the last this many s against the as many before ...
    bunch_hold: float = 0.9  # ... must be at least this share of it: a chase that is on, not one that eased
    bunch_both: bool = False  # a bunch's interval spans the sprint and its own pace, whichever is predicted
    bunch_max_km: float = float("inf")  # no sprint predicted further out than this
    #: it races for the win: its gap to the leader under this many s per km to go (the rule of thumb of a catch,
    #: a minute per 10 km); a bunch minutes behind a stage already won rides in (stage 4's, 13 minutes down)
    bunch_gap_s_per_km: float = 6.0
    #: km to go, km/h of a bunch finale on a calm flat road (published figures: peloton.sim.simulate.SprintFinale)
    bunch_kph: tuple = BUNCH_FINALE_KPH


def blend_weight(km_to_go, params: FinaleParams = FinaleParams()) -> np.ndarray:
    """Share of the finale's prediction: 0 before the window, 1 from ``full_km`` to go."""
    span = max(params.window_km - params.full_km, 1e-9)
    return np.clip((params.window_km - np.asarray(km_to_go, dtype=float)) / span, 0.0, 1.0)


def recent_rides(t, km, now: float, params: FinaleParams = FinaleParams()) -> tuple | None:
    """(km_from, km_to, seconds) of the group's last minutes and of their pieces; None when too short."""
    t, km = np.asarray(t, dtype=float), np.asarray(km, dtype=float)
    keep = t >= now - params.recent_s
    t, km = t[keep], km[keep]
    if t.size < 2 or t[-1] - t[0] < params.min_recent_s or km[-1] - km[0] < 0.2:
        return None
    count = int(np.floor((t[-1] - t[0]) / params.piece_s + 1e-6))
    edges = t[-1] - params.piece_s * np.arange(count, -1, -1)  # pieces end now
    if edges.size >= 2:
        k = np.interp(edges, t, km)
        pieces = [(k[i], k[i + 1], edges[i + 1] - edges[i]) for i in range(edges.size - 1) if k[i + 1] - k[i] > 0.05]
    else:
        pieces = []
    return (km[0], km[-1], t[-1] - t[0]), pieces, km[-1] - km[0], t[-1] - t[0]


def speed_in_wind(work, headwind, start, steps: int = 20) -> np.ndarray:
    """Speed (m/s, 1-30) that puts ``work`` = v (v + headwind)^2 into the air: on the flat, drag is most of the work,
    so the same power in another wind. Newton's method from ``start``."""
    v = np.array(start, dtype=float, copy=True)
    for _ in range(steps):
        air = np.maximum(v + headwind, 1.0)
        v = np.clip(v - (v * air ** 2 - work) / (air ** 2 + 2 * v * air), 1.0, 30.0)
    return v


def first_to_line(eta: np.ndarray, can_catch: np.ndarray | None = None) -> np.ndarray:
    """Groups in road order (head first), arrival times (n, ...): none later than a group behind it that
    ``can_catch`` (in the finale: further out, a chase's pace is tactics, and the catch probability's call)."""
    eta = np.asarray(eta, dtype=float)
    if not eta.shape[0]:
        return eta
    can = np.ones(eta.shape[0], dtype=bool) if can_catch is None else np.asarray(can_catch, dtype=bool)
    chasers = np.where(can.reshape((-1,) + (1,) * (eta.ndim - 1)), eta, np.inf)
    return np.minimum(eta, np.minimum.accumulate(chasers[::-1], axis=0)[::-1])


class FinaleModel:
    """The finale's speed tables (descents raced) for one stage; built once, used for every group."""

    def __init__(self, profile, rider_model, params: FinaleParams = FinaleParams()):
        self._z80 = Z80
        self.profile = profile
        self.params = params
        # the tables cover only what the finale asks of them: its window and a group's last minutes before it
        # (a sixth of the work of a whole stage's)
        reach_km = params.window_km + params.recent_s * params.descent_kph / 3600.0 + 1.0
        start = max(int(np.searchsorted(profile.km, profile.finish_km - reach_km, side="right")) - 1, 0)
        tail = replace(profile, km=profile.km[start:], ele=profile.ele[start:],
                       **{f: getattr(profile, f)[start:] for f in
                          ("gradient", "heading_deg", "headwind_ms", "crosswind_ms", "temperature_c")})
        self.tables = SpeedTables(tail, replace(rider_model, max_kph=params.descent_kph))
        grid = tail.km
        flat = tail.gradient <= params.run_in_max_gradient  # per step of the grid
        self._run_in_start = profile.finish_km - params.run_in_km
        # length of the flat (or falling) road in the run-in from each grid km to the line
        step = np.diff(grid)
        in_run = np.clip(np.minimum(grid[1:], profile.finish_km) - np.maximum(grid[:-1], self._run_in_start), 0.0,
                         None)
        flat_m = np.where(flat, np.minimum(in_run, step), 0.0)
        self._flat_to_finish = np.r_[np.cumsum(flat_m[::-1])[::-1], 0.0]
        # the tables' time over those flat metres only, to the line: (class, power, km) like ``to_finish``
        t = self.tables.to_finish
        seg = (t[..., :-1] - t[..., 1:]) * (flat_m / np.maximum(step, 1e-12))
        self._flat_tables = copy.copy(self.tables)
        self._flat_tables.to_finish = np.concatenate(
            [np.cumsum(seg[..., ::-1], axis=-1)[..., ::-1], np.zeros(t.shape[:-1] + (1,))], axis=-1)

    @property
    def bunch(self) -> "BunchRunIn":
        """The bunch's run-in rule of this stage, built on first use."""
        if getattr(self, "_bunch", None) is None:
            self._bunch = BunchRunIn(self.profile, self.params)
        return self._bunch

    def flat_run_in_km(self, km) -> np.ndarray:
        """Kilometres of flat road in the run-in between ``km`` and the line."""
        grid = self.tables.profile.km
        km = np.clip(np.asarray(km, dtype=float), grid[0], grid[-1])
        return np.interp(km, grid, self._flat_to_finish)

    def remaining_s(self, state: list, km: np.ndarray, size: np.ndarray, now: float,
                    base: np.ndarray, sigma_stage: np.ndarray) -> np.ndarray:
        """Seconds to the line (n, 3: central, late, early) for groups in the finale, ``base`` elsewhere.

        ``state``: the groups (:class:`peloton.predict.group_state.GroupState`: their history and the stage's power
        fitted to them); ``base`` is the stage's prediction (n, 3) and ``sigma_stage`` its power spread.
        """
        p = self.params
        out = np.array(base, dtype=float, copy=True)
        weight = blend_weight(self.profile.finish_km - km, p)
        todo = np.flatnonzero(weight > 0)
        if not todo.size:
            return out
        queries, owners = [], []
        recent_speed = np.full(km.size, np.nan)
        recent_from = np.full(km.size, np.nan)
        for k in todo.tolist():
            h = state[k].history
            rides = recent_rides(h.t, h.km, now, p)
            if rides is None:
                weight[k] = 0.0
                continue
            whole, pieces, dist_km, secs = rides
            recent_speed[k] = dist_km / secs  # km/s
            recent_from[k] = whole[0]
            for ride in pieces:
                queries.append(ride)
                owners.append(k)
        if not queries:
            return out
        q = np.array(queries)
        owners = np.array(owners)
        sizes = size[owners]
        powers = self.tables.powers_for(q[:, 0], q[:, 1], q[:, 2], sizes)
        # how much each piece says of the power: a descent is ridden at nearly the same speed at any power
        d = 0.1
        # one table look-up for the four corners: (power -d, +d) x (piece start, end)
        ends = self.tables.remaining_s(np.concatenate([powers - d, powers - d, powers + d, powers + d]),
                                       np.concatenate([q[:, 0], q[:, 1], q[:, 0], q[:, 1]]), np.tile(sizes, 4))
        lo_from, lo_to, hi_from, hi_to = ends.reshape(4, -1)
        sens = ((lo_from - lo_to) - (hi_from - hi_to)) / (2 * d)  # s per W/kg
        precision = 1.0 / (p.timing_s / np.maximum(sens, 1e-3)) ** 2
        # and descents say nothing of it: riders coast and brake there, whatever their legs could do
        drop = self.profile.altitude_at(q[:, 1]) - self.profile.altitude_at(q[:, 0])
        descending = drop < -p.descent_gradient * 1000.0 * np.maximum(q[:, 1] - q[:, 0], 1e-3)
        precision = np.where(descending & self.profile.has_elevation, 0.0, precision)
        # each group's weighted mean and spread of its pieces' powers, all groups at once
        ks, inv = np.unique(owners, return_inverse=True)
        w_recent = np.bincount(inv, weights=precision, minlength=ks.size)
        has = w_recent > 0
        safe_w = np.where(has, w_recent, 1.0)
        recent = np.where(has, np.bincount(inv, weights=precision * powers, minlength=ks.size) / safe_w, 0.0)
        pieces_n = np.bincount(inv, minlength=ks.size)
        spread = np.where(has & (pieces_n >= 2), np.sqrt(
            np.bincount(inv, weights=precision * (powers - recent[inv]) ** 2, minlength=ks.size) / safe_w), 0.0)
        # the stage's power is the prior: it takes over where the last minutes say little (a descent)
        w_stage = 1.0 / np.maximum(np.asarray(sigma_stage, dtype=float)[ks], p.power_sigma_floor) ** 2
        prior = np.array([float(state[k].power) for k in ks.tolist()])
        power = (recent * w_recent + prior * w_stage) / (w_recent + w_stage)
        sigma = np.hypot(np.maximum(spread, p.power_sigma_floor), 1.0 / np.sqrt(w_recent + w_stage))
        z = self._z80
        grid_powers = np.stack([power, power - z * sigma, power + z * sigma], axis=1)
        here = self.tables.remaining_s(grid_powers, km[ks][:, None], size[ks][:, None])  # (m, 3)
        # the run-in: no slower than the group's recent speed over its flat kilometres
        flat_km = self.flat_run_in_km(km[ks])
        speed = recent_speed[ks]
        if p.run_in_wind:
            speed = self._speed_in_run_in_wind(speed, recent_from[ks], km[ks])
        at_recent = flat_km / np.maximum(speed, 1e-3)
        flat_physics = self._flat_physics_s(grid_powers, km[ks], size[ks])
        if p.run_in_floor:
            here = here - np.maximum(flat_physics - at_recent[:, None], 0.0)
        blended = self._blend(base[ks], here, weight[ks], np.zeros(ks.size, dtype=bool))
        if p.bunch_run_in:  # a bunch racing for the line: its chase, lead-out and sprint
            back = np.full((ks.size, 2), np.nan)  # the group's km bunch_trend_s and twice that ago
            if p.bunch_trend_s > 0:
                for i, k in enumerate(ks.tolist()):
                    h = state[k].history
                    ht = np.asarray(h.t, dtype=float)
                    for j, ago in enumerate((2.0, 1.0)):
                        if ht.size and ht[0] <= now - ago * p.bunch_trend_s + 1e-6:
                            back[i, j] = np.interp(now - ago * p.bunch_trend_s, ht, np.asarray(h.km, dtype=float))
            gap = np.array([float(getattr(state[k].row, "gap_to_leader_s", np.nan)) for k in ks.tolist()])
            bunch, racing, candidate = self.bunch.remaining_s(km[ks], size[ks], recent_speed[ks], recent_from[ks],
                                                              back, gap)
            sprinting = self._blend(base[ks], np.where(racing[:, None], bunch, here), weight[ks], racing)
            if p.bunch_both:  # whether the sprint comes is uncertain: the interval spans both
                spans = self._blend(base[ks], np.where(candidate[:, None], bunch, here), weight[ks], candidate)
                late = np.maximum(blended[:, 1], spans[:, 1])
                early = np.minimum(blended[:, 2], spans[:, 2])
                sprinting[:, 1] = np.where(candidate, np.maximum(sprinting[:, 1], late), sprinting[:, 1])
                sprinting[:, 2] = np.where(candidate, np.minimum(sprinting[:, 2], early), sprinting[:, 2])
            blended = sprinting
        out[ks] = blended
        return out

    def _blend(self, base: np.ndarray, here: np.ndarray, weight: np.ndarray, racing: np.ndarray) -> np.ndarray:
        """The stage's and the finale's predictions (m, 3) blended by the finale's share, and the interval."""
        p = self.params
        w = weight[:, None]
        if p.by_precision:
            # the stage's and the finale's predictions, each weighted by how sure it is (its interval)
            var_base = np.square(base[:, 1] - base[:, 2])
            var_here = np.square(here[:, 1] - here[:, 2])
            share = var_base / np.maximum(var_base + var_here, 1e-9)
            # a racing bunch's stage prediction is its recent pace: what misleads on a sprint stage
            w = w * np.where(racing, 1.0, share)[:, None]
        blended = (1 - w) * base + w * here
        # tactics: attacks, lead-outs and the sprint swing the last minutes' pace (15 %: 80 % coverage on the
        # tuned races of benchmarks/finale.py)
        half = p.pace_spread * weight * blended[:, 0]
        blended[:, 1] = np.maximum(blended[:, 1], blended[:, 0] + half)
        blended[:, 2] = np.minimum(blended[:, 2], blended[:, 0] - half)
        return blended

    def _speed_in_run_in_wind(self, speed: np.ndarray, recent_from: np.ndarray, km: np.ndarray) -> np.ndarray:
        """The recent speed (km/s) moved to the run-in's wind: the same power into the air, v (v + headwind)^2
        kept (on the flat, drag is most of the work), the headwinds averaged over the last minutes' road and
        the run-in's."""
        frac = np.linspace(0.0, 1.0, 17)
        start = np.maximum(km, self._run_in_start)
        head_recent = self.profile.wind_at(recent_from[:, None] + (km - recent_from)[:, None] * frac)[0].mean(axis=1)
        head_run = self.profile.wind_at(start[:, None] + (self.profile.finish_km - start)[:, None] * frac)[0].mean(
            axis=1)
        v_r = speed * 1000.0  # m/s
        v = speed_in_wind(v_r * np.maximum(v_r + head_recent, 1.0) ** 2, head_run, v_r, steps=30)
        return np.where(np.isfinite(speed), v / 1000.0, speed)

    def _flat_physics_s(self, powers: np.ndarray, km: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Seconds the tables give for the flat kilometres of the run-in still ahead (n, 3)."""
        return self._flat_tables.remaining_s(powers, km[:, None], size[:, None])


class BunchRunIn:
    """A bunch on a flat or rolling run-in races for the line: seconds to go by a chase + lead-out profile.

    A big group's last minutes do not say its last kilometres on a sprint stage: once the catch is on, it
    speeds up (the chase), then the lead-out trains and the sprint (issue 26: a real flat stage's head of the
    race predicted 174 s late 30 minutes out, 43 s 5 minutes out). So its speed ahead is ``bunch_kph``, the
    published speeds of Grand Tour bunch finales on a calm flat road (km to go: 47 km/h 20 out, a last
    10 km of ~54, a last km of ~62, a sprint of 64-68; sources in peloton.sim.simulate.SprintFinale), times its
    level (its last minutes' speed against that profile's over the same road, in the same wind; bounded),
    each km moved to the wind there (the same power into the air: v (v + headwind)^2 kept). It applies to
    groups of ``bunch_min_size`` or more, on a run-in with no km steeper than ``bunch_max_gradient`` up or
    down, whose level says they race (``bunch_racing``): a bunch riding tempo keeps the physics. Within the
    published speeds' reach (``bunch_max_km``) only, and (``bunch_trend_s``) only while its level over the last
    minutes holds ``bunch_hold`` of the one before (a chase that is on, not one that eased); such bunches are
    *candidates* whether they race or not, and (``FinaleParams.bunch_both``) their interval spans both the sprint
    and their own pace. Those three are round 2's candidate, off. A bunch races for the win only within
    ``bunch_gap_s_per_km`` of the leader per km to go (a gap not known, NaN, is not raced): one minutes behind a
    stage already won rides in (issue 26, rounds 3 and 4 in BENCHMARKS.md). A bunch whose gap grows past that
    limit (it shrinks to nothing at the line) stops being raced at once, its finish moving to its own pace: a change
    of state, like a catch, not smoothed (a bunch 10 s down 1 km out is left to its pace and the run-in floor).
    """

    STEP_KM = 0.01  # the profile's time to the line is tabled every 10 m

    def __init__(self, profile, params: FinaleParams = FinaleParams()):
        self.profile = profile
        self.params = params
        km, kph = zip(*params.bunch_kph[::-1])
        self._km, self._ms = np.array(km), np.array(kph) / 3.6
        # both tables reach back past the window by a group's last minutes, and their trend, at 90 km/h: where
        # its recent ride starts
        finish = profile.finish_km
        reach = params.window_km + (params.recent_s + 2.0 * params.bunch_trend_s) * params.descent_kph / 3600.0 + 1.0
        # from each km on a 100 m grid: the steepest km ahead to the line, up or down (flat or rolling)
        grid = np.arange(max(finish - reach, profile.km[0]), finish + 1e-9, 0.1)
        ele = profile.altitude_at(grid) if profile.has_elevation else np.zeros(grid.size)
        ahead = np.minimum(grid + 1.0, finish)
        steep = np.abs(profile.altitude_at(ahead) - ele) / np.maximum((ahead - grid) * 1000.0, 100.0) \
            if profile.has_elevation else np.zeros(grid.size)
        self._grid, self._steepest = grid, np.maximum.accumulate(steep[::-1])[::-1]
        # the profile's seconds to the line from every 10 m, in the wind there, once: a ride's time is a difference
        # of two look-ups
        edges = np.r_[np.arange(finish, max(finish - reach, profile.km[0]), -self.STEP_KM)[::-1], finish]
        edges = np.unique(edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        v0 = np.interp(finish - mid, self._km, self._ms)
        v = speed_in_wind(v0 ** 3, profile.wind_at(mid)[0], v0, steps=20)  # the calm road's power into the air
        self._edges = edges
        self._to_line = np.r_[np.cumsum((np.diff(edges) * 1000.0 / v)[::-1])[::-1], 0.0]

    def flat(self, km) -> np.ndarray:
        """Whether the road from ``km`` to the line is flat or rolling."""
        worst = np.interp(np.asarray(km, dtype=float), self._grid, self._steepest)
        return worst <= self.params.bunch_max_gradient

    def calm_kph(self, km_to_go) -> np.ndarray:
        """The published profile's speed, km/h, at ``km_to_go`` on a calm flat road."""
        return np.interp(km_to_go, self._km, self._ms) * 3.6

    def seconds(self, km_from, km_to) -> np.ndarray:
        """Seconds the profile takes from ``km_from`` to ``km_to`` (course km, arrays), in the wind there."""
        return (np.interp(np.asarray(km_from, dtype=float), self._edges, self._to_line)
                - np.interp(np.asarray(km_to, dtype=float), self._edges, self._to_line))

    def level(self, km_from, km_to, seconds) -> np.ndarray:
        """A ride's speed against the profile's over the same road (1: the published finale's pace); NaN where
        it is under 200 m or unknown."""
        km_from, km_to = np.asarray(km_from, dtype=float), np.asarray(km_to, dtype=float)
        ok = np.isfinite(km_from) & np.isfinite(km_to) & (km_to - km_from > 0.2) & (np.asarray(seconds) > 0)
        start = np.where(ok, km_from, km_to - 1.0)
        lev = self.seconds(start, km_to) / np.maximum(np.asarray(seconds, dtype=float), 1e-3)
        return np.where(ok, lev, np.nan)

    def remaining_s(self, km, size, recent_speed, recent_from, back=None, gap_s=None) -> tuple:
        """Seconds to the line (m, 3: central, late, early) of each group as a racing bunch, which race, and
        which are bunches on a flat run-in at all (whose sprint may come).

        ``recent_speed`` (km/s) is the group's over its last minutes from ``recent_from``; ``back`` (m, 2) its
        km ``bunch_trend_s`` twice and once ago (with ``bunch_trend_s``: its level now must hold at least
        ``bunch_hold`` of the one before, and sets its pace ahead); ``gap_s`` its gap to the leader (within
        ``bunch_gap_s_per_km`` of each km to go it races for the win)."""
        p = self.params
        km = np.asarray(km, dtype=float)
        finish = self.profile.finish_km
        ok = np.isfinite(recent_speed) & np.isfinite(recent_from) & (km - recent_from > 0.2)
        start = np.where(ok, recent_from, km - 1.0)
        level = self.level(start, km, (km - start) / np.where(ok, recent_speed, 1.0))
        level = np.where(ok, level, 0.0)
        candidate = (ok & (np.asarray(size) >= p.bunch_min_size) & self.flat(start)
                     & (finish - km <= p.bunch_max_km))
        if gap_s is not None:
            candidate &= np.asarray(gap_s, dtype=float) <= p.bunch_gap_s_per_km * (finish - km)
        if p.bunch_trend_s > 0 and back is not None:
            back = np.asarray(back, dtype=float)
            before = self.level(back[:, 0], back[:, 1], np.full(km.shape, p.bunch_trend_s))
            now = self.level(back[:, 1], km, np.full(km.shape, p.bunch_trend_s))
            holds = np.isfinite(before) & np.isfinite(now) & (now >= p.bunch_hold * before)
            level = np.where(np.isfinite(now), now, level)
            racing = candidate & holds & (level >= p.bunch_racing)
        else:
            racing = candidate & (level >= p.bunch_racing)
        central = self.seconds(km, np.full(km.shape, finish)) / np.clip(np.where(level > 0, level, 1.0),
                                                                        *p.bunch_level)
        central = np.where(candidate, central, np.nan)
        half = p.bunch_spread * central
        return np.stack([central, central + half, central - half], axis=1), racing, candidate
