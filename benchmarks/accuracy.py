"""Map-matching accuracy against the official kmToFinish, and a naive baseline.

    python benchmarks/accuracy.py [--out bench-results]

Replays both shipped recordings with ``peloton replay``, scores them with
``peloton evaluate``'s kernel, and scores the baseline the issue describes:
shapely's projection of every fix onto the polyline (nearest point, no
history), rescaled piecewise-linearly between the points of interest.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.ingest.feed import concat_batches, parse_message  # noqa: E402
from peloton.ingest.recording import iter_messages, read_local  # noqa: E402
from peloton.match.matching import dedupe  # noqa: E402
from peloton.match.stage import resolve_stage  # noqa: E402
from peloton.sim.evaluate import error_stats, evaluate_replay, official_values  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "racecenter-2026"
CASES = {
    "stage 4 (road)": (DATA / "2026-07-07.json.gz", None),
    "stage 16 (ITT, derived course)": (DATA / "2026-07-21.json.gz",
                                       DATA / "derived" / "2026-07-21_stage16_ITT_course_from_rider17_DERIVED.geojson"),
}


def naive_positions(recording: Path, course_file: Path | None):
    """Nearest-point projection of every fix, rescaled between points of interest only.

    Returns (deduplicated fixes, official km from km 0, km to finish, metres off the line).
    """
    stage = resolve_stage(str(recording), str(course_file) if course_file else None)
    course = stage.course()
    line = shapely.LineString(np.c_[course.x, course.y])
    text = read_local(str(recording))
    fixes = concat_batches([parse_message(stage.stage_id, k, p)[0] for k, p in iter_messages(text)], stage.stage_id)
    fixes, _ = dedupe(fixes)
    px, py = course.proj.forward(fixes.lat, fixes.lon)
    pts = shapely.points(px, py)
    along = shapely.line_locate_point(line, pts)
    off = shapely.distance(line, pts)
    pois = [a for a in stage.anchors if not a["label"] or a["label"].startswith("#")] or stage.anchors
    ax, ay = course.proj.forward([a["lat"] for a in pois], [a["lon"] for a in pois])
    a_along = shapely.line_locate_point(line, shapely.points(ax, ay))
    a_km = np.array([a["km"] for a in pois])
    order = np.argsort(a_along)
    km = np.interp(along, a_along[order], a_km[order])
    ktf = (stage.length_km or course.finish_km) - km
    return fixes, km, ktf, off


def baseline_errors(recording: Path, course_file: Path | None) -> dict:
    fixes, _km, ktf, off = naive_positions(recording, course_file)
    official = official_values(read_local(str(recording)))
    ref = np.array([(official.get((int(b), int(t))) or {}).get("kmToFinish") for b, t in zip(fixes.bib, fixes.t)],
                   dtype=float)
    err = (ktf - ref) * 1000
    return {"on_course": error_stats(err[off <= 50]), "all_matched": error_stats(err)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    args = ap.parse_args()
    results = {}
    peloton = str(Path(sys.executable).parent / "peloton")
    for name, (rec, course) in CASES.items():
        out = Path(args.out) / rec.name.split(".")[0]
        cmd = [peloton, "-q", "replay", str(rec), "--out", str(out)] + (["--course", str(course)] if course else [])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours = evaluate_replay(read_local(str(rec)), str(out))
        results[name] = {"peloton": ours, "baseline": baseline_errors(rec, course)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "accuracy.json").write_text(json.dumps(results, indent=2))
    print("| recording | method | fixes | median m | p95 m | p99 m | max m | > 1 km |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        for method, stats in (("peloton", r["peloton"]["km_to_finish_error_m"]["on_course"]),
                              ("baseline", r["baseline"]["on_course"])):
            print(f"| {name} | {method} | {stats['n']:,} | {stats['median']:.1f} | {stats['p95']:.1f} | "
                  f"{stats['p99']:.1f} | {stats['max']:.0f} | {stats['over_1km']} |")
        dl = r["peloton"]["dead_letter"]
        print(f"| {name} | peloton dead letters | {sum(dl.values()):,} | {json.dumps(dl)} | | | | |")


if __name__ == "__main__":
    main()
