"""The attacks table of RELIABILITY.md: each attack of ``tests/hostile.py`` alone through the live graph.

    python benchmarks/hostile.py [--ticks 30] [--only NAME ...]

A real stretch of stage 4 (ticks 700.., signed), one attack mixed in at a
time, through IngestLive and the live race engine (TestStream, DirectRunner,
authentication on, the wall clock fixed at the stretch's end); final rows
scored against the causal replay of the genuine fixes: genuine rows lost,
rows doubled, forged rows let through, other riders' rows changed
(corrupted), the attacked tracker's own genuine rows changed, and the dead
letters the attack added, by reason (and an attacked tracker's rows flagged
``clock_off``: a clock off from the field's).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.match.stage import stage_from_recording  # noqa: E402
from peloton.sim.publish import PlanParams, plan_messages  # noqa: E402
from tests import hostile  # noqa: E402

RECORDING = Path(os.environ.get("PELOTON_DATA", ROOT.parent / "shared" / "data")) / "racecenter-2026" / "2026-07-07.json.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=30)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    with gzip.open(RECORDING, "rt", encoding="utf-8") as fh:
        recording = json.load(fh)
    stage = stage_from_recording(recording)
    course = stage.course()
    sign = dict(sign_key_id=hostile.KEY_ID, sign_key=hostile.KEY)
    text = json.dumps({**recording, "events": recording["events"][700:700 + args.ticks]})
    old_text = json.dumps({**recording, "events": recording["events"][550:554]})
    plan = plan_messages(text, stage.stage_id, PlanParams(**sign))
    old = plan_messages(old_text, stage.stage_id, PlanParams(**sign))
    clock = max(int(m.attributes["event_time"]) for m in plan) / 1000 + 5.0
    print("| attack | what | rows lost | doubled | forged rows | corrupted (other riders) | "
          "attacked rider's genuine rows changed | dead letters added |")
    print("|---|---|---|---|---|---|---|---|")
    for attack in hostile.attacks(plan, old, course, stage.start_list()):
        if args.only and attack.name not in args.only:
            continue
        started = time.perf_counter()
        rows, dead = hostile.run_live(attack.messages, stage, clock)
        reference, baseline = hostile.reference(plan, stage, course, attack.withheld)
        o = hostile.score(attack, rows, dead, reference, baseline)
        letters = ", ".join(f"{k} {v:,}" for k, v in sorted(o["dead"].items(), key=lambda kv: -kv[1])) or "-"
        if o["flagged"]:  # a tracker whose clock is off: his rows come out, flagged (not dead letters)
            letters = (letters if letters != "-" else "none") + f"; its {o['flagged']} rows flagged clock_off"
        print(f"| {attack.name} | {attack.what} | {o['lost']} | {o['doubled']} | {o['forged']} | {o['corrupted']} | "
              f"{o['victim_changed']} | {letters} |", flush=True)
        print(f"  ({time.perf_counter() - started:.0f} s, {len(rows)} rows)", file=sys.stderr)


if __name__ == "__main__":
    main()
