"""A whole Tour (issue 25): a simulated 3-stage tour through ``peloton tour``, scored against its exact truth.

    .venv/bin/python -m benchmarks.tour [--stages 2022-10,2022-11,2022-12] [--riders 60] [--work DIR] [--causal]

60 riders, not 176, to keep it a few minutes on this machine. Per stage and classification (general, points,
mountains; and the live virtual general classification's last rows against the true general classification):
where the pipeline's row is decided, is it the truth (times within 1 s, points exactly, the same
place)? Where it is undecided, does its range hold the truth? And the share of riders left undecided.

The general times are in the pipeline's frame: seconds after each stage's first crossing *as measured*
(``classifications.credited_bounds``); its error moves every rider alike (no gap, no place), so the truth is
put in that frame before it is compared: plus, summed over the stages so far, the true first crossing less
the measured one (printed per stage as "frame").
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

from peloton.sim.evaluate import read_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")


def score_stage(rows: list[dict], truth_rows: list[dict], frame_s: float = 0.0) -> dict:
    """{classification: counts} of the pipeline's rows against the truth's (by bib); ``frame_s`` is added to
    the truth's general times (the pipeline's frame, see the module)."""
    out = {}
    for kind in ("general", "points", "mountains"):
        shift = frame_s if kind == "general" else 0.0
        truth = {r["bib"]: {**r, "value": r["value"] + shift} for r in truth_rows if r["classification"] == kind}
        got = [r for r in rows if r["classification"] == kind]
        tol = 1.0 if kind == "general" else 0.0
        decided = [r for r in got if r["decided"] and r["bib"] in truth]
        # the truth itself is a range where values tie (no official tie-breaks): a place is right when it is
        # the truth's range
        right = [r for r in decided if abs(r["value"] - truth[r["bib"]]["value"]) <= tol
                 and (r["place_min"], r["place_max"]) == (truth[r["bib"]]["place_min"], truth[r["bib"]]["place_max"])]
        open_ = [r for r in got if not r["decided"] and r["bib"] in truth]
        holds = [r for r in open_ if r["value_min"] - 1e-3 <= truth[r["bib"]]["value"] <= r["value_max"] + 1e-3
                 and r["place_min"] <= truth[r["bib"]]["place_min"] <= truth[r["bib"]]["place_max"] <= r["place_max"]]
        out[kind] = {"truth": len(truth), "rows": len(got), "decided": len(decided), "decided_right": len(right),
                     "undecided": len(open_), "range_holds_truth": len(holds),
                     "missing": len(set(truth) - {r["bib"] for r in got}),
                     "wrong": [(r["bib"], r["value"], round(truth[r["bib"]]["value"], 3)) for r in decided
                               if r not in right][:5],
                     "misses": [(r["bib"], r["value_min"], r["value_max"], round(truth[r["bib"]]["value"], 3),
                                 r["place_min"], r["place_max"], truth[r["bib"]]["place_min"])
                                for r in open_ if r not in holds][:3]}
    return out


def score_virtual(rows: list[dict], truth_rows: list[dict], frame_s: float = 0.0) -> dict:
    """The live virtual general classification at the end of the stage (each rider's latest ``virtual_general``
    row) against the true general classification after it, counted as :func:`score_stage` counts ``general``."""
    latest = {}
    for r in sorted((r for r in rows if r["classification"] == "virtual_general"),
                    key=lambda r: _ms(r["event_time"])):
        latest[r["bib"]] = {**r, "classification": "general"}
    return score_stage(list(latest.values()), truth_rows, frame_s)["general"]


def _ms(t) -> float:
    return t.timestamp() * 1000 if hasattr(t, "timestamp") else float(t)


def frame_offset_s(results: list[dict], truth: dict) -> float:
    """The true first crossing less the measured one (s): what the pipeline's frame differs by on a stage."""
    measured = [r["finish_time"] for r in results if r.get("finish_time") is not None
                and r.get("time_behind_winner_s") == 0]
    first = min(measured) if measured else None
    if hasattr(first, "timestamp"):
        first = first.timestamp()
    elif first is not None:
        first = first / 1000.0
    return 0.0 if first is None else min(truth["finish"].values()) - first


def score_tour(sim_dir: str, out_dir: str) -> list[dict]:
    """Every stage of a simulated tour (``sim_dir``) replayed into ``out_dir``, scored."""
    scores, frame = [], 0.0
    for name in sorted(os.listdir(sim_dir)):
        if not name.endswith(".truth.json.gz"):
            continue
        date = name.split(".")[0]
        with gzip.open(os.path.join(sim_dir, name)) as fh:
            truth = json.load(fh)
        offset = frame_offset_s(read_table(os.path.join(out_dir, date), "results"), truth)
        frame += offset
        rows = read_table(os.path.join(out_dir, date), "classifications")
        scores.append({"date": date, "frame_s": round(offset, 2),
                       **score_stage(rows, truth["classifications"], frame),
                       "virtual_general": score_virtual(rows, truth["classifications"], frame)})
    return scores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stages", default="2022-10,2022-11,2022-12")
    ap.add_argument("--riders", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--causal", action="store_true", help="each stage as 'peloton replay --causal' (as live)")
    ap.add_argument("--work", help="keep the simulated tour and the replay here (default: a temporary folder)")
    ap.add_argument("--score-only", metavar="OUT", help="score this earlier 'peloton tour' output against the "
                    "simulated tour in WORK/sim (no simulation, no replay)")
    args = ap.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="tour-bench-")
    sim, out = os.path.join(work, "sim"), os.path.join(work, "out")
    peloton = [sys.executable, "-m", "pipelines.cli"]
    if args.score_only:
        out = args.score_only
        _print(score_tour(sim, out))
        return 0
    t0 = time.perf_counter()
    subprocess.run(peloton + ["simulate", "--stages", args.stages, "--riders", str(args.riders), "--seed",
                              str(args.seed), "--out", sim], check=True, cwd=ROOT)
    t1 = time.perf_counter()
    subprocess.run(peloton + ["-q", "tour", sim, "--out", out] + (["--causal"] if args.causal else []), check=True,
                   cwd=ROOT)
    t2 = time.perf_counter()
    print(f"simulated in {t1 - t0:.0f} s, 'peloton tour' in {t2 - t1:.0f} s ({args.riders} riders, {args.stages})")
    _print(score_tour(sim, out))
    return 0


def _print(scores):
    print(f"{'stage':<11}{'class.':<16}{'truth':>6}{'decided':>8}{'right':>6}{'undec.':>7}{'range ok':>9}"
          f"{'missing':>8}  wrong (bib, got, truth)")
    for s in scores:
        print(f"{s['date']}: frame {s['frame_s']:+.2f} s (true first crossing less the measured one)")
        for kind in ("general", "points", "mountains", "virtual_general"):
            c = s[kind]
            print(f"{s['date']:<11}{kind:<16}{c['truth']:>6}{c['decided']:>8}{c['decided_right']:>6}"
                  f"{c['undecided']:>7}{c['range_holds_truth']:>9}{c['missing']:>8}  {c['wrong']}  misses {c['misses']}")


if __name__ == "__main__":
    sys.exit(main())
