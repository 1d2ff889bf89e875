"""Columnar batches -> table rows (dicts with the schema's field names)."""
from __future__ import annotations

import numpy as np

from peloton.feed import FixBatch
from peloton.matching import Matched

__all__ = ["rider_state_rows", "tracker_fix_rows", "split_by_time"]


def _nullable(a: np.ndarray | None, n: int, decimals: int | None = None) -> list:
    if a is None:
        return [None] * n
    if decimals is not None:
        a = np.round(a, decimals)
    return [None if v != v else v for v in a.tolist()]  # nan -> None


def _millis(t: np.ndarray) -> list:
    return np.round(t * 1000.0).astype(np.int64).tolist()


def rider_state_rows(m: Matched) -> list[dict]:
    """One ``rider_state`` row per matched fix."""
    f = m.fixes
    n = len(f)
    cols = {
        "stage_id": [f.stage_id] * n,
        "bib": f.bib.tolist(),
        "event_time": _millis(f.t),
        "lat": f.lat.tolist(),
        "lon": f.lon.tolist(),
        "km_from_start": _nullable(m.km, n, 5),
        "km_to_finish": _nullable(m.km_to_finish, n, 5),
        "off_course_m": _nullable(m.off_m, n, 1),
        "speed_kph": _nullable(m.speed_kph, n, 2),
        "altitude_m": _nullable(m.altitude_m, n, 1),
        "gradient_pct": _nullable(m.gradient_pct, n, 2),
        "quality": m.quality.tolist(),
        "sensor_speed_kph": _nullable(f.sensor_kph, n),
    }
    names = list(cols)
    return [dict(zip(names, values)) for values in zip(*cols.values())]


def tracker_fix_rows(f: FixBatch) -> list[dict]:
    n = len(f)
    names = ("stage_id", "bib", "event_time", "lat", "lon", "sensor_speed_kph")
    cols = ([f.stage_id] * n, f.bib.tolist(), _millis(f.t), f.lat.tolist(), f.lon.tolist(),
            _nullable(f.sensor_kph, n))
    return [dict(zip(names, values)) for values in zip(*cols)]


def split_by_time(t: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Indices grouped by equal event time: one group per feed tick."""
    if t.size == 0:
        return []
    order = np.argsort(t, kind="stable")
    ts = t[order]
    cuts = np.flatnonzero(np.diff(ts)) + 1
    return [(float(ts[g[0]]), order_g) for g, order_g in
            zip(np.split(np.arange(ts.size), cuts), np.split(order, cuts))]
