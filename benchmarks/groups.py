"""Group detection against the simulator's truth, on real courses.

    python benchmarks/groups.py [--out bench-results] [--seeds 2]

For each course and seed: ``peloton simulate`` (176 riders, a tick every 6 s,
with the noise, dropouts and placeholders of a real feed), ``peloton replay``
of the recording, then the adjusted Rand index per tick between the true
groups (1 s time-at-position rule on the noise-free positions) and
``rider_state.group_id``. Also scores the same matched positions grouped
without hysteresis (``hysteresis_s=0``), to show what it buys, and the gaps
against the true time-at-position gaps.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.ingest.recording import read_local  # noqa: E402
from peloton.sim.evaluate import evaluate_replay, group_accuracy, read_table  # noqa: E402
from peloton.sim.simulate import truth_path  # noqa: E402
from peloton.state.groups import GroupParams, track_groups  # noqa: E402

COURSES = Path(os.environ.get("PELOTON_DATA", ROOT.parent / "shared" / "data")) / "courses-tdf-2022-2024"
CASES = {
    "2022-03 Vejle > Sonderborg (flat, 182 km)": COURSES / "2022" / "03" / "trace_2022_3.geojson",
    "2023-05 Pau > Laruns (mountains, 163 km)": COURSES / "2023" / "05" / "trace_2023_5.geojson",
    "2022-12 Briancon > Alpe d'Huez (mountains, 165 km)": COURSES / "2022" / "12" / "trace_2022_12.geojson",
    "2022-21 Paris, finishing laps (115 km)": COURSES / "2022" / "21" / "trace_2022_21.geojson",
}


def without_hysteresis(truth: dict, rows: list[dict]) -> dict:
    """The same matched positions grouped by the 1 s rule alone."""
    keep = [r for r in rows if r["quality"] in ("good", "off_route", "neutral") and r["km_from_start"] is not None]
    t = np.array([r["event_time"].timestamp() for r in keep])
    bib = np.array([r["bib"] for r in keep])
    km = np.array([r["km_from_start"] for r in keep])
    speed = np.array([np.nan if r["speed_kph"] is None else r["speed_kph"] for r in keep])
    tl = track_groups(t, bib, km, speed, np.ones(t.size, bool), GroupParams(hysteresis_s=0.0))
    plain = [{**r, "group_id": int(g)} for r, g in zip(keep, tl.group_id)]
    return group_accuracy(truth, plain)


def story_events(truth: dict, events: list[dict]) -> dict:
    """When the race events saw the breakaway go and get caught, against the simulator's truth (s of delay)."""
    brk = set(truth.get("breakaway") or [])
    out = {"attack_delay_s": None, "catch_delay_s": None, "caught": truth.get("caught_at") is not None}
    if not brk or truth.get("attack_at") is None:
        return out
    t = lambda e: e["event_time"].timestamp()  # noqa: E731
    went = [e for e in events if e["event_type"] in ("attack", "split") and brk & set(e["bibs"])
            and t(e) >= truth["attack_at"] - 60]
    if went:
        out["attack_delay_s"] = round(t(went[0]) - truth["attack_at"], 1)
    if truth.get("caught_at") is not None:
        back = [e for e in events if e["event_type"] in ("merge", "bridge") and t(e) >= truth["attack_at"]
                and (brk & set(e["bibs"]) or len(e["bibs"]) > 20) and t(e) >= truth["caught_at"] - 600]
        if back:
            out["catch_delay_s"] = round(t(back[0]) - truth["caught_at"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out) / "simulated"
    out.mkdir(parents=True, exist_ok=True)
    peloton = str(Path(sys.executable).parent / "peloton")
    results = []
    for name, course in CASES.items():
        for seed in range(args.seeds):
            rec = out / f"{course.stem}_seed{seed}.json.gz"
            replay = out / f"{course.stem}_seed{seed}"
            story = subprocess.run([peloton, "-q", "simulate", "--course", str(course), "--out", str(rec),
                                    "--seed", str(seed)], check=True, capture_output=True, text=True).stdout
            subprocess.run([peloton, "-q", "replay", str(rec), "--out", str(replay)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            truth = json.loads(read_local(str(truth_path(str(rec)))))
            rows = read_table(str(replay), "rider_state")
            report = evaluate_replay(read_local(str(rec)), str(replay))
            events = read_table(str(replay), "race_events")
            results.append({"course": name, "seed": seed, "story": story.splitlines()[1].strip(),
                            "events": story_events(truth, events),
                            "groups": group_accuracy(truth, rows), "no_hysteresis": without_hysteresis(truth, rows),
                            "gap_vs_truth_s": report.get("gap_to_leader_error_s", {}).get("vs_official_plus_half")})
            print(f"{name} seed {seed}: ARI median {results[-1]['groups']['median']:.3f}", file=sys.stderr,
                  flush=True)
    (Path(args.out) / "groups.json").write_text(json.dumps(results, indent=2))
    print("| course | seed | ticks | ARI median | ARI mean | ARI p10 | ticks >= 0.95 | without hysteresis: median / mean "
          "| gap vs truth: median / p90 / p99 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        g, h, gap = r["groups"], r["no_hysteresis"], r["gap_vs_truth_s"] or {}
        print(f"| {r['course']} | {r['seed']} | {g['ticks']:,} | {g['median']:.3f} | {g['mean']:.3f} | "
              f"{g['p10']:.3f} | {100 * g['share_at_least_0_95']:.1f} % | {h['median']:.3f} / {h['mean']:.3f} | "
              f"{gap.get('median', float('nan')):.2f} / {gap.get('p90', float('nan')):.2f} / "
              f"{gap.get('p99', float('nan')):.2f} |")
    print("\n| course | seed | breakaway | attack seen after | caught (truth) | catch seen after |")
    print("|---|---|---|---|---|---|")
    for r in results:
        e = r["events"]
        print(f"| {r['course']} | {r['seed']} | {r['story'].split(':')[0]} | {e['attack_delay_s']} s | "
              f"{'yes' if e['caught'] else 'no'} | {e['catch_delay_s'] if e['caught'] else '-'} s |")
    medians = np.array([r["groups"]["median"] for r in results])
    print(f"\nmedian of the per-race ARI medians: {np.median(medians):.3f}; lowest: {medians.min():.3f}")


if __name__ == "__main__":
    main()
