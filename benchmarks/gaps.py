"""Time-gap accuracy against the official secToFirstRider / secToITTLead, and a naive baseline.

    python benchmarks/gaps.py [--out bench-results] [--reuse]

Replays both shipped recordings with ``peloton replay`` (``--reuse`` scores
the tables ``accuracy.py`` left in ``--out``), scores ``gap_to_leader_s``
with ``peloton evaluate``'s kernel, and scores the baseline the issue
describes: positions from the naive projection of ``accuracy.py``, the
leader of each tick by distance, and the time since he passed by linear
interpolation of his fixes. The official gaps are whole seconds, truncated,
so both are scored against the middle of the second (official + 0.5 s).

It also splits our errors by whether the official feed's own position of
the rider (its kmToFinish) agrees with ours within 25 m: where it does not,
the official gap inherits the feed's own map-matching error.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import CASES, naive_positions  # noqa: E402
from peloton.evaluate import error_stats, evaluate_replay, official_values, read_table  # noqa: E402
from peloton.recording import read_local  # noqa: E402


def baseline_gaps(recording: Path, course_file: Path | None) -> np.ndarray:
    """(gap error vs official + 0.5 s) of time-since-the-leader-passed on naive positions."""
    fixes, km, _ktf, _off = naive_positions(recording, course_file)
    t, bib = fixes.t, fixes.bib
    ticks, inv = np.unique(t, return_inverse=True)
    order = np.lexsort((-km, inv))
    first = np.r_[True, inv[order][1:] != inv[order][:-1]]
    leader_of_tick = np.empty(ticks.size, dtype=np.int64)
    leader_of_tick[inv[order][first]] = bib[order][first]
    leader = leader_of_tick[inv]
    gap = np.full(t.size, np.nan)
    for lead in np.unique(leader):
        mine = bib == lead
        lt, lk = t[mine], np.maximum.accumulate(km[mine][np.argsort(t[mine])])
        lt = np.sort(lt)
        sel = leader == lead
        gap[sel] = t[sel] - np.interp(km[sel], lk, lt)
    official = official_values(read_local(str(recording)))
    ref = np.array([(official.get((int(b), int(x))) or {}).get("secToFirstRider") for b, x in zip(bib, t)],
                   dtype=float)
    return np.maximum(gap, 0.0) - ref - 0.5


def split_by_official_position(out_dir: Path, recording: Path) -> dict:
    rows = read_table(str(out_dir), "rider_state")
    official = official_values(read_local(str(recording)))
    key = [(r["bib"], int(r["event_time"].timestamp())) for r in rows]
    ref_gap = np.array([(official.get(k) or {}).get("secToFirstRider") for k in key], dtype=float)
    ref_km = np.array([(official.get(k) or {}).get("kmToFinish") for k in key], dtype=float)
    gap = np.array([np.nan if r["gap_to_leader_s"] is None else r["gap_to_leader_s"] for r in rows])
    km = np.array([r["km_to_finish"] for r in rows], dtype=float)
    err = gap - ref_gap - 0.5
    agree = np.abs(km - ref_km) * 1000 <= 25
    return {"official_position_agrees": error_stats(err[agree]),
            "official_position_disagrees": error_stats(err[~agree])}


def itt_by_half_hour(out_dir: Path, recording: Path) -> list:
    """Time-trial gap errors per half hour of event time: the reference is only knowable once its ride was seen."""
    rows = read_table(str(out_dir), "rider_state")
    official = official_values(read_local(str(recording)))
    t = np.array([r["event_time"].timestamp() for r in rows])
    ref = np.array([(official.get((r["bib"], int(x))) or {}).get("secToITTLead") for r, x in zip(rows, t)],
                   dtype=float)
    gap = np.array([np.nan if r["gap_to_leader_s"] is None else r["gap_to_leader_s"] for r in rows])
    err = gap - ref - 0.5
    half = np.floor(t / 1800) * 1800
    out = []
    for h in np.unique(half):
        sel = half == h
        stats = error_stats(err[sel])
        stats["official_rows"] = int(np.isfinite(ref[sel]).sum())
        stats["from_utc"] = time.strftime("%H:%M", time.gmtime(h))
        out.append(stats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    ap.add_argument("--reuse", action="store_true", help="score the replays already in --out")
    args = ap.parse_args()
    peloton = str(Path(sys.executable).parent / "peloton")
    results = {}
    for name, (rec, course) in CASES.items():
        out = Path(args.out) / rec.name.split(".")[0]
        if not (args.reuse and (out / "rider_state").exists()):
            cmd = [peloton, "-q", "replay", str(rec), "--out", str(out)] + (["--course", str(course)] if course else [])
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours = evaluate_replay(read_local(str(rec)), str(out))
        results[name] = {"peloton": {k: v for k, v in ours.items() if k.endswith("_error_s")}}
        if course is None:  # road stage: baseline and the split by the feed's own position
            results[name]["baseline"] = error_stats(baseline_gaps(rec, course))
            results[name]["by_official_position"] = split_by_official_position(out, rec)
        else:
            results[name]["by_half_hour"] = itt_by_half_hour(out, rec)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gaps.json").write_text(json.dumps(results, indent=2))
    print("| recording | reference | method | rows | median s | p90 s | p99 s | max s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        lines = []
        for key, ref in (("gap_to_leader_error_s", "secToFirstRider"), ("itt_gap_error_s", "secToITTLead")):
            if key in r["peloton"]:
                lines.append((ref, "peloton", r["peloton"][key]["vs_official_plus_half"]))
        if "baseline" in r:
            lines.append(("secToFirstRider", "baseline", r["baseline"]))
            for part, stats in r["by_official_position"].items():
                lines.append(("secToFirstRider", f"peloton, {part.replace('_', ' ')}", stats))
        for ref, method, s in lines:
            print(f"| {name} | {ref} | {method} | {s['n']:,} | {s['median']:.2f} | {s['p90']:.2f} | "
                  f"{s['p99']:.2f} | {s['max']:.0f} |")
        for s in r.get("by_half_hour", []):
            if s.get("n"):
                print(f"| {name} | secToITTLead | peloton, from {s['from_utc']} UTC | {s['n']:,} | "
                      f"{s['median']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['max']:.0f} |")


if __name__ == "__main__":
    main()
