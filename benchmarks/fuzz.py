"""Reliability figures of the feed gate: hostile messages tried, rejected by reason, crashes, valid fixes lost.

    python benchmarks/fuzz.py [--messages 20000] [--seed 0]

Mutations of real stage 4 messages (``tests/fuzzing.py``: flipped bytes,
truncation, garbage, JSON nodes replaced by wrong types or removed, missing,
forged and wrong-key signatures, oversized payloads, thousands of riders
(keys plain or escaped), long attributes, event times in the future,
unreadable or beyond any date, payload times ahead of the attribute, signed
attributes changed, bibs of the wrong type or not on the start list, deep
nesting, invalid UTF-8) mixed one to one with the valid messages, through
``peloton.ingest.gate.Gate.admit`` (limits, signature, parsing with the start list, time
checks) with authentication on and off. Replays and stale messages are
caught by the pipeline's state (``benchmarks/hostile.py``), not here.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.ingest.auth import Keyring, Limits  # noqa: E402
from peloton.ingest.feed import parse_message  # noqa: E402
from peloton.ingest.gate import Gate  # noqa: E402
from tests import fuzzing  # noqa: E402

RECORDING = Path(os.environ.get("PELOTON_DATA", ROOT.parent / "shared" / "data")) / "racecenter-2026" / "2026-07-07.json.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000, help="mutated messages (as many valid ones again)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with gzip.open(RECORDING, "rt", encoding="utf-8") as fh:
        recording = json.load(fh)
    valid = fuzzing.valid_messages(recording, "s4")
    start_list = fuzzing.start_list(recording)
    keyring = Keyring.from_text(fuzzing.KEYS_TEXT)
    gate = Gate.of("s4", start_list)
    rng = random.Random(args.seed)
    counts = {mode: collections.Counter() for mode in ("on", "off")}
    crashes, lost, valid_fixes, tried = [], 0, 0, 0
    impossible = {"on": 0, "off": 0}
    started = time.perf_counter()
    for i in range(args.messages):
        data, attrs = valid[i % len(valid)]
        now = int(attrs["event_time"]) / 1000.0
        # a valid message: every fix must come through
        batch, _ = gate.admit(data, attrs, keyring, now)
        expected, _ = parse_message("s4", attrs["kind"], data)
        valid_fixes += len(expected)
        lost += len(expected) - len(batch)
        bad, bad_attrs, kind = fuzzing.mutate(data, attrs, rng)
        tried += 2
        for mode, ring in (("on", keyring), ("off", None)):
            try:
                batch, dead = gate.admit(bad, bad_attrs, ring, now)
            except Exception:  # noqa: BLE001 - the figure is the number of these
                crashes.append((kind, traceback.format_exc(limit=2)))
                continue
            for d in dead:
                counts[mode][d["reason"]] += 1
            counts[mode]["(fixes let through)"] += len(batch)
            # what must never pass: a bib off the start list, a time ahead of the clock
            impossible[mode] += int((~np.isin(batch.bib, start_list)).sum()
                                    + (batch.t > now + Limits().future_tolerance_s).sum())
    wall = time.perf_counter() - started
    print(f"{tried:,} messages ({args.messages:,} mutated, {args.messages:,} valid) in {wall:.1f} s")
    print(f"crashes: {len(crashes)}; valid fixes lost: {lost} of {valid_fixes:,}; let through off the start list "
          f"or ahead of the clock: {impossible['on']} (authentication on), {impossible['off']} (off)")
    for mode in ("on", "off"):
        print(f"authentication {mode}: " + ", ".join(f"{k} {v:,}" for k, v in counts[mode].most_common()))
    for kind, trace in crashes[:5]:
        print(kind, trace)


if __name__ == "__main__":
    main()
