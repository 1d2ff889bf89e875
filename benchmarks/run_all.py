"""Run every benchmark behind BENCHMARKS.md and RELIABILITY.md.

    python benchmarks/run_all.py [--live]

Accuracy, gaps, passage times by bracket, groups on simulated races, speed and scale, predictions
(finish times, catches on simulated races), climb efforts, the feed gate's
fuzzing, the finish (gaps after the line, results; then, from its replays, who
the reference is and the riders' own GPS noise floor), the finale's predictions,
and what hindsight buys over the causal path (stages 4 and 16: the longest,
about 15 minutes); with ``--live`` also the live latency runs on the Pub/Sub
emulator (about 20 minutes), the hostile attacks through the live graph and
the Race Center bridge.
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

live = "--live" in sys.argv[1:]
runs = [("accuracy.py", []), ("gaps.py", ["--reuse"]),
        ("passage.py", [str(HERE.parent / "bench-results" / "2026-07-07")]),  # accuracy.py's stage 4 replay
        ("groups.py", []), ("speed.py", ["--scale"]),
        ("scale_sim.py", []), ("predictions.py", []), ("climbs.py", []), ("fuzz.py", []),
        ("finish.py", []), ("reference.py", []), ("noise_floor.py", []), ("finale.py", []), ("hindsight.py", [])]
if live:
    runs.append(("live_latency.py", ["--seconds", "90", "--tick-speeds", "1,10,30,100", "--fix-speeds", "1,3,10"]))
    runs += [("hostile.py", []), ("racecenter_bridge.py", [])]
for script, extra in runs:
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *extra], check=True)
