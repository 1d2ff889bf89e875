"""The course ahead as numbers: elevation, gradient, heading and wind on a regular km grid, and the climbs.

Pure numpy. Everything that predicts (arrival times, catches) or enriches
(climb efforts, crosswinds) reads the course through a :class:`Profile`, on
the *official* kilometre (km 0 at the real start), so that it lines up with
``km_to_finish`` in the tables and with the timetable.

Weather comes from the timetable's checkpoints (``checkpointMeteo``): a
wind force and a compass direction (French letters: O is west) at a few
places along the route. The force is read on the Beaufort scale (a mean
speed 10 m above open ground) and brought down to a rider's height with the
logarithmic wind profile (1.2 m over roughness 0.1 m: 0.54 of it); every
point of the course takes the reading of the nearest checkpoint by km.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from peloton.match.course import Course, chord_gradient

__all__ = ["Profile", "Climb", "Checkpoint", "Meteo", "build_profile", "beaufort_to_ms", "compass_to_deg",
           "air_density", "find_climbs", "crosswind_sections"]

STEP_KM = 0.1
_COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]
#: Wind at a rider's height over the 10 m wind of a forecast: ln(1.2 / 0.1) / ln(10 / 0.1).
RIDER_HEIGHT_WIND = float(np.log(1.2 / 0.1) / np.log(10.0 / 0.1))
CROSSWIND_KPH = 12.0  # a crosswind this strong at a rider's height (22 km/h forecast, Beaufort 4), held for ...
CROSSWIND_MIN_KM = 2.0  # ... this far, can split a bunch into echelons


def beaufort_to_ms(force) -> np.ndarray:
    """Mean wind speed (m/s) of a Beaufort force: 0.836 B^1.5 (WMO)."""
    return 0.836 * np.power(np.clip(np.asarray(force, dtype=float), 0, 12), 1.5)


def compass_to_deg(direction: str) -> float | None:
    """'NNE' -> 22.5, French 'ONO' -> 292.5 (O = ouest); None when unreadable."""
    d = str(direction or "").strip().upper().replace("O", "W")
    return 22.5 * _COMPASS.index(d) if d in _COMPASS else None


def air_density(temperature_c, altitude_m) -> np.ndarray:
    """kg/m^3 from the standard atmosphere's pressure at altitude and the air temperature (dry air)."""
    pressure = 101325.0 * np.power(1.0 - 2.25577e-5 * np.asarray(altitude_m, dtype=float), 5.25588)
    return pressure / (287.05 * (np.asarray(temperature_c, dtype=float) + 273.15))


@dataclass(frozen=True)
class Meteo:
    km: float
    wind_ms: float  # at a rider's height
    wind_from_deg: float
    temperature_c: float | None


@dataclass(frozen=True)
class Checkpoint:
    """A point ahead worth a prediction: an intermediate sprint, a categorised summit, the finish."""

    name: str
    kind: str  # sprint | summit | finish
    km: float
    category: str = ""  # summits: 4, 3, 2, 1, H (hors catégorie)


@dataclass(frozen=True)
class Climb:
    name: str
    category: str
    start_km: float  # found from the profile: the lowest point before the summit
    summit_km: float
    official_length_km: float | None
    official_gradient_pct: float | None
    start_ele_m: float
    summit_ele_m: float

    @property
    def length_km(self) -> float:
        return self.summit_km - self.start_km

    @property
    def gain_m(self) -> float:
        return self.summit_ele_m - self.start_ele_m


@dataclass
class Profile:
    """The course on a 100 m grid of official km."""

    km: np.ndarray  # 0 .. finish
    ele: np.ndarray  # m (0 where the course has no elevation)
    gradient: np.ndarray  # per grid step, fraction (0.05 = 5 %), len(km) - 1
    heading_deg: np.ndarray  # per step, clockwise from north
    headwind_ms: np.ndarray  # per step, + against the riders
    crosswind_ms: np.ndarray  # per step, + from the riders' right
    temperature_c: np.ndarray  # per step
    finish_km: float
    has_elevation: bool
    checkpoints: list = field(default_factory=list)  # [Checkpoint], by km
    climbs: list = field(default_factory=list)  # [Climb], by km
    crosswinds: list = field(default_factory=list)  # [(start_km, end_km, mean crosswind kph)]

    @property
    def step_mid_km(self) -> np.ndarray:
        return 0.5 * (self.km[1:] + self.km[:-1])

    def altitude_at(self, km) -> np.ndarray:
        return np.interp(km, self.km, self.ele)

    def wind_at(self, km) -> tuple[np.ndarray, np.ndarray]:
        """(headwind, crosswind) in m/s where the riders are."""
        i = np.clip(np.searchsorted(self.km, km, side="right") - 1, 0, self.headwind_ms.size - 1)
        return self.headwind_ms[i], self.crosswind_ms[i]

    def wind_kph_columns(self, km_to_finish) -> tuple[np.ndarray, np.ndarray]:
        """(headwind, crosswind) in km/h, rounded, for positions given as km to the finish (nan stays nan)."""
        ktf = np.asarray(km_to_finish, dtype=float)
        head, cross = self.wind_at(np.nan_to_num(self.finish_km - ktf))
        known = np.isfinite(ktf)
        return (np.where(known, np.round(head * 3.6, 1), np.nan), np.where(known, np.round(cross * 3.6, 1), np.nan))

    def rho(self) -> np.ndarray:
        """Air density per step."""
        mid = 0.5 * (self.ele[1:] + self.ele[:-1])
        return air_density(self.temperature_c, mid)


def _meteo_readings(checkpoints: list[dict]) -> list[Meteo]:
    out = []
    for cp in checkpoints:
        m = cp.get("meteo") or {}
        deg = compass_to_deg(m.get("windDirection"))
        force = m.get("windForce")
        if deg is None or force is None:
            continue
        temp = m.get("temperature")
        out.append(Meteo(float(cp.get("km") or 0.0), float(beaufort_to_ms(force)) * RIDER_HEIGHT_WIND, deg,
                         None if temp is None else float(temp)))
    return out


def _checkpoints_ahead(checkpoints: list[dict], finish_km: float) -> list[Checkpoint]:
    out = []
    for cp in checkpoints:
        km = float(cp.get("km") or 0.0)
        types = set(cp.get("types") or [])
        name = str(cp.get("place") or "")
        if "arrival" in types or km >= finish_km - 1e-6:
            continue
        if "sprint" in types:
            out.append(Checkpoint(name, "sprint", km))
        for s in cp.get("summits") or []:
            summit = (s or {}).get("summit") or {}
            code = str((s or {}).get("code") or "")
            if code and code not in ("1", "2", "3", "4", "H", "HC"):
                continue  # time-trial check points carry a summit with no category
            if not code:
                continue
            out.append(Checkpoint(str(summit.get("name") or name), "summit", km, "H" if code == "HC" else code))
    out.append(Checkpoint("finish", "finish", finish_km))
    return sorted(out, key=lambda c: c.km)


def build_profile(course: Course, checkpoints: list[dict] | None = None, step_km: float = STEP_KM) -> Profile:
    """The stage's profile from its course and its timetable checkpoints (``Stage.checkpoints``)."""
    checkpoints = checkpoints or []
    finish = float(course.finish_km)
    km = np.r_[np.arange(0.0, finish, step_km), finish]
    s = course.s_at_km(km)
    alt = course.altitude_at(s)
    has_ele = alt is not None
    ele = np.asarray(alt, dtype=float) if has_ele else np.zeros(km.size)
    run_m = np.diff(km) * 1000.0
    gradient = np.clip(chord_gradient(ele[:-1], ele[1:], run_m), -0.25, 0.25)
    x = np.interp(s, course.cum_m, course.x)
    y = np.interp(s, course.cum_m, course.y)
    heading = np.degrees(np.arctan2(np.diff(x), np.diff(y))) % 360.0
    mid = 0.5 * (km[1:] + km[:-1])
    readings = _meteo_readings(checkpoints)
    if readings:
        at = np.array([m.km for m in readings])
        nearest = np.argmin(np.abs(mid[:, None] - at[None, :]), axis=1)
        wind = np.array([m.wind_ms for m in readings])[nearest]
        wind_from = np.array([m.wind_from_deg for m in readings])[nearest]
        temps = np.array([np.nan if m.temperature_c is None else m.temperature_c for m in readings])
        temp = temps[nearest]
        temp = np.where(np.isfinite(temp), temp, np.nanmean(temps) if np.isfinite(temps).any() else 20.0)
    else:
        wind, wind_from, temp = np.zeros(mid.size), np.zeros(mid.size), np.full(mid.size, 20.0)
    rel = np.radians(wind_from - heading)
    profile = Profile(km=km, ele=ele, gradient=gradient, heading_deg=heading, headwind_ms=wind * np.cos(rel),
                      crosswind_ms=wind * np.sin(rel), temperature_c=temp, finish_km=finish, has_elevation=has_ele,
                      checkpoints=_checkpoints_ahead(checkpoints, finish))
    profile.climbs = find_climbs(profile, checkpoints) if has_ele else []
    profile.crosswinds = crosswind_sections(profile)
    return profile


def find_climbs(profile: Profile, checkpoints: list[dict]) -> list[Climb]:
    """The categorised climbs of the timetable, each with its start found on the profile.

    The search reaches back 1.5 times the official length (or 25 km when the
    timetable gives none), and never past the previous summit.
    """
    climbs, prev_summit = [], 0.0
    for cp in sorted(checkpoints, key=lambda c: float(c.get("km") or 0.0)):
        summit_km = float(cp.get("km") or 0.0)
        for s in cp.get("summits") or []:
            code = str((s or {}).get("code") or "")
            if code not in ("1", "2", "3", "4", "H", "HC"):
                continue
            length = (s or {}).get("length")
            length_km = float(length) / 1000.0 if length else None
            try:
                grad = float(str((s or {}).get("state")).replace(",", "."))
            except ValueError:
                grad = None
            reach = 1.5 * length_km if length_km else 25.0
            lo = max(summit_km - reach, prev_summit, 0.0)
            window = np.flatnonzero((profile.km >= lo) & (profile.km <= summit_km))
            if window.size < 2:
                continue
            # the start that makes the hardest climb by the FIETS measure (gain^2 / length): a false flat
            # before the climb only counts if it rises at half the climb's gradient or more
            gain = profile.altitude_at(summit_km) - profile.ele[window]
            length = np.maximum(summit_km - profile.km[window], STEP_KM)
            start = window[np.argmax(np.where(gain > 0, gain, 0.0) ** 2 / length)]
            name = str(((s or {}).get("summit") or {}).get("name") or cp.get("place") or "")
            climbs.append(Climb(name, "H" if code == "HC" else code, float(profile.km[start]), summit_km,
                                length_km, grad, float(profile.ele[start]), float(profile.altitude_at(summit_km))))
            prev_summit = summit_km
    return climbs


def crosswind_sections(profile: Profile, min_kph: float = CROSSWIND_KPH,
                       min_km: float = CROSSWIND_MIN_KM) -> list[tuple[float, float, float]]:
    """Stretches where the crosswind is at least ``min_kph`` for at least ``min_km``: where echelons form."""
    strong = np.abs(profile.crosswind_ms) * 3.6 >= min_kph
    if not strong.any():
        return []
    edges = np.diff(np.r_[0, strong.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for a, b in zip(starts, ends):
        if profile.km[b] - profile.km[a] >= min_km:
            out.append((float(profile.km[a]), float(profile.km[b]),
                        float(np.mean(np.abs(profile.crosswind_ms[a:b])) * 3.6)))
    return out
