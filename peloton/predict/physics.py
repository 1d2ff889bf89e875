"""The physics of a rider on a bike: the force balance, and the speed it gives at a steady power.

Pure numpy. One force balance serves the predictions (speed at a power on
each 100 m of the profile ahead), the climb efforts (the power an average
speed up a climb took) and the simulator (second by second): gravity and
rolling resistance on the gradient, plus aerodynamic drag in the wind along
the road, the drag shared out by shelter (drafting, a group's turns).
:class:`SpeedTables` are the predictions' precomputed answer: the time to
the finish from every km of the profile at every power of ``POWER_GRID``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peloton.match.profile import Profile

__all__ = ["G", "RiderModel", "TIME_TRIAL_MODEL", "DRAG_CLASSES", "POWER_GRID", "drag_class", "drag_class_of",
           "gravity_and_rolling_n", "drag_n", "resistance_n", "speed_for_power", "SpeedTables"]

G = 9.81
POWER_GRID = np.round(np.arange(0.5, 12.0001, 0.1), 4)


def gravity_and_rolling_n(mass_kg, slope_rad, crr):
    """The force (N) gravity and the tyres hold a rider back with on a slope (an angle, in radians)."""
    return mass_kg * G * (np.sin(slope_rad) + crr * np.cos(slope_rad))


def drag_n(rho, cda_m2, air_ms, shelter=1.0):
    """Aerodynamic drag (N) at ``air_ms`` of air speed (ground speed plus headwind); ``shelter`` is the share
    of a lone rider's drag he still takes (drafting)."""
    return 0.5 * rho * cda_m2 * shelter * air_ms * np.abs(air_ms)


def resistance_n(mass_kg, slope_rad, crr, rho, cda_m2, air_ms, shelter=1.0):
    """The force balance: everything a rider pushes against at a steady speed (N); times speed, the power."""
    return gravity_and_rolling_n(mass_kg, slope_rad, crr) + drag_n(rho, cda_m2, air_ms, shelter)


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


def drag_class_of(size: int) -> int:
    """drag_class for one group size, without arrays."""
    return 0 if size <= 1 else (1 if size <= 7 else 2)


def speed_for_power(wkg, gradient, headwind_ms, rho, model: RiderModel = RiderModel(), drag: float = 1.0):
    """Steady speed (m/s) at power ``wkg`` on each gradient (fraction), by bisection; arrays broadcast."""
    wkg, gradient, headwind_ms, rho = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                                            (wkg, gradient, headwind_ms, rho)))
    power = wkg * model.rider_kg * model.drivetrain
    resist = gravity_and_rolling_n(model.mass, np.arctan(gradient), model.crr)
    lo = np.full(power.shape, 0.3)
    hi = np.full(power.shape, model.max_kph / 3.6)

    def surplus(v):
        return power - v * (resist + drag_n(rho, model.cda_m2, v + headwind_ms, drag))

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


#: Published speeds of a Grand Tour bunch finale on a calm flat road: (km to go, km/h). The last 10 km average
#: ~54 km/h, the last km ~62, the sprint 64-68 (sources in :class:`peloton.sim.simulate.SprintFinale`). One table for
#: the simulator's lead-out and the finale model's bunch run-in (:class:`peloton.predict.finale.BunchRunIn`).
BUNCH_FINALE_KPH = ((20.0, 47.0), (10.0, 50.0), (5.0, 52.0), (3.0, 55.0), (2.0, 58.0), (1.0, 61.0),
                    (0.25, 64.0), (0.0, 68.0))
