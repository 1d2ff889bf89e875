"""Reliability figures of the feed gate: hostile messages tried, rejected by reason, crashes, valid fixes lost.

    python benchmarks/fuzz.py [--messages 20000] [--seed 0]

Mutations of real stage 4 messages (``tests/fuzzing.py``: flipped bytes,
truncation, garbage, JSON nodes replaced by wrong types or removed, missing,
forged and wrong-key signatures, oversized payloads, thousands of riders,
long attributes, event times in the future or unreadable, deep nesting,
invalid UTF-8) mixed one to one with the valid messages, through
``peloton.auth.admit`` (limits, signature, parsing) with authentication on
and off. Replays are caught by the pipeline's state, not here.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.auth import Keyring, Limits, admit  # noqa: E402
from peloton.feed import parse_message  # noqa: E402
from tests import fuzzing  # noqa: E402

RECORDING = ROOT.parent / "shared" / "data" / "racecenter-2026" / "2026-07-07.json.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000, help="mutated messages (as many valid ones again)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with gzip.open(RECORDING, "rt", encoding="utf-8") as fh:
        valid = fuzzing.valid_messages(json.load(fh), "s4")
    keyring = Keyring.from_text(fuzzing.KEYS_TEXT)
    rng = random.Random(args.seed)
    counts = {mode: collections.Counter() for mode in ("on", "off")}
    crashes, lost, valid_fixes, tried = [], 0, 0, 0
    started = time.perf_counter()
    for i in range(args.messages):
        data, attrs = valid[i % len(valid)]
        now = int(attrs["event_time"]) / 1000.0
        # a valid message: every fix must come through
        batch, _ = admit("s4", data, attrs, Limits(), keyring, now)
        expected, _ = parse_message("s4", attrs["kind"], data)
        valid_fixes += len(expected)
        lost += len(expected) - len(batch)
        bad, bad_attrs, kind = fuzzing.mutate(data, attrs, rng)
        tried += 2
        for mode, ring in (("on", keyring), ("off", None)):
            try:
                batch, dead = admit("s4", bad, bad_attrs, Limits(), ring, now)
            except Exception:  # noqa: BLE001 - the figure is the number of these
                crashes.append((kind, traceback.format_exc(limit=2)))
                continue
            for d in dead:
                counts[mode][d["reason"]] += 1
            counts[mode]["(fixes let through)"] += len(batch)
    wall = time.perf_counter() - started
    print(f"{tried:,} messages ({args.messages:,} mutated, {args.messages:,} valid) in {wall:.1f} s")
    print(f"crashes: {len(crashes)}; valid fixes lost: {lost} of {valid_fixes:,}")
    for mode in ("on", "off"):
        print(f"authentication {mode}: " + ", ".join(f"{k} {v:,}" for k, v in counts[mode].most_common()))
    for kind, trace in crashes[:5]:
        print(kind, trace)


if __name__ == "__main__":
    main()
