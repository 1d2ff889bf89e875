"""Climb efforts: each rider's time up each categorised climb, its VAM and an estimate of the power it took.

Pure numpy, from matched positions (official km) and times. A rider's
passages at the foot and the summit are the pipeline's one rule
(:func:`peloton.match.passage.passage_times`, as for gaps and time trials): a
tracker silent at the foot or the summit gives no time rather than a wrong
one. Fixes off the drawn route (hairpins the polyline cuts) still count:
their km is good.

The power is a physical estimate, not a measurement: the rider at his
average speed up the climb's real profile (gradient and wind per 100 m, air
density from the checkpoints' temperature and the altitude), with the
:class:`peloton.predict.physics.RiderModel` (68 kg rider, 8 kg bike, CdA 0.32 m^2
sitting up on a climb, Crr 0.004, drivetrain 97.6 %), riding alone: drafting
is ignored, so a rider sheltered in a fast group is credited a little too
much on shallow climbs.
"""
from __future__ import annotations

import numpy as np

from peloton.match.passage import passage_times
from peloton.match.profile import Climb, Profile
from peloton.predict.physics import RiderModel, resistance_n

__all__ = ["climb_power_wkg", "climb_efforts", "effort_rows", "CLIMB_MODEL"]

#: On a climb a rider sits up: more drag than on the drops.
CLIMB_MODEL = RiderModel(cda_m2=0.32)


def climb_power_wkg(profile: Profile, start_km: float, summit_km: float, seconds,
                    model: RiderModel = CLIMB_MODEL) -> np.ndarray:
    """Average power (W/kg of rider) to ride ``start_km`` -> ``summit_km`` in each of ``seconds`` at an even
    speed: one row of the profile's steps per time, no loop over riders."""
    seconds = np.asarray(seconds, dtype=float)
    inside = (profile.step_mid_km >= start_km) & (profile.step_mid_km <= summit_km)
    ok = np.isfinite(seconds) & (seconds > 0)
    if not inside.any():
        return np.full(seconds.shape, np.nan)
    step_m = np.diff(profile.km)[inside] * 1000.0
    secs = np.where(ok, seconds, 1.0)
    v = (step_m.sum() / secs)[..., None]  # (..., 1) against the climb's steps
    force = resistance_n(model.mass, np.arctan(profile.gradient[inside]), model.crr, profile.rho()[inside],
                         model.cda_m2, v + profile.headwind_ms[inside])
    work = np.sum(force * step_m, axis=-1)  # J at an even speed
    return np.where(ok, work / secs / model.drivetrain / model.rider_kg, np.nan)


def climb_efforts(stage_id: str, bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray,
                  profile: Profile, climbs: list[Climb] | None = None, finish_km: float | None = None,
                  model: RiderModel = CLIMB_MODEL) -> list[dict]:
    """One row per rider per climb he was seen riding up from foot to summit."""
    climbs = profile.climbs if climbs is None else climbs
    finish_km = profile.finish_km if finish_km is None else finish_km
    if not climbs:
        return []
    keep = np.flatnonzero(usable & np.isfinite(km))
    order = keep[np.lexsort((t[keep], bib[keep]))]
    starts = np.array([c.start_km for c in climbs])
    summits = np.array([c.summit_km for c in climbs])
    riders, first = np.unique(bib[order], return_index=True)
    bounds = np.r_[first, order.size]
    at_start = np.full((riders.size, len(climbs)), np.nan)
    at_summit = np.full((riders.size, len(climbs)), np.nan)
    for r in range(riders.size):  # one iteration per rider, vectorised over his fixes and the climbs
        idx = order[bounds[r]:bounds[r + 1]]
        at_start[r] = passage_times(t[idx], km[idx], starts)
        at_summit[r] = passage_times(t[idx], km[idx], summits)
    return effort_rows(stage_id, riders, climbs, at_start, at_summit, profile, finish_km, model)


def effort_rows(stage_id: str, riders: np.ndarray, climbs: list[Climb], at_start: np.ndarray, at_summit: np.ndarray,
                profile: Profile, finish_km: float, model: RiderModel = CLIMB_MODEL) -> list[dict]:
    """One row per (rider, climb) whose passages at the foot and the summit are both known (``riders`` x
    ``climbs`` matrices of epoch s, nan unknown): the replay gives them all at once, the live engine a rider's
    as he passes the summit."""
    seconds = at_summit - at_start
    ok = np.isfinite(seconds) & (seconds > 0)
    starts = np.array([c.start_km for c in climbs])
    summits = np.array([c.summit_km for c in climbs])
    power = np.full(seconds.shape, np.nan)
    for c in range(len(climbs)):
        rows = np.flatnonzero(ok[:, c])
        if rows.size:
            power[rows, c] = climb_power_wkg(profile, starts[c], summits[c], seconds[rows, c], model)
    out = []
    for r, c in zip(*np.nonzero(ok)):
        climb = climbs[c]
        secs = float(seconds[r, c])
        length_km = climb.length_km
        out.append({
            "stage_id": stage_id, "event_time": int(round(at_summit[r, c] * 1000)), "bib": int(riders[r]),
            "climb": climb.name, "category": climb.category, "km_to_finish_summit": round(finish_km - climb.summit_km, 3),
            "length_km": round(length_km, 3), "gain_m": round(climb.gain_m, 1),
            "avg_gradient_pct": round(100.0 * climb.gain_m / (length_km * 1000.0), 2) if length_km > 0 else None,
            "start_time": int(round(at_start[r, c] * 1000)), "climb_time_s": round(secs, 1),
            "avg_speed_kph": round(length_km / secs * 3600.0, 2),
            "vam_m_per_h": round(climb.gain_m / secs * 3600.0, 0),
            "power_wkg": None if not np.isfinite(power[r, c]) else round(float(power[r, c]), 2),
        })
    return out
