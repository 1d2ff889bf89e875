"""Kernel outputs -> table batches (columns named as in ``schemas/``)."""
from __future__ import annotations

import numpy as np

from peloton.ingest import eventtime
from peloton.ingest.feed import FixBatch, dead_letter, fix_json
from peloton.match.matching import Matched
from peloton.match.quality import Quality
from peloton.output.table import Columns

__all__ = ["rider_state_columns", "add_wind", "tracker_fix_columns", "dead_letter_columns", "split_by_time",
           "rejected_dead_letters"]


def _optional(a: np.ndarray | None, n: int, decimals: int) -> np.ndarray:
    return np.full(n, np.nan) if a is None else np.round(a, decimals)


def rider_state_columns(m: Matched, race=None) -> Columns:
    """One ``rider_state`` row per matched fix (with race state when given)."""
    f = m.fixes
    n = len(f)
    nan = np.full(n, np.nan)
    gid = nan if race is None else np.where(race.group_id >= 0, race.group_id, np.nan)
    untimed = m.quality == Quality.CLOCK_OFF  # a gap read off a wrong clock is that clock's offset, not a gap: null
    return Columns("rider_state", {
        "stage_id": np.full(n, f.stage_id, dtype=object),
        "bib": f.bib.astype(np.int64),
        "event_time": eventtime.ms_array(f.t),
        "lat": f.lat,
        "lon": f.lon,
        "km_from_start": np.round(m.km, 5),
        "km_to_finish": np.round(m.km_to_finish, 5),
        "off_course_m": np.round(m.off_m, 1),
        "speed_kph": np.round(m.speed_kph, 2),
        "altitude_m": _optional(m.altitude_m, n, 1),
        "gradient_pct": _optional(m.gradient_pct, n, 2),
        "quality": m.quality.astype(object),
        "sensor_speed_kph": f.sensor_kph,
        "gap_to_leader_s": nan if race is None else np.where(untimed, np.nan, np.round(race.gap_to_leader_s, 2)),
        "gap_to_group_ahead_s": nan if race is None else np.where(untimed, np.nan,
                                                                   np.round(race.gap_to_group_ahead_s, 2)),
        "group_id": gid,  # nullable long: nan = null
    })


def add_wind(groups: Columns, profile) -> Columns:
    """Fill the groups' ``headwind_kph``/``crosswind_kph`` from the wind where each head rides (in place)."""
    if len(groups):
        groups.data["headwind_kph"], groups.data["crosswind_kph"] = profile.wind_kph_columns(
            groups.data["km_to_finish_head"])
    return groups


def tracker_fix_columns(f: FixBatch) -> Columns:
    return Columns("tracker_fix", {
        "stage_id": np.full(len(f), f.stage_id, dtype=object), "bib": f.bib.astype(np.int64),
        "event_time": eventtime.ms_array(f.t), "lat": f.lat, "lon": f.lon, "sensor_speed_kph": f.sensor_kph})


def rejected_dead_letters(stage_id: str, rejected: list, source: str = "match") -> list[dict]:
    """Dead-letter rows of the fixes a step rejected: (FixBatch, reason, detail) as ``match_fixes`` gives them."""

    return [dead_letter(stage_id, reason, fix_json(batch, i), detail, bib=batch.bib[i], t=batch.t[i], source=source)
            for batch, reason, detail in rejected for i in range(len(batch))]


def dead_letter_columns(rows: list[dict]) -> Columns:
    return Columns.from_rows("dead_letter", rows)


def split_by_time(t: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Indices grouped by equal event time: one group per feed tick."""
    if t.size == 0:
        return []
    order = np.argsort(t, kind="stable")
    ts = t[order]
    cuts = np.flatnonzero(np.diff(ts)) + 1
    return list(zip(ts[np.r_[0, cuts]].tolist(), np.split(order, cuts)))
