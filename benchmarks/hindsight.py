"""What hindsight buys over the causal (live) path, on stages 4 and 16.

    python benchmarks/hindsight.py [--cache DIR] [--reuse] [--stage 4|16]

Replays each shipped recording twice, ``peloton -q replay RECORDING --out
OUT`` (hindsight: every rider's whole track) and the same with ``--causal``
(the live engine, each 6 s window from the past only), and scores both
against the official feed (the answer key, read here and in
``peloton.evaluate`` only).

The replays go to ``--cache`` (default ``/tmp/peloton-hindsight``, outside
the repository) with their wall and CPU time beside them (``NAME.json``);
``--reuse`` scores a replay already there instead of running it again.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import CASES  # noqa: E402

MODES = ("hindsight", "causal")
STAGES = {"4": CASES["stage 4 (road)"], "16": CASES["stage 16 (ITT, derived course)"]}


def replay(recording: Path, course: Path | None, mode: str, cache: Path, reuse: bool) -> tuple[Path, dict]:
    """Run (or, with ``reuse``, find) one replay; returns its folder and its cost (wall and CPU s)."""
    name = f"{recording.name.split('.')[0]}-{mode}"
    out, cost_file = cache / name, cache / f"{name}.json"
    if reuse and cost_file.exists() and (out / "rider_state").is_dir():
        cost = json.loads(cost_file.read_text())
        if cost.get("rc") == 0:
            return out, cost
    peloton = str(Path(sys.executable).parent / "peloton")
    cmd = [peloton, "-q", "replay", str(recording), "--out", str(out)]
    cmd += (["--course", str(course)] if course else []) + (["--causal"] if mode == "causal" else [])
    cache.mkdir(parents=True, exist_ok=True)
    print(f"running {' '.join(cmd)}", file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(cache / f"{name}.log", "w") as log:
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cost = {"wall_s": time.perf_counter() - started, "rc": rc, "commit": commit,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "load_1min": float(Path("/proc/loadavg").read_text().split()[0]),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    cost_file.write_text(json.dumps(cost, indent=2))
    if rc != 0:
        raise SystemExit(f"replay failed (exit {rc}): see {cache / (name + '.log')}")
    return out, cost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/peloton-hindsight", help="where the replays go (not the repo)")
    ap.add_argument("--reuse", action="store_true", help="score the replays already in --cache")
    ap.add_argument("--stage", choices=sorted(STAGES), action="append", help="only this stage (repeatable)")
    ap.add_argument("--mode", choices=MODES, action="append", help="only run this way (repeatable)")
    ap.add_argument("--run-only", action="store_true", help="run the replays, score nothing")
    args = ap.parse_args()
    cache = Path(args.cache)
    for stage in args.stage or sorted(STAGES, key=int):
        recording, course = STAGES[stage]
        for mode in args.mode or MODES:
            out, cost = replay(recording, course, mode, cache, args.reuse)
            print(f"stage {stage} {mode}: {out} wall {cost['wall_s']:.0f} s, CPU {cost.get('cpu_s', 0):.0f} s",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
