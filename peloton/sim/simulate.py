"""A road race simulated on a real course, written as a feed recording with its truth.

Ground truth for tests and benchmarks (who rode with whom, when the
breakaway was caught) and load for the scale runs. Pure numpy, no Beam.

Physics, every second and vectorised over riders: a rider's power goes into
rolling resistance, gravity and aerodynamic drag in the wind along the road,
and what is left accelerates him. Riding on a wheel (less than about a second
behind the rider ahead) cuts the drag by up to 40 %, much less in a
crosswind beyond the dozen riders an echelon holds. Behaviour is a few rules:

* the front rider of each group sets its pace by role: the peloton's tempo
  (harder on climbs, and a chase that closes on the breakaway when the
  scenario says it is caught), the breakaway's pace (an attack, then its
  riders' threshold), or a dropped rider's chase;
* everyone else follows the wheel ahead as far as his own power allows, so
  weaker riders are dropped on climbs and in crosswinds, and close gaps
  again where the road lets them;
* one rider stops (a crash, a mechanical) for a few minutes;
* with ``finale="sprint"`` (:class:`SprintFinale`) the bunch races for the
  line: it chases the breakaway down in the last 4-15 km, behind a lead-out
  train that rides the published speeds of Grand Tour bunch finales, and
  sprints; a breakaway let go (``caught=False``) keeps a minute or more,
  and the bunch still sprints for the places behind it (the default,
  ``"steady"``, rides the old tempo to the line).

The feed side adds what real trackers do: GPS noise, rare outliers,
dropouts, trackers that report a placeholder position before they go live,
riders leaving the feed soon after the finish.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from peloton.match.course import Course
from peloton.predict.physics import BUNCH_FINALE_KPH, drag_n, gravity_and_rolling_n

__all__ = ["SimParams", "SprintFinale", "SimulatedRace", "simulate_race", "recording_document", "truth_document",
           "truth_path", "PLACEHOLDER", "Roster", "make_roster", "simulate_tour", "tour_stage_ids", "TourSimError"]

#: The force balance is :mod:`peloton.predict.physics`'s; these constants are the simulated riders' own (sea-level air,
#: sitting up, power at the wheel), not the predictions' model: the predictor must not know the answer.
RHO = 1.2  # air density, kg/m^3
CRR = 0.004  # rolling resistance
CDA = 0.32  # drag area of a rider alone, m^2
BIKE_KG = 8.0
MAX_SPEED = 25.0  # m/s: nobody descends faster than 90 km/h
PLACEHOLDER = (41.4197, 2.2014)  # what the official feed reports for a tracker that is not live
CONTACT_S = 3.0  # riders closer than this follow the wheel ahead
#: True groups: a gap of this many seconds (time-at-position) separates two groups (UCI).
GROUP_GAP_S = 1.0


@dataclass(frozen=True)
class SimParams:
    riders: int = 176
    hz: float = 1 / 6  # feed ticks per second
    seed: int = 0
    start_epoch: float = 1_783_504_800.0  # 2026-07-08 10:00 UTC
    breakaway_size: int = 3
    breakaway_km: float | None = None  # default: 8 % into the course
    caught: bool | None = None  # None: drawn from the seed
    gps_noise_m: float = 4.0
    outlier_rate: float = 0.001  # fixes 40-120 m off
    dropouts_per_rider_hour: float = 0.3
    late_tracker_share: float = 0.15  # trackers on the placeholder for up to 20 min after the start
    wind_kph: float | None = None  # None: drawn between 5 and 35 km/h
    wind_from_deg: float | None = None  # None: drawn
    stops: int = 1
    max_hours: float = 8.0
    finale: str = "steady"  # "sprint": a chase, a lead-out and a bunch sprint (SprintFinale)


@dataclass
class SimulatedRace:
    """Truth at every feed tick, and what the trackers reported."""

    course: Course
    params: SimParams
    tick_t: np.ndarray  # epoch s, (n_ticks,)
    bibs: np.ndarray  # (n_riders,)
    true_s: np.ndarray  # polyline metres, (n_ticks, n_riders); nan before the start
    true_kph: np.ndarray
    group: np.ndarray  # true group label per tick (1 = head of the race), -1 = not on the road
    gap_to_leader_s: np.ndarray  # true time-at-position gap to the first rider on the road
    breakaway: list
    attack_at: float | None  # epoch s when the breakaway went
    caught_at: float | None  # epoch s when the breakaway was caught, None if it survived
    stops: list  # (bib, epoch s, seconds stopped)
    wind_kph: float
    wind_from_deg: float
    finish_t: np.ndarray = None  # epoch s each rider crossed the line (nan: did not), to the fraction of a second
    mark_t: np.ndarray = None  # (n_riders, n_marks): epoch s each rider passed each mark of ``marks_m`` (nan: not)


@dataclass(frozen=True)
class Roster:
    """The same riders stage after stage: abilities, team, birth date. Drawn once for a tour."""

    bibs: np.ndarray
    mass_kg: np.ndarray  # the rider, without the bike
    ftp_wkg: np.ndarray
    w_prime_j: np.ndarray
    kind: tuple  # climber | sprinter | rouleur
    team: tuple  # teams of 8 riders, bibs 1-8, 11-18, ...
    birthdate: tuple  # ISO dates


def make_roster(n: int, seed: int, year: int, young_share: float = 0.25) -> Roster:
    """``n`` riders: a fifth climbers (light, strong per kg), a sixth sprinters (heavy, a deep reserve above
    threshold), the rest rouleurs; ``young_share`` of them 25 or younger in ``year``; teams of 8."""
    rng = np.random.default_rng(seed + 7919)
    bibs = np.array([10 * (i // 8) + 1 + i % 8 for i in range(n)], dtype=np.int64)
    kind = rng.choice(np.array(["climber", "sprinter", "rouleur"]), size=n, p=[0.2, 1 / 6, 1 - 0.2 - 1 / 6])
    mass = np.select([kind == "climber", kind == "sprinter"], [rng.normal(60, 3, n), rng.normal(75, 3, n)],
                     rng.normal(69, 4, n)).clip(52, 85)
    ftp = np.select([kind == "climber", kind == "sprinter"], [rng.normal(5.6, 0.2, n), rng.normal(4.7, 0.2, n)],
                    rng.normal(5.0, 0.3, n)).clip(4.2, 6.2)
    w_prime = np.where(kind == "sprinter", rng.normal(28000, 2000, n), rng.normal(19000, 3000, n)).clip(10000, 32000)
    young = rng.random(n) < young_share
    born = np.where(young, rng.integers(year - 25, year - 20, n), rng.integers(year - 38, year - 25, n))
    dates = tuple(f"{y}-{m:02d}-{d:02d}" for y, m, d in zip(born.tolist(), rng.integers(1, 13, n).tolist(),
                                                             rng.integers(1, 29, n).tolist()))
    return Roster(bibs, mass, ftp, w_prime, tuple(kind.tolist()), tuple(f"TEAM {i // 8 + 1}" for i in range(n)),
                  dates)


class SprintFinale:
    """A bunch that races for the line: once the catch is on, the front of the peloton is a lead-out train.

    The train rides, whatever the front rider's own reserve (its riders take turns), the power that holds the
    published speeds of a Grand Tour bunch finale on a calm flat road (``SPEED_KPH`` by km to go, times a
    per-race ``pace`` drawn from the seed); the wind and the road then move its real speed. Sources (stored
    public pages):

    * the catch "with roughly 10-20 km to go", then the lead-out (J. Lindsey, "How does a Tour de France
      sprint work?", bicycling.co.za); "a minute per 10 km", caught "with a handful of kilometres left"
      (B. Dyer, phys.org 2014-07-22);
    * the speed built up over the last 7 km, a big increase in the last 2 (Omega Pharma-Quick Step,
      "The perfect lead out", achieveptc.com); a finale's last 5 minutes near 50 km/h, close to 60 at the
      end (Tour Down Under 2013 stage 6, ridemedia.com.au);
    * sprints of 13 +- 2 s, peak speed 66.1 +- 3.4 km/h (57-71), 1,020 W average (Menaspa's study, quoted
      in the lfgss.com thread and sportsscientists.com 2016-07); 65-70 km/h (physicalcycling.com/sprints);
      a lead-out man at 68 km/h (Vuelta 2014 stage 2, lfgss.com);
    * in the belly of a peloton a rider meets 5-10 % of a lone rider's drag, 60 % right behind the leader
      (Blocken et al. 2018, reported by fullgas.blog 2018-07-11 and econ70.com): behind the train the bunch
      is sheltered ``BUNCH_SHELTER`` (0.6 less drag), not the 0.4 of the rest of the stage, else nobody
      could follow a 60 km/h train.
    """

    SPEED_KPH = BUNCH_FINALE_KPH  # km to go, km/h on a calm flat road
    START_KM = 20.0  # the train forms once the catch is on within this many km of the line
    PLACES_KM = 2.0  # ... and, behind a breakaway let go, for the places within this many km
    BUNCH_SHELTER = 0.6
    CATCH_KM = (4.0, 15.0)  # where the chase aims to catch the breakaway, km to go

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed + 7919)  # its own draws: the stage's others stay as without it
        self.pace = float(rng.uniform(0.96, 1.04))
        km, kph = zip(*self.SPEED_KPH[::-1])
        self._km, self._ms = np.array(km), np.array(kph) * self.pace / 3.6

    def catch_m(self, draw: float, length_m: float) -> float:
        """Where the chase aims to catch, from the stage's own draw (0.8-0.95 of the way)."""
        lo, hi = self.CATCH_KM
        return length_m - 1000.0 * (lo + (draw - 0.8) / 0.15 * (hi - lo))

    def on(self, km_to_go: float, caught: bool, gap_s: float) -> bool:
        """The train rides: the catch is on (the breakaway is caught, or its gap is under the rule's minute per
        10 km to go), or the line is near (a bunch behind a breakaway that stays away still sprints for the
        places: a sprinter's team rides for the stage's points and its place, not for tempo)."""
        return km_to_go <= self.PLACES_KM or (km_to_go <= self.START_KM and (caught or gap_s < 6.0 * km_to_go))

    def power_w(self, km_to_go, mass_kg, shelter) -> np.ndarray:
        """Watts the train's front rider rides: what holds the published speed there on a calm flat road."""
        v = np.interp(km_to_go, self._km, self._ms)
        return (gravity_and_rolling_n(mass_kg, 0.0, CRR) + drag_n(RHO, CDA, v, shelter)) * v


def _course_profile(course: Course, wind_kph: float, wind_from_deg: float, step: float = 10.0):
    """Slope (rad), headwind (m/s) and crosswind (m/s) on a 10 m grid of polyline distance."""
    grid = np.arange(0.0, course.length_m + step, step)
    grad = course.gradient_at(grid)
    slope = np.arctan(np.clip(grad, -15, 15) / 100.0) if grad is not None else np.zeros(grid.size)
    x = np.interp(grid, course.cum_m, course.x)
    y = np.interp(grid, course.cum_m, course.y)
    heading = np.arctan2(np.gradient(x), np.gradient(y))  # clockwise from north
    # smooth over ~200 m: the wind sees the road's direction, not every kink of the polyline
    kernel = np.ones(21) / 21
    sx = np.convolve(np.sin(heading), kernel, mode="same")
    cy = np.convolve(np.cos(heading), kernel, mode="same")
    heading = np.arctan2(sx, cy)
    rel = np.radians(wind_from_deg) - heading
    wind = wind_kph / 3.6
    return grid, slope, wind * np.cos(rel), np.abs(wind * np.sin(rel))


def simulate_race(course: Course, params: SimParams = SimParams(), roster: Roster | None = None,
                  marks_m=()) -> SimulatedRace:
    """Ride the race second by second; keep the truth at every feed tick, and when each rider passed each of
    ``marks_m`` (polyline metres: sprints, summits) to the fraction of a second. ``roster``: the riders of a
    tour (``params.riders`` of them), else drawn from the seed."""
    rng = np.random.default_rng(params.seed)
    n = params.riders
    wind_kph = params.wind_kph if params.wind_kph is not None else float(rng.uniform(5, 35))
    wind_from = params.wind_from_deg if params.wind_from_deg is not None else float(rng.uniform(0, 360))
    grid, slope_g, head_g, cross_g = _course_profile(course, wind_kph, wind_from)
    length = course.length_m

    bibs = np.array([10 * (i // 8) + 1 + i % 8 for i in range(n)], dtype=np.int64)  # 1-8, 11-18, ... like a team
    mass = rng.normal(68.0, 6.0, n).clip(55, 85) + BIKE_KG
    ftp_wkg = rng.normal(5.0, 0.35, n).clip(4.2, 6.2)
    ftp = ftp_wkg * (mass - BIKE_KG)
    # above threshold a rider spends a finite reserve (W', J) and earns it back below it: short ramps
    # are survived, long climbs at a strong rider's pace are not
    w_prime = rng.normal(20000.0, 4000.0, n).clip(10000.0, 30000.0)
    w_bal = w_prime.copy()
    if roster is not None:
        bibs, mass, ftp_wkg, w_prime = roster.bibs, roster.mass_kg + BIKE_KG, roster.ftp_wkg, roster.w_prime_j
        ftp = ftp_wkg * roster.mass_kg
        w_bal = w_prime.copy()
    marks = np.asarray(marks_m, float)
    mark_t = np.full((n, marks.size), np.nan)
    follow_m = rng.uniform(0.5, 1.6, n)  # how close each rider sits on the wheel ahead (two abreast)
    s = -np.arange(n) * 0.6 - rng.uniform(0, 0.3, n)  # the bunch on the start line, two abreast
    rng.shuffle(s)
    v = np.full(n, 8.0)

    break_km = params.breakaway_km if params.breakaway_km is not None else 0.08 * length / 1000.0
    break_idx = rng.choice(n, size=min(params.breakaway_size, n - 1), replace=False) if params.breakaway_size else []
    is_break = np.zeros(n, dtype=bool)
    caught = bool(rng.random() < 0.6) if params.caught is None else params.caught
    catch_m = float(rng.uniform(0.8, 0.95)) * length
    sprint = SprintFinale(params.seed) if params.finale == "sprint" else None
    if params.finale not in ("steady", "sprint"):
        raise ValueError(f"finale must be 'steady' or 'sprint', not {params.finale!r}")
    if sprint is not None:  # a bunch sprint: the breakaway is caught in the last kilometres
        caught = True if params.caught is None else params.caught
        catch_m = sprint.catch_m(catch_m / length, length)
    attack_at = None
    caught_at = None
    stop_riders = [i for i in rng.permutation(n) if i not in set(np.atleast_1d(break_idx))][: params.stops]
    stop_s = {i: float(rng.uniform(0.3, 0.7) * length) for i in stop_riders}
    stop_len = {i: float(rng.uniform(90, 300)) for i in stop_riders}
    stop_until = {}
    stops = []
    finished = np.zeros(n, dtype=bool)
    first_finisher = None  # the head of the race at the line: everyone's reference from then on
    finish_t = np.full(n, np.nan)

    feed_dt = 1.0 / params.hz
    ticks, snap_s, snap_v, snap_group, snap_gap = [], [], [], [], []
    t0 = params.start_epoch
    next_tick = 0.0
    n_steps = int(params.max_hours * 3600)
    history = np.empty((n_steps, n), dtype=np.float32)  # every rider's position every second: true gaps
    for step in range(n_steps):
        t = float(step)
        if attack_at is None and len(break_idx) and np.max(s) >= break_km * 1000.0:
            attack_at = t
            is_break[break_idx] = True
            s[break_idx] = np.max(s) + 60.0 + rng.uniform(0.5, 3.0, len(break_idx))  # they go clear of the front
        # ------------------------------------------------------------- who is where
        order = np.flatnonzero(~finished)
        order = order[np.argsort(-s[order], kind="stable")]
        na = order.size
        so, vo = s[order], v[order]
        gap_m = np.r_[np.inf, so[:-1] - so[1:]]
        gap_s = gap_m / np.maximum(vo, 1.0)
        head = gap_s > CONTACT_S
        label = np.cumsum(head) - 1
        first_of = np.flatnonzero(head)
        pos_in_group = np.arange(na) - first_of[label]
        peloton_label = int(np.argmax(np.bincount(label)))
        in_peloton = label == peloton_label
        # ------------------------------------------------------------------ forces
        k = np.clip((so / 10.0).astype(np.int64), 0, grid.size - 1)
        slope, headwind, cross = slope_g[k], head_g[k], cross_g[k]
        draft = np.clip((2.0 - gap_s) / 1.5, 0.0, 1.0)
        draft = np.where((cross > 6.0) & (pos_in_group >= 12), draft * 0.6, draft)  # the gutter
        m_o, ftp_o = mass[order], ftp[order]
        air = vo + headwind
        climbing = gravity_and_rolling_n(m_o, slope, CRR)
        resist = climbing + drag_n(RHO, CDA, air, 1.0 - 0.4 * draft)
        # ------------------------------------------------------------- power by role
        climb = np.clip(np.tan(slope) / 0.06, 0.0, 1.0)
        tempo = 3.0 + 1.9 * climb  # W/kg the teams ride at the front of the peloton
        brk = is_break[order]
        chase = 0.0
        if attack_at is not None and caught_at is None and brk.any() and in_peloton.any():
            pel_s = so[in_peloton].max()
            gap_break = (so[brk].max() - pel_s) / max(float(vo[in_peloton].mean()), 5.0)
            # the gap the chase allows: about a minute for every 10 km left before the catch (the rule of
            # thumb), at most 8 minutes; a breakaway that survives keeps a minute or more at the line
            if caught:
                target = min(6.0 * (catch_m - pel_s) / 1000.0 - 20.0, 480.0)  # aims past zero: a catch
            else:
                target = min(60.0 + 3.0 * (length - pel_s) / 1000.0, 480.0)
            chase = float(np.clip((gap_break - target) / 20.0, -0.8, 2.0))
            tempo = tempo + chase
            if t - attack_at > 120 and (gap_break < 0.8 or (in_peloton & brk).any()):
                caught_at = t
                is_break[:] = False
                brk = is_break[order]
        train = False
        if sprint is not None and in_peloton.any():
            pel_front = so[in_peloton].max()
            away = attack_at is not None and caught_at is None and brk.any()
            gap_now = (so[brk].max() - pel_front) / max(float(vo[in_peloton].mean()), 5.0) if away else 0.0
            train = sprint.on((length - pel_front) / 1000.0, not away, gap_now)
        in_attack = attack_at is not None and t - attack_at < 90
        fresh = 1.0 if attack_at is None else max(0.93, 1.02 - 0.03 * (t - attack_at) / 3600.0)
        power = np.where(brk, ftp_o * (1.45 if in_attack else fresh), 0.92 * ftp_o)
        # the pace the front of the peloton can set: one that all but its weakest riders hold on the flat,
        # and that drops up to 60 % of them on a steep climb or in a flat-out chase
        pel_wkg = ftp_wkg[order][in_peloton]
        effort = np.clip(climb + max(chase, 0.0) / 2.0, 0.0, 1.0)
        cap = np.percentile(pel_wkg, 10 + 50 * effort) if pel_wkg.size else ftp_wkg.max()
        power = np.where(~brk & in_peloton, np.minimum(tempo, cap) * (m_o - BIKE_KG), power)
        tail_of_peloton = so[in_peloton].min() if in_peloton.any() else -np.inf
        behind_far = (~brk) & ~in_peloton & (so < tail_of_peloton - 2000)
        power = np.where(behind_far, 0.85 * ftp_o, power)  # the gruppetto: ride inside the time cut
        # riders take turns at the front of a group (team trains in the peloton): the more riders, the
        # less of the wind each takes
        size = np.bincount(label)[label]
        lead_shelter = np.where(in_peloton, 0.6, 1.0 - 0.3 * np.minimum(size - 1, 5) / 5.0)
        if train:  # the lead-out train at the head of the peloton, at least the chase's power
            front = in_peloton & head
            finale_w = sprint.power_w((length - so) / 1000.0, m_o, lead_shelter)
            power = np.where(front, np.maximum(power, finale_w), power)
            resist = np.where(in_peloton & ~head, climbing + drag_n(
                RHO, CDA, air, 1.0 - SprintFinale.BUNCH_SHELTER * draft), resist)
        resist_head = climbing + drag_n(RHO, CDA, air, lead_shelter)
        v_head = vo + (power / np.maximum(vo, 1.0) - resist_head) / m_o
        # ---------------------------------------------------------- follow the group
        # Followers ride at their group's pace (the front rider's new speed), closing slowly on the wheel
        # ahead: following the wheel ahead's speed instead would amplify every surge down a line of
        # 170 riders (string instability).
        v_ahead = np.r_[vo[:1], vo[:-1]]
        v_group = np.clip(v_head, 0.0, MAX_SPEED)[first_of][label]
        v_follow = v_group + np.clip(0.2 * (gap_m - follow_m[order]), -1.0, 1.0)
        p_max = np.where(w_bal[order] > 0, 1.8, 1.0) * ftp_o
        v_can = vo + (p_max / np.maximum(vo, 1.0) - resist) / m_o
        v_new = np.zeros(n)
        # nobody waits behind a stopped rider: past a wheel slower than 10 km/h, ride your own pace
        own_pace = head | (v_ahead < 2.8)
        v_lead = np.where(in_peloton & head, v_head, np.minimum(v_head, v_can)) if train else np.minimum(v_head, v_can)
        v_new[order] = np.clip(np.where(own_pace, v_lead, np.minimum(v_follow, v_can)),
                               1.5, MAX_SPEED)  # walking pace at worst: everyone reaches the line
        spent = (m_o * (v_new[order] - vo) + np.where(own_pace, resist_head, resist)) * v_new[order]
        w_bal[order] = np.minimum(w_bal[order] - np.maximum(spent - ftp_o, 0.0)
                                  + 0.3 * np.maximum(ftp_o - spent, 0.0), w_prime[order])
        # ------------------------------------------------------------------ stops
        for i in stop_riders:
            if i not in stop_until and s[i] >= stop_s[i]:
                stop_until[i] = t + stop_len[i]
                stops.append((int(bibs[i]), t0 + t, stop_len[i]))
            if i in stop_until and t < stop_until[i]:
                v_new[i] = 0.0
        v = v_new
        s_before = s
        s = np.where(finished, s, s + v)
        for j, m in enumerate(marks.tolist()):
            hit = np.isnan(mark_t[:, j]) & (s >= m) & (s_before < m)
            mark_t[hit, j] = t0 + t - 1.0 + (m - s_before[hit]) / np.maximum(v[hit], 1e-9)
        newly = (~finished) & (s >= length)
        finish_t[newly] = t0 + t - 1.0 + (length - s_before[newly]) / np.maximum(v[newly], 1e-9)
        if first_finisher is None and newly.any():
            first_finisher = int(np.flatnonzero(newly)[np.argmin(finish_t[newly])])
        s[newly] = length
        finished |= newly
        history[step] = s
        # ------------------------------------------------------------ feed ticks
        if t >= next_tick:
            next_tick += feed_dt
            group, gap_leader = _truth_at(history[: step + 1], s, v, finished, first_finisher)
            ticks.append(t0 + t)
            snap_s.append(s.copy())
            snap_v.append(v * 3.6)
            snap_group.append(group)
            snap_gap.append(gap_leader)
        if finished.all():
            break
    caught_epoch = None if (caught_at is None or not len(break_idx)) else t0 + caught_at
    return SimulatedRace(course, params, np.array(ticks), bibs, np.array(snap_s), np.array(snap_v),
                         np.array(snap_group), np.array(snap_gap), sorted(int(b) for b in bibs[list(break_idx)]),
                         None if attack_at is None else t0 + attack_at, caught_epoch, stops, wind_kph, wind_from,
                         finish_t, mark_t)


def _truth_at(history: np.ndarray, s, v, finished, first_finisher: int | None = None):
    """True groups (1 s rule on time-at-position gaps) and true gaps to the first rider on the road.

    The first rider on the road is the furthest one, finished or not: once
    the head of the race has crossed the line (``first_finisher``), everyone
    still racing is measured against him (riders at the line have no gap).
    """
    n = s.size
    group = np.full(n, -1, dtype=np.int64)
    gap = np.full(n, np.nan)
    road = np.flatnonzero((~finished) & (s >= 0))
    if road.size == 0:
        return group, gap
    order = road[np.argsort(-s[road], kind="stable")]
    # time since the rider ahead passed my position, from his last 15 s of history
    ahead = np.r_[-1, order[:-1]]
    lags = min(15, history.shape[0] - 1)
    past = history[::-1][: lags + 1]  # past[k] = positions k seconds ago
    behind_gap = np.full(order.size, np.inf)
    if order.size > 1 and lags > 0:
        a = ahead[1:]
        mine = s[order[1:]]
        traj = past[:, a]  # (lags+1, riders)
        passed = traj <= mine[None, :]  # was the rider ahead still behind my position k s ago?
        k = np.where(passed.any(axis=0), passed.argmax(axis=0), lags + 1)
        k1 = np.clip(k, 1, lags)
        hi, lo = traj[k1 - 1, np.arange(a.size)], traj[k1, np.arange(a.size)]
        frac = np.where(hi > lo, (hi - mine) / np.maximum(hi - lo, 1e-9), 0.0)
        behind_gap[1:] = np.where(k > lags, np.inf, (k1 - 1) + np.clip(frac, 0, 1))
        stopped = v[order[1:]] < 0.5
        behind_gap[1:] = np.where(stopped & (s[a] - mine > 3.0), np.inf, behind_gap[1:])
    label = np.cumsum(behind_gap >= GROUP_GAP_S)
    group[order] = label
    # time since the first rider on the road passed each rider's position
    head = order[0] if first_finisher is None else first_finisher
    lead = np.maximum.accumulate(history[:, head].astype(float))
    now = history.shape[0] - 1
    gap[order] = np.maximum(now - np.interp(s[order], lead, np.arange(lead.size, dtype=float)), 0.0)
    return group, gap


def _rider_rows(race: SimulatedRace, rng: np.random.Generator):
    """Per tick, the rows the trackers send: noise, outliers, dropouts, placeholders, finished riders leave."""
    p = race.params
    course = race.course
    n_ticks, n = race.true_s.shape
    t = race.tick_t
    start = p.start_epoch
    live_from = np.full(n, -np.inf)
    late = rng.random(n) < p.late_tracker_share
    live_from[late] = start + rng.uniform(0, 1200, late.sum())
    silent = np.zeros((n_ticks, n), dtype=bool)
    hours = (t[-1] - t[0]) / 3600.0 if n_ticks else 0.0
    for i in range(n):
        for _ in range(rng.poisson(p.dropouts_per_rider_hour * hours)):
            a = rng.uniform(t[0], t[-1])
            silent[:, i] |= (t >= a) & (t < a + rng.uniform(20, 150))
    # a finished rider stays in the feed for 20 s, then leaves
    at_line = race.true_s >= course.length_m - 1e-6
    first_at_line = np.where(at_line.any(axis=0), at_line.argmax(axis=0), n_ticks)
    gone = np.arange(n_ticks)[:, None] > first_at_line[None, :] + int(np.ceil(20 * p.hz))
    lat, lon = course.point_at(np.clip(race.true_s, 0, None))
    x, y = course.proj.forward(lat.ravel(), lon.ravel())
    err = rng.normal(0, p.gps_noise_m, (2, x.size))
    outlier = rng.random(x.size) < p.outlier_rate
    err[:, outlier] *= rng.uniform(10, 30, outlier.sum())
    lat, lon = course.proj.inverse(x + err[0], y + err[1])
    lat, lon = lat.reshape(n_ticks, n), lon.reshape(n_ticks, n)
    kph = np.clip(race.true_kph + rng.normal(0, 1.0, race.true_kph.shape), 0, None)
    km_to_finish = (course.length_m - np.clip(race.true_s, 0, None)) / 1000.0
    for j in range(n_ticks):
        rows = []
        for i in np.flatnonzero(~silent[j] & ~gone[j]).tolist():
            if t[j] < live_from[i]:
                rows.append({"Bib": int(race.bibs[i]), "Latitude": PLACEHOLDER[0], "Longitude": PLACEHOLDER[1],
                             "kph": 0})
                continue
            rows.append({"Bib": int(race.bibs[i]), "Latitude": round(float(lat[j, i]), 6),
                         "Longitude": round(float(lon[j, i]), 6), "kph": round(float(kph[j, i]), 2),
                         "kmToFinish": round(float(km_to_finish[j, i]), 2),
                         "secToFirstRider": None if not np.isfinite(race.gap_to_leader_s[j, i])
                         else int(race.gap_to_leader_s[j, i])})
        yield float(t[j]), rows


def recording_document(race: SimulatedRace, name: str = "simulated stage", date: str | None = None,
                       year: int = 2026, stage_info: dict | None = None, roster: Roster | None = None,
                       checkpoints: list | None = None) -> dict:
    """The race as an official-feed recording (``kmToFinish`` and ``secToFirstRider`` carry the truth).

    A tour's stage (:func:`simulate_tour`) gives its ``date``, ``stage_info`` (``rest.stages[date]``: number,
    type), the ``roster`` (teams, birth dates) and the sprint and summit ``checkpoints`` (timetable shape)."""
    course = race.course
    rng = np.random.default_rng(race.params.seed + 1)
    date = date or f"sim-{race.params.seed}"
    step = 1  # the whole polyline: the truth is measured on it
    ele = course.ele if course.ele is not None else np.full(course.lat.size, np.nan)
    route = [{"lat": round(float(a), 6), "lon": round(float(b), 6),
              "ele": None if not np.isfinite(e) else round(float(e), 1)}
             for a, b, e in zip(course.lat[::step], course.lon[::step], ele[::step])]
    if course.lat.size and (course.lat.size - 1) % step:
        route.append({"lat": float(course.lat[-1]), "lon": float(course.lon[-1]),
                      "ele": None if not np.isfinite(ele[-1]) else float(ele[-1])})
    length_km = course.length_m / 1000.0
    pois = [{"lat": route[0]["lat"], "lon": route[0]["lon"], "distanceTraveled": 0.0, "label": "#km0"},
            {"lat": route[-1]["lat"], "lon": route[-1]["lon"], "distanceTraveled": round(length_km, 3),
             "label": "#finish"}]
    events, prev = [], None
    for ts, rows in _rider_rows(race, rng):
        msg = {"bind": f"telemetryCompetitor-{year}", "data": {"TimeStamp": int(round(ts)), "Riders": rows}}
        events.append({"dt": 0 if prev is None else int(round((ts - prev) * 1000)),
                       "data": json.dumps(msg, separators=(",", ":"))})
        prev = ts
    riders = [{"bib": int(b), "firstname": "Rider", "lastname": str(int(b))} for b in race.bibs]
    teams = []
    if roster is not None:
        names = sorted(set(roster.team))
        teams = [{"_id": f"t{i}", "name": t, "code": f"T{i}"} for i, t in enumerate(names)]
        riders = [{"bib": int(b), "firstname": k.capitalize(), "lastname": f"R{int(b)}", "birthdate": d,
                   "$team": f"team-{year}:t{names.index(t)}"}
                  for b, k, t, d in zip(roster.bibs, roster.kind, roster.team, roster.birthdate)]
    block = _weather_checkpoints(race)
    for cp in checkpoints or []:
        block[str(len(block))] = {**cp, "checkpoint": len(block) + 1}
    return {
        "meta": {"date": date, "year": year, "source": "peloton simulate",
                 "note": "kmToFinish and secToFirstRider are the simulation's truth"},
        "rest": {"riders": riders, "teams": teams,
                 "stages": {date: {"name": name, "type": "VAL", "length": round(length_km, 3), **(stage_info or {})}},
                 "trace": {"name": name, "routePoints": route, "pointsOfInterest": pois,
                           "totalDistance": round(length_km, 3)},
                 "checkpoints": [block]},
        "events": events,
    }


def _weather_checkpoints(race: SimulatedRace) -> dict:
    """The simulated wind as the feed reports weather: a Beaufort force and a compass point at start, middle
    and finish (the way the official timetable's ``checkpointMeteo`` does).

    The force is that of the riders' own wind, as if it blew 10 m up: the profile brings a forecast down to
    a rider's height (0.54 of it), so the predictor sees about half the wind the simulated riders ride in.
    Reporting the stronger 10 m force instead was tried and is a wash for the finale (benchmarks/HISTORY.md,
    "The wind at a rider's height, tried"); the catch calibration was fitted on this report."""
    force = int(round((race.wind_kph / 3.6 / 0.836) ** (2.0 / 3.0)))
    points = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSO", "SO", "OSO", "O", "ONO", "NO", "NNO"]
    direction = points[int(round(race.wind_from_deg / 22.5)) % 16]
    out = {}
    for n, share in enumerate((0.0, 0.5, 1.0)):  # no position: not a km mark for the course calibration
        out[str(n)] = {"checkpoint": n + 1, "length": round(share * race.course.length_m / 1000.0, 2),
                       "checkpointTypes": [], "checkpointSummits": [],
                       "checkpointMeteo": {"windForce": force, "windDirection": direction, "temperature": 25.0}}
    return out


def truth_document(race: SimulatedRace) -> dict:
    """The true group of every rider at every tick (1 = head of the race, -1 = not on the road), and the story."""
    return {
        "ticks": [int(round(x)) for x in race.tick_t.tolist()],
        "bibs": race.bibs.tolist(),
        "group": race.group.tolist(),
        "breakaway": race.breakaway,
        "attack_at": None if race.attack_at is None else int(round(race.attack_at)),
        "caught_at": None if race.caught_at is None else int(round(race.caught_at)),
        "stops": [{"bib": b, "at": int(round(t)), "seconds": round(d, 1)} for b, t, d in race.stops],
        "wind_kph": round(race.wind_kph, 1),
        "wind_from_deg": round(race.wind_from_deg, 1),
        "group_gap_s": GROUP_GAP_S,
        "finish": {str(int(b)): round(float(f), 3) for b, f in zip(race.bibs, race.finish_t) if np.isfinite(f)},
    }


def truth_path(recording_path: str) -> str:
    """Where the truth of a simulated recording lives: ``X.json.gz`` -> ``X.truth.json.gz``."""
    for ext in (".json.gz", ".json"):
        if recording_path.endswith(ext):
            return recording_path[: -len(ext)] + ".truth" + ext
    return recording_path + ".truth.json"


# ---------------------------------------------------------------------------------------------------------
# a tour: the same riders over consecutive real courses, with the truth of every classification


class TourSimError(ValueError):
    """A tour that cannot be simulated: one line that says why."""


#: Stage type from the course's climbing per km (the metadata says only road or time trial): the kernel's codes.
def stage_type_of(gain_m: float, length_km: float, time_trial: bool) -> str:
    if time_trial:
        return "PAS"
    per_km = gain_m / max(length_km, 1.0)
    return "PLN" if per_km < 9.0 else "VAL" if per_km < 17.0 else "HMG"


def tour_stage_ids(year: int, first: int, count: int) -> list[str]:
    """``--tour 2022 --first 3 --count 3`` -> ``['2022-03', '2022-04', '2022-05']``."""
    return [f"{year}-{n:02d}" for n in range(first, first + count)]


def _course_meta(courses_dir: str, stage_id: str) -> dict:
    import csv
    import datetime
    import os

    from peloton.match.stage import parse_course_text

    m = __import__("re").match(r"^(\d{4})-(\d{1,2})$", stage_id)
    if not m:
        raise TourSimError(f"stage {stage_id!r}: expected YEAR-NN (e.g. 2022-03)")
    year, number = int(m.group(1)), int(m.group(2))
    folder = os.path.join(courses_dir, str(year), f"{number:02d}")
    trace, meta = (os.path.join(folder, f"{k}_{year}_{number}.{e}") for k, e in (("trace", "geojson"),
                                                                                ("metadata", "csv")))
    if not (os.path.isfile(trace) and os.path.isfile(meta)):
        raise TourSimError(f"stage {stage_id}: no course in {courses_dir} ({folder})")
    with open(meta, encoding="utf-8") as fh:
        row = next(csv.DictReader(fh, delimiter=";"))
    with open(trace, encoding="utf-8") as fh:
        route = parse_course_text(fh.read(), trace)
    d, mo, y = (int(x) for x in row["date"].split("/"))
    return {"year": year, "number": number, "date": datetime.date(y, mo, d).isoformat(), "route": route,
            "name": f"Stage {number} - {row['depart']} > {row['arrivee']}", "length_km": float(row["long"]),
            "type": stage_type_of(float(row["denivele"]), float(row["long"]), row["type"].strip() == "2")}


def _summits_on(course: Course, climbs_dir: str, max_off_m: float = 100.0) -> list[tuple]:
    """[(polyline m, name, category code)] of the famous climbs (GPX) whose summit the course passes over:
    hors catégorie from 1000 m of climbing, else 1st category."""
    import glob
    import os

    from peloton.match.stage import parse_course_text

    out = []
    for path in sorted(glob.glob(os.path.join(climbs_dir, "*.gpx"))):
        with open(path, encoding="utf-8") as fh:
            pts = np.array([[p[0], p[1], np.nan if p[2] is None else p[2]] for p in parse_course_text(fh.read(), path)])
        top = int(np.nanargmax(pts[:, 2]))
        x, y = course.proj.forward(pts[top:top + 1, 0], pts[top:top + 1, 1])
        d = np.hypot(course.x - x[0], course.y - y[0])
        if d.min() > max_off_m:
            continue
        name = os.path.basename(path)[:-4].split("-from-")[0].replace("-", " ").title()
        gain = pts[top, 2] - np.nanmin(pts[: top + 1, 2])
        at = float(course.cum_m[int(np.argmin(d))])
        if not any(n == name and abs(a - at) < 500.0 for a, n, _ in out):  # both sides of one summit: one summit
            out.append((at, name, "H" if gain >= 1000 else "1"))
    return sorted(out)


def _stage_checkpoints(course: Course, summits: list) -> list[dict]:
    """An intermediate sprint at 60 % of the course and the categorised summits, as the timetable gives them
    (``checkpointTypes``, ``checkpointSummits``; no position: not km marks). Points within 1 km of the start or
    the line are left out (the kernel takes the finish from the result)."""
    length = course.length_m
    cps = [(0.6 * length, {"place": "Sprint", "checkpointTypes": [{"type": "sprint"}], "checkpointSummits": []})]
    cps += [(s_m, {"place": name, "checkpointTypes": [], "checkpointSummits": [{"code": code, "summit": {"name": name}}]})
            for s_m, name, code in summits if 1000.0 < s_m < length - 1000.0]
    return [{**cp, "length": round(s_m / 1000.0, 3)} for s_m, cp in sorted(cps, key=lambda c: c[0])]


def classification_truth(race: SimulatedRace, doc: dict, marks_m: np.ndarray, standings_before):
    """The exact classifications after a simulated stage: its result from the true crossing times (the
    results' own same-time rule), its sprints and summits from the true passages, through the kernel of
    :mod:`peloton.state.classifications` (its scales, its rules). Returns (rows, standings after)."""
    from peloton.match.stage import stage_from_recording
    from peloton.state.classifications import StageClassifier, standings_from_rows
    from peloton.state.results import Crossings, rank_results, same_time_gap_s

    stage = stage_from_recording(doc)
    if standings_before is not None:
        stage.standings_before = standings_before.to_dict()
    ok = np.isfinite(race.finish_t)
    n = int(ok.sum())
    crossings = Crossings(race.bibs[ok], race.finish_t[ok], race.finish_t[ok], np.full(n, stage.length_km or 0.0),
                          np.ones(n, bool), np.zeros(n))
    # the true crossings are exact: no uncertainty (the default would give every one +-0.5 s)
    results = rank_results(stage.stage_id, crossings, same_time_gap_s(stage.stage_type), uncertainty_s=np.zeros(n))
    clf = StageClassifier(stage)
    passages = []
    for km in clf.at_km.tolist():
        j = int(np.argmin(np.abs(marks_m - km * 1000.0)))
        passages.append((race.bibs, race.mark_t[:, j], race.mark_t[:, j]))
    rows = clf.rows(results, passages)
    return rows, standings_from_rows(rows, f"truth after {stage.stage_id}")


def simulate_tour(stage_ids: list[str], out_dir: str, courses_dir: str, climbs_dir: str, riders: int = 176,
                  seed: int = 0, hz: float = 1 / 6, routes: dict | None = None, say=lambda line: None,
                  finale: str = "steady") -> list[str]:
    """The same ``riders`` over consecutive stages: per stage ``out_dir/DATE.json.gz`` (ready for ``peloton
    tour``) and its truth ``DATE.truth.json.gz`` (groups, and ``classifications``: every row after the stage,
    chained from the first). ``routes`` {stage id: [[lat, lon, ele]]} replaces a course (a test's slice).
    ``finale="sprint"``: the flat stages (``PLN``) end in a bunch sprint, the others ride tempo to the line."""
    if finale not in ("steady", "sprint"):
        raise ValueError(f"finale must be 'steady' or 'sprint', not {finale!r}")
    import datetime
    import gzip
    import os

    metas = [_course_meta(courses_dir, sid) for sid in stage_ids]
    for m, sid in zip(metas, stage_ids):
        if m["type"] == "PAS":
            raise TourSimError(f"stage {sid} is a time trial: the simulator rides mass-start road stages only")
    if len({m["year"] for m in metas}) > 1:
        raise TourSimError("the stages of one tour are of one year")
    roster = make_roster(riders, seed, metas[0]["year"])
    standings, paths = None, []
    for m in metas:
        sid = f"{m['year']}-{m['number']:02d}"
        route = (routes or {}).get(sid, m["route"])
        course = Course([p[0] for p in route], [p[1] for p in route],
                        [np.nan if p[2] is None else p[2] for p in route])
        cps = _stage_checkpoints(course, _summits_on(course, climbs_dir))
        marks = np.array([cp["length"] * 1000.0 for cp in cps])
        start = datetime.datetime.fromisoformat(m["date"] + "T11:00:00+00:00").timestamp()
        params = SimParams(riders=riders, hz=hz, seed=seed + 1000 * m["number"], start_epoch=start,
                           finale="sprint" if finale == "sprint" and m["type"] == "PLN" else "steady")
        race = simulate_race(course, params, roster, marks)
        doc = recording_document(race, m["name"], m["date"], m["year"],
                                 {"name": m["name"], "type": m["type"], "stage": m["number"]}, roster, cps)
        rows, standings = classification_truth(race, doc, marks, standings)
        truth = {**truth_document(race), "stage_type": m["type"], "checkpoints": cps,
                 "passages": {cp["place"] + f"@{cp['length']}": {str(int(b)): round(float(t), 3)
                                                               for b, t in zip(race.bibs, race.mark_t[:, j])
                                                               if np.isfinite(t)} for j, cp in enumerate(cps)},
                 "classifications": rows, "standings_after": standings.to_dict()}
        path = os.path.join(out_dir, f"{m['date']}.json.gz")
        for p, d in ((path, doc), (truth_path(path), truth)):
            with open(p, "wb") as fh:
                fh.write(gzip.compress(json.dumps(d, separators=(",", ":")).encode("utf-8"), 6))
        paths.append(path)
        gc = [r for r in rows if r["classification"] == "general" and r["position"] == 1]
        say(f"simulated {m['date']} {m['name']} ({m['type']}, {course.length_m / 1000:.0f} km, "
            f"{len(cps) - 1} summits): leader {gc[0]['bib'] if gc else '?'} -> {path}")
    return paths
