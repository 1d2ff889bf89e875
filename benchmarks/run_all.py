"""Run every benchmark behind BENCHMARKS.md (accuracy, then speed with the scale runs)."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script, extra in (("accuracy.py", []), ("gaps.py", ["--reuse"]), ("speed.py", ["--scale"])):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *extra, *sys.argv[1:]], check=True)
