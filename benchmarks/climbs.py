"""Climb times, VAM and power checked on riders' own 1 Hz recordings of the Tourmalet (Tour 2019, stage 14).

    python benchmarks/climbs.py [--out bench-results]

The course is the Tourmalet from Luz-Saint-Sauveur (``climbs/``, GPX with
elevation); the climb's foot is found on its profile by the pipeline's rule
(:func:`peloton.match.profile.find_climbs`) from the summit and the official
length (19 km). Each rider's track goes through the pipeline's own
map-matching and :func:`peloton.state.climbs.climb_efforts`, once at 1 Hz and
once thinned to the live feed's rhythm (a fix every 6 s, a 36 s hole every
minute). The reference needs no matching: the rider's own samples nearest
to the foot and the summit (1 Hz, so within a second or two of the truth).
The power is set beside the mean of Strava's own estimate (``watts_calc``,
another model, with the rider's real weight) over the same seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.ingest.feed import FixBatch  # noqa: E402
from peloton.match.geo import haversine_m  # noqa: E402
from peloton.match.matching import match_fixes  # noqa: E402
from peloton.match.profile import build_profile, find_climbs  # noqa: E402
from peloton.match.stage import Stage, read_course_file  # noqa: E402
from peloton.state.climbs import climb_efforts  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIMB = DATA / "climbs" / "col-du-tourmalet-from-luz-saint-sauveur.gpx"
TRACKS = DATA / "strava-tdf2019-stage14"
OFFICIAL_LENGTH_KM = 19.0
EPOCH = 1_563_000_000.0  # the recordings have no clock: any origin will do


def tourmalet():
    route = read_course_file(str(CLIMB))
    stage = Stage(stage_id="tourmalet", name="Col du Tourmalet from Luz-Saint-Sauveur", route=route)
    course = stage.course()
    ele = np.array([p[2] for p in route], dtype=float)
    summit_s = float(course.cum_m[int(np.nanargmax(ele))])
    summit_km = float(course.km_at(np.array([summit_s]))[0])
    checkpoints = [{"km": summit_km, "place": "Col du Tourmalet", "summits": [
        {"code": "H", "length": OFFICIAL_LENGTH_KM * 1000, "summit": {"name": "Col du Tourmalet"}}]}]
    profile = build_profile(course, checkpoints)
    profile.climbs = find_climbs(profile, checkpoints)
    return course, profile


def thin_like_the_feed(t: np.ndarray) -> np.ndarray:
    """Keep a fix every 6 s, minus the feed's 36 s hole every minute."""
    keep = (np.round(t) % 6 == 0) & ((np.round(t) % 60) < 24)
    return np.flatnonzero(keep)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    args = ap.parse_args()
    course, profile = tourmalet()
    climb = profile.climbs[0]
    foot_lat, foot_lon = course.point_at(course.s_at_km(np.array([climb.start_km])))
    top_lat, top_lon = course.point_at(course.s_at_km(np.array([climb.summit_km])))
    result = {"climb": {"start_km": round(climb.start_km, 2), "summit_km": round(climb.summit_km, 2),
                        "length_km": round(climb.length_km, 2), "gain_m": round(climb.gain_m, 1),
                        "official_length_km": OFFICIAL_LENGTH_KM}, "riders": {}}
    for path in sorted(TRACKS.glob("*.json")):
        rider = path.name.split("-14th")[0]
        d = json.loads(path.read_text())
        t = EPOCH + np.asarray(d["time"], dtype=float)
        ll = np.asarray(d["latlng"], dtype=float)
        # reference: the rider's own samples nearest to the foot and the summit
        near_foot = int(np.argmin(haversine_m(ll[:, 0], ll[:, 1], foot_lat[0], foot_lon[0])))
        near_top = int(np.argmin(haversine_m(ll[:, 0], ll[:, 1], top_lat[0], top_lon[0])))
        miss = (float(haversine_m(ll[near_foot, 0], ll[near_foot, 1], foot_lat[0], foot_lon[0])),
                float(haversine_m(ll[near_top, 0], ll[near_top, 1], top_lat[0], top_lon[0])))
        reference = float(t[near_top] - t[near_foot]) if max(miss) < 50 else None
        watts = np.asarray(d.get("watts_calc") or [np.nan] * t.size, dtype=float)
        strava_w = float(np.nanmean(watts[near_foot:near_top + 1])) if reference else None
        row = {"reference_s": reference, "reference_miss_m": [round(m, 1) for m in miss],
               "strava_watts_calc_mean_w": None if strava_w is None else round(strava_w, 0)}
        for label, idx in (("1hz", np.arange(t.size)), ("feed_6s", thin_like_the_feed(t - EPOCH))):
            fixes = FixBatch("tourmalet", np.full(idx.size, 1, dtype=np.int64), t[idx], ll[idx, 0], ll[idx, 1],
                             np.full(idx.size, np.nan))
            m, _rejected, _dup = match_fixes(fixes, course)
            usable = np.isin(m.quality, ("good", "off_route", "finished", "neutral"))
            efforts = climb_efforts("tourmalet", m.fixes.bib, m.fixes.t, m.km, usable, profile)
            e = efforts[0] if efforts else None
            row[label] = None if e is None else {
                "climb_time_s": e["climb_time_s"], "vam_m_per_h": e["vam_m_per_h"], "power_wkg": e["power_wkg"],
                "avg_speed_kph": e["avg_speed_kph"],
                "error_s": None if reference is None else round(e["climb_time_s"] - reference, 1)}
        result["riders"][rider] = row
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "climbs.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["climb"]))
    print("| rider | reference (own samples) | ours 1 Hz | error | ours 6 s feed | error | VAM m/h | W/kg (68 kg) | "
          "Strava watts_calc W |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda s: "-" if s is None else f"{int(s // 60)}:{s % 60:04.1f}"  # noqa: E731
    for rider, r in result["riders"].items():
        a, b = r["1hz"] or {}, r["feed_6s"] or {}
        print(f"| {rider} | {fmt(r['reference_s'])} | {fmt(a.get('climb_time_s'))} | {a.get('error_s')} s | "
              f"{fmt(b.get('climb_time_s'))} | {b.get('error_s')} s | {a.get('vam_m_per_h')} | {a.get('power_wkg')} | "
              f"{r['strava_watts_calc_mean_w']} |")


if __name__ == "__main__":
    main()
