"""How wrong a passage time read across a hole is, by the hole's length: what sets the passage rule's brackets.

    peloton -q replay RECORDING --out DIR && python benchmarks/passage.py DIR

Every usable fix of a replay (its ``rider_state``) is timed at its own km
with its neighbours within +-w seconds left out (w from 10 to 80 s): from
the nearest fixes left on each side, linearly in km, and linearly on the
road clock (:class:`peloton.state.gaps.RoadClock`, learnt from every rider's
fixes, the left-out ones included: 1 rider in 180, slightly optimistic).
The error is against the fix's own time, binned by the length of the
bracket that was read across. :data:`peloton.match.passage.MAX_BRACKET_S` (linear) and
:data:`peloton.match.passage.MAX_BRACKET_ON_CLOCK_S` (road clock) come from this table.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peloton.sim.evaluate import read_table  # noqa: E402
from peloton.state.gaps import RoadClock  # noqa: E402

LEFT_OUT_S = (10, 25, 40, 50, 65, 80)
BIN_S = 30


def bracket_errors(bib: np.ndarray, t: np.ndarray, km: np.ndarray) -> dict:
    """bin start (s) -> {"linear": errors, "road clock": errors} of passages read across brackets that long."""
    order = np.lexsort((t, bib))
    bib, t, km = bib[order], t[order], km[order]
    road = RoadClock(t, km, bib, np.ones(t.size, bool))(km)
    errs: dict = defaultdict(lambda: defaultdict(list))
    _riders, first = np.unique(bib, return_index=True)
    bounds = np.r_[first, t.size]
    for a, z in zip(bounds[:-1], bounds[1:]):  # one rider at a time, vectorised over his fixes
        tt, kk, rr = t[a:z], np.maximum.accumulate(km[a:z]), np.maximum.accumulate(road[a:z])
        for w in LEFT_OUT_S:
            lo = np.searchsorted(tt, tt - w, side="right") - 1
            hi = np.searchsorted(tt, tt + w, side="left")
            i = np.flatnonzero((lo >= 0) & (hi < tt.size))
            lo, hi = lo[i], hi[i]
            keep = (kk[hi] > kk[lo]) & (kk[i] >= kk[lo]) & (kk[i] <= kk[hi])
            i, lo, hi = i[keep], lo[keep], hi[keep]
            span = tt[hi] - tt[lo]
            linear = tt[lo] + (kk[i] - kk[lo]) / (kk[hi] - kk[lo]) * span
            share = np.where(rr[hi] > rr[lo], (rr[i] - rr[lo]) / np.maximum(rr[hi] - rr[lo], 1e-9), 0.5)
            on_clock = tt[lo] + share * span
            bins = (span // BIN_S).astype(int) * BIN_S
            for b in np.unique(bins):
                sel = bins == b
                errs[int(b)]["linear"].append(linear[sel] - tt[i[sel]])
                errs[int(b)]["road clock"].append(on_clock[sel] - tt[i[sel]])
    return {b: {k: np.concatenate(v) for k, v in d.items()} for b, d in errs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("replay", help="the --out folder of a replay")
    ap.add_argument("--max-s", type=int, default=240, help="the longest brackets shown")
    args = ap.parse_args()
    rows = [r for r in read_table(args.replay, "rider_state") if r["quality"] in ("good", "neutral")]
    bib = np.array([r["bib"] for r in rows])
    t = np.array([r["event_time"].timestamp() for r in rows])
    km = np.array([r["km_from_start"] for r in rows])
    errs = bracket_errors(bib, t, km)
    print("| bracket (s) | passages | linear: median / p90 / p99 abs error (s) | road clock: median / p90 / p99 |")
    print("|---|---|---|---|")
    for b in sorted(errs):
        if b >= args.max_s:
            continue
        lin, clock = np.abs(errs[b]["linear"]), np.abs(errs[b]["road clock"])
        fmt = lambda e: " / ".join(f"{np.percentile(e, q):.1f}" for q in (50, 90, 99))  # noqa: E731
        print(f"| {b}-{b + BIN_S} | {lin.size:,} | {fmt(lin)} | {fmt(clock)} |")


if __name__ == "__main__":
    main()
