"""Scale on simulated load: ten times the riders, and one tick a second for a whole stage.

    python benchmarks/scale_sim.py [--out bench-results] [--runs 2]

``peloton simulate`` on a real flat course (2022 stage 3, 182 km) makes the
recordings (once; they are kept in ``--out``): 1,760 riders with a tick every
6 s, and 176 riders with a tick every second. Each is replayed with
``peloton replay`` on the DirectRunner; wall time and peak RSS of the whole
process, median of ``--runs`` runs, and the group accuracy of the last one.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import compare  # noqa: E402
from peloton.ingest.recording import read_local  # noqa: E402
from peloton.sim.evaluate import group_accuracy, read_table  # noqa: E402
from peloton.sim.simulate import truth_path  # noqa: E402

COURSE = ROOT.parent / "shared" / "data" / "courses-tdf-2022-2024" / "2022" / "03" / "trace_2022_3.geojson"
CASES = {"1760 riders, 6 s ticks": ["--riders", "1760", "--hz", str(1 / 6)],
         "176 riders, 1 s ticks": ["--riders", "176", "--hz", "1"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peloton = str(Path(sys.executable).parent / "peloton")
    results = {name: {} for name in CASES}
    recordings = {}
    for name, extra in CASES.items():
        rec = out / ("scale_" + "_".join(x.strip("-").replace(".", "") for x in extra) + ".json.gz")
        if not rec.exists():
            sim = compare([peloton, "-q", "simulate", "--course", str(COURSE), "--out", str(rec), "--seed", "7",
                           *extra], runs=1, warmup=0)
            results[name]["simulate"] = sim["a"]
        recordings[name] = rec
    with tempfile.TemporaryDirectory() as tmp:
        # time every replay before this process reads any table: a child's peak RSS counts from the
        # parent's size at fork, so the parent must still be small
        for i, (name, rec) in enumerate(recordings.items()):
            replay = [peloton, "-q", "replay", str(rec), "--out", f"{tmp}/replay{i}"]
            results[name]["replay"] = compare(replay, runs=args.runs, warmup=0)["a"]
        for i, (name, rec) in enumerate(recordings.items()):
            truth = json.loads(read_local(truth_path(str(rec))))
            rows = read_table(f"{tmp}/replay{i}", "rider_state")
            results[name]["rows"] = len(rows)
            results[name]["groups"] = group_accuracy(truth, rows)
            del rows, truth
            r = results[name]
            print(f"{name}: {r['rows']:,} rider_state rows; replay median {r['replay']['wall_s']['median']:.1f} s, "
                  f"peak RSS {r['replay']['peak_rss_mib']['max']:.0f} MiB; ARI median "
                  f"{r['groups']['median']:.3f}, mean {r['groups']['mean']:.3f}", flush=True)
    (out / "scale_sim.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
