"""Replay speed: the full Beam replay against the no-Beam floor, and the 1 Hz scale run.

    python benchmarks/speed.py [--runs 5] [--scale] [--out bench-results]

* stage 4 (283,782 rows): ``peloton replay`` on the DirectRunner against
  ``benchmarks/floor.py`` (read + parse + match kernels, no Beam), run
  alternately; medians and the per-pair ratio.
* ``--scale``: the stage interpolated to 1 s ticks (made by
  ``scaled_recording.py``), the first hour and the whole stage; wall time
  and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import compare  # noqa: E402

STAGE4 = ROOT.parent / "shared" / "data" / "racecenter-2026" / "2026-07-07.json.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", action="store_true", help="also the 1 Hz runs (minutes)")
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    peloton = str(Path(py).parent / "peloton")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        replay = [peloton, "-q", "replay", str(STAGE4), "--out", f"{tmp}/replay"]
        floor = [py, str(ROOT / "benchmarks" / "floor.py"), str(STAGE4)]
        results["stage4"] = compare(replay, floor, runs=args.runs)
        if args.scale:
            for name, hours in (("1hz_1h", 1.0), ("1hz_full", None)):
                rec = out / f"stage04_{name}.json.gz"
                if not rec.exists():
                    cmd = [py, str(ROOT / "benchmarks" / "scaled_recording.py"), str(STAGE4), str(rec)]
                    subprocess.run(cmd + (["--hours", str(hours)] if hours else []), check=True)
                results[name] = compare([peloton, "-q", "replay", str(rec), "--out", f"{tmp}/{name}"],
                                        runs=max(1, args.runs // 2), warmup=0)
    (out / "speed.json").write_text(json.dumps(results, indent=2))
    s = results["stage4"]
    print(f"stage 4 replay: median {s['a']['wall_s']['median']:.2f} s (min {s['a']['wall_s']['min']:.2f}, "
          f"max {s['a']['wall_s']['max']:.2f}), peak RSS {s['a']['peak_rss_mib']['median']:.0f} MiB")
    print(f"floor (no Beam): median {s['b']['wall_s']['median']:.2f} s, peak RSS {s['b']['peak_rss_mib']['median']:.0f} MiB")
    print(f"replay / floor: median {s['ratio_a_over_b']['median']:.2f} "
          f"(min {s['ratio_a_over_b']['min']:.2f}, max {s['ratio_a_over_b']['max']:.2f})")
    for name in ("1hz_1h", "1hz_full"):
        if name in results:
            r = results[name]["a"]
            print(f"{name}: median {r['wall_s']['median']:.1f} s, peak RSS {r['peak_rss_mib']['max']:.0f} MiB, "
                  f"exit {r['exit_codes']}")


if __name__ == "__main__":
    main()
