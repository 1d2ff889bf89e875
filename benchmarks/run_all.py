"""Run every benchmark behind BENCHMARKS.md: accuracy, gaps, groups on simulated races, speed and scale."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script, extra in (("accuracy.py", []), ("gaps.py", ["--reuse"]), ("groups.py", []),
                      ("speed.py", ["--scale"]), ("scale_sim.py", [])):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *extra, *sys.argv[1:]], check=True)
