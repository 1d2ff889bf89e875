"""The finish: gaps after the head of the race has crossed the line, and the results table.

    python benchmarks/finish.py [--out bench-results] [--seeds 2] [--reuse] [--stage4-only]

Simulated races (the courses of ``groups.py``; ``peloton simulate`` writes
each rider's true crossing of the line to the truth file), replayed with
``peloton replay``:

* gaps against the simulator's truth (time since the first rider on the
  road, finished or not, passed the rider's point): all rows, the rows after
  the head of the race crossed the line, and the last 10 km;
* results against the truth: the places the crossings' intervals decide
  (and whether they are right), the share of riders whose place is not, the
  pairs of riders ordered, crossing-time errors, and the credited times (UCI
  rule, 1 s: the simulated stages are typed hilly) against those the rule
  gives on the true crossings, with the share decided and whether the truth
  lies in the credited range.

Stage 4 (a benchmark may read the official values, the pipeline never):
our results against the finish order the feed implies. Its ``kmToFinish``
never reaches 0 (its trackers stop 50-470 m short of the line), so the feed's
crossing is found the way ours is, from the feed's own kmToFinish and kph
(the first tick at the line, else the last tick within 600 m at its kph):
:func:`peloton.state.results.line_crossings` on the feed's numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.groups import CASES  # noqa: E402
from peloton.ingest.recording import read_local  # noqa: E402
from peloton.sim.evaluate import error_stats, evaluate_replay, official_values, read_table  # noqa: E402
from peloton.sim.simulate import truth_path  # noqa: E402
from peloton.state.results import Crossings, line_crossings, rank_results  # noqa: E402

DATA = Path(os.environ.get("PELOTON_DATA", ROOT.parent / "shared" / "data"))
STAGE4 = DATA / "racecenter-2026" / "2026-07-07.json.gz"
TOP = 20


def _run(args: list[str]) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def gap_rows(out: Path, recording_text: str) -> dict:
    """Our gaps and the truth (secToFirstRider + 0.5 s, as evaluate scores it) by row."""
    rows = read_table(str(out), "rider_state")
    official = official_values(recording_text)
    t = np.array([r["event_time"].timestamp() for r in rows])
    ours = np.array([np.nan if r["gap_to_leader_s"] is None else r["gap_to_leader_s"] for r in rows])
    ref = np.array([(official.get((r["bib"], int(x))) or {}).get("secToFirstRider", np.nan) for r, x in zip(rows, t)],
                   dtype=float)
    ktf = np.array([r["km_to_finish"] if r["km_to_finish"] is not None else np.nan for r in rows])
    return {"t": t, "err": ours - ref - 0.5, "ktf": ktf, "ours": ours, "ref": ref}


def _crossing_order(rows) -> list[dict]:
    """Rows in crossing order (``position`` is null where the crossings do not decide the place)."""
    return sorted(rows, key=lambda r: (r["finish_time"].timestamp() if hasattr(r["finish_time"], "timestamp")
                                       else r["finish_time"] / 1000, r["bib"]))


def places_scored(rows: list[dict], true_place: dict | None = None, true_t: dict | None = None) -> dict:
    """What our place ranges decide: places decided (and right, against ``true_place``), the share of riders whose
    place is not, and the pairs of riders whose order the crossings' intervals decide (and right)."""
    n = len(rows)
    decided = [r for r in rows if r["order_decided"]]
    out = {"riders": n, "places_decided": len(decided), "place_undecided_share": 1 - len(decided) / n if n else None,
           "place_range_width_median": float(np.median([r["place_max"] - r["place_min"] + 1 for r in rows]))
           if n else None}
    t = np.array([r["finish_time"].timestamp() for r in rows])
    u = np.array([r["finish_uncertainty_s"] for r in rows])
    i, j = np.triu_indices(n, 1)
    pair = np.abs(t[i] - t[j]) > u[i] + u[j]  # their intervals do not overlap: ordered
    out["pairs"], out["pairs_decided"] = int(i.size), int(pair.sum())
    if true_place is not None:
        out["places_decided_right"] = sum(r["position"] == true_place[r["bib"]] for r in decided)
        out["place_range_holds_truth_share"] = float(np.mean([r["place_min"] <= true_place[r["bib"]] <= r["place_max"]
                                                               for r in rows])) if n else None
        tt = np.array([true_t[r["bib"]] for r in rows])
        out["pairs_decided_right"] = int((np.sign(t[i] - t[j]) == np.sign(tt[i] - tt[j]))[pair].sum())
    return out


def score_results(results: list[dict], finish: dict, gap_s: float = 1.0) -> dict:
    """Our results table against the true crossings (and the credits the rule gives on them)."""
    bibs = np.array([int(b) for b in finish], dtype=np.int64)
    true_t = np.array([finish[str(b)] for b in bibs.tolist()])
    n = bibs.size
    # the truth's crossings are exact: the rule alone, every place decided
    truth = rank_results("truth", Crossings(bibs, true_t, true_t, np.zeros(n), np.ones(n, bool), np.zeros(n)), gap_s,
                         uncertainty_s=np.zeros(n))
    true_by = {r["bib"]: r for r in truth}
    ours = {r["bib"]: r for r in results if r["status"] == "finished"}
    true_order = [r["bib"] for r in sorted(truth, key=lambda r: r["position"])]
    our_order = [r["bib"] for r in _crossing_order(ours.values())]
    top_right = sum(a == b for a, b in zip(true_order[:TOP], our_order[:TOP]))
    both = sorted(set(ours) & set(true_by))
    t_err = np.array([ours[b]["finish_time"].timestamp() - true_by[b]["finish_time"] / 1000 for b in both])
    behind_err = np.array([ours[b]["time_behind_winner_s"] - true_by[b]["time_behind_winner_s"] for b in both])
    credit_err = np.array([ours[b]["credited_time_behind_s"] - true_by[b]["credited_time_behind_s"] for b in both])
    c_decided = np.array([bool(ours[b].get("credited_time_decided")) for b in both], bool)
    true_credit = np.array([true_by[b]["credited_time_behind_s"] for b in both])
    c_lo = np.array([ours[b]["credited_time_min_s"] for b in both], float)
    c_hi = np.array([ours[b]["credited_time_max_s"] for b in both], float)
    # same-time groups: is the rider credited with the time of the same rider as in the truth?
    head_of = lambda rows_by, order, b: order[rows_by[b]["same_time_group"] - 1]  # noqa: E731
    same_head = [head_of(ours, our_order, b) == head_of(true_by, true_order, b) for b in both]
    # same-time groups as sets of riders: is each rider's group the truth's?
    members = lambda rows_by: {b: frozenset(x for x in rows_by if rows_by[x]["same_time_group"]  # noqa: E731
                                           == rows_by[b]["same_time_group"]) for b in rows_by}
    ours_sets, true_sets = members(ours), members(true_by)
    same_set = [ours_sets[b] == true_sets[b] for b in both]
    true_place = {r["bib"]: r["position"] for r in truth}
    won = [r["bib"] for r in ours.values() if r["position"] == 1]
    return {"true_finishers": n, "our_finishers": len(ours), "dnf_ours": sum(r["status"] == "DNF" for r in results),
            "top20_crossing_order_right": top_right,
            "winner": "not decided" if not won else ("right" if won == true_order[:1] else "wrong"),
            "places": places_scored([ours[b] for b in both], true_place, {b: finish[str(b)] for b in both}),
            "crossing_error_s": error_stats(t_err), "time_behind_error_s": error_stats(behind_err),
            "credited_error_s": error_stats(credit_err),
            "credited_exact_share": float(np.mean(np.abs(credit_err) < 0.01)) if both else None,
            "credited_within_1s_share": float(np.mean(np.abs(credit_err) < 1.0)) if both else None,
            "credited_within_half_s_share": float(np.mean(np.abs(credit_err) < 0.5)) if both else None,
            "credited_decided_share": float(np.mean(c_decided)) if both else None,
            "credited_error_decided_s": error_stats(credit_err[c_decided]),
            "credited_error_undecided_s": error_stats(credit_err[~c_decided]),
            # the range leaves out each crossing's own error (a few tenths): held within 0.5 s of it
            "credited_range_holds_truth_share": float(np.mean((true_credit >= c_lo - 0.5) & (true_credit <= c_hi + 0.5)))
            if both else None,
            "credited_range_width_median_s": float(np.median(c_hi - c_lo)) if both else None,
            "same_time_group_head_right_share": float(np.mean(same_head)) if both else None,
            "same_time_group_right_share": float(np.mean(same_set)) if both else None,
            "true_same_time_groups": len({r["same_time_group"] for r in truth}),
            "our_same_time_groups": len({r["same_time_group"] for r in ours.values()})}


def simulated(out: Path, seeds: int, reuse: bool) -> list[dict]:
    peloton = str(Path(sys.executable).parent / "peloton")
    results = []
    for name, course in CASES.items():
        for seed in range(seeds):
            rec = out / f"{course.stem}_seed{seed}.json.gz"
            replay = out / f"{course.stem}_seed{seed}"
            if not (reuse and rec.exists()):
                _run([peloton, "-q", "simulate", "--course", str(course), "--out", str(rec), "--seed", str(seed)])
            if not (reuse and (replay / "results").exists()):
                _run([peloton, "-q", "replay", str(rec), "--out", str(replay)])
            text = read_local(str(rec))
            truth = json.loads(read_local(truth_path(str(rec))))
            g = gap_rows(replay, text)
            first_finish = min(truth["finish"].values())
            ok = np.isfinite(g["err"])
            report = evaluate_replay(text, str(replay))
            r = {"course": name, "seed": seed,
                 "gap_all": error_stats(g["err"][ok]),
                 "gap_after_first_finish": error_stats(g["err"][ok & (g["t"] >= first_finish)]),
                 "gap_last_10_km": error_stats(g["err"][ok & (g["ktf"] <= 10)]),
                 "evaluate_gap": report.get("gap_to_leader_error_s", {}).get("vs_official_plus_half"),
                 "results": score_results(read_table(str(replay), "results"), truth["finish"])}
            results.append(r)
            print(f"{name} seed {seed}: gaps {r['gap_all']['median']:.2f}/{r['gap_all']['p90']:.2f}/"
                  f"{r['gap_all']['p99']:.2f} s, places decided {r['results']['places']['places_decided']}",
                  file=sys.stderr, flush=True)
    return results


def feed_crossings(text: str, at_line_km: float = 0.05) -> Crossings:
    """The crossings the feed's own kmToFinish and kph imply (diagnosis only)."""
    official = official_values(text, fields=("kmToFinish", "kph"))
    keys = [k for k, v in official.items() if v.get("kmToFinish") is not None and v["kmToFinish"] < 12.0]
    bib = np.array([k[0] for k in keys], dtype=np.int64)
    t = np.array([k[1] for k in keys], dtype=float)
    ktf = np.array([official[k]["kmToFinish"] for k in keys], dtype=float)
    kph = np.array([official[k].get("kph") if official[k].get("kph") is not None else np.nan for k in keys])
    return line_crossings(t, -ktf, bib, np.ones(t.size, bool), ktf, kph, at_line_km)


def stage4(out: Path, reuse: bool) -> dict:
    peloton = str(Path(sys.executable).parent / "peloton")
    replay = out / "stage04-finish"
    if not (reuse and (replay / "results").exists()):
        _run([peloton, "-q", "replay", str(STAGE4), "--out", str(replay)])
    text = read_local(str(STAGE4))
    feed = feed_crossings(text)
    order = np.argsort(feed.crossed_t)
    feed_bibs, feed_t = feed.bib[order], feed.crossed_t[order]
    ours = {r["bib"]: r for r in read_table(str(replay), "results") if r["status"] == "finished"}
    our_order = [r["bib"] for r in _crossing_order(ours.values())]
    both = [b for b in feed_bibs.tolist() if b in ours]
    dt = np.array([ours[b]["finish_time"].timestamp() - feed_t[feed_bibs.tolist().index(b)] for b in both])
    # the feed's tick order: riders the same tick first finds within 600 m of the line cannot be told apart
    g = gap_rows(replay, text)
    winner = min(r["finish_time"].timestamp() for r in ours.values())
    ok = np.isfinite(g["err"])
    feed_order = feed_bibs.tolist()
    return {"feed_finishers": int(feed_bibs.size), "feed_seen_at_line": int(feed.seen_at_line.sum()),
            "our_finishers": len(ours), "places": places_scored(list(ours.values())),
            "credited_decided": sum(bool(r.get("credited_time_decided")) for r in ours.values()),
            "front_group": sorted(r["bib"] for r in ours.values() if r["place_min"] == 1),
            "top10_feed": feed_order[:10], "top10_ours_crossing_order": our_order[:10],
            "top10_positions_equal": sum(a == b for a, b in zip(feed_order[:10], our_order[:10])),
            "top20_positions_equal": sum(a == b for a, b in zip(feed_order[:TOP], our_order[:TOP])),
            "same_riders_in_top20": len(set(feed_order[:TOP]) & set(our_order[:TOP])),
            "crossing_vs_feed_s": error_stats(dt),
            "feed_short_km": error_stats(feed.short_km),
            "gap_before_winner_crossed": error_stats(g["err"][ok & (g["t"] < winner)]),
            "gap_after_winner_crossed": error_stats(g["err"][ok & (g["t"] >= winner)]),
            "gap_all": error_stats(g["err"][ok])}


def _fmt3(s: dict) -> str:
    return f"{s['median']:.2f} / {s['p90']:.2f} / {s['max']:.2f}" if s.get("n") else "-"


def median_p90_p99(s: dict) -> str:
    """error_stats as the tables of benchmarks/HISTORY.md write them."""
    return f"{s['median']:.2f} / {s['p90']:.2f} / {s['p99']:.2f}" if s.get("n") else "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse simulations and replays already in --out")
    ap.add_argument("--stage4-only", action="store_true")
    args = ap.parse_args()
    out = Path(args.out) / "finish"
    out.mkdir(parents=True, exist_ok=True)
    sims = [] if args.stage4_only else simulated(out, args.seeds, args.reuse)
    s4 = stage4(out, args.reuse)
    (out / "finish.json").write_text(json.dumps({"simulated": sims, "stage4": s4}, indent=2))
    if sims:
        print("| course | seed | gaps, all rows: median / p90 / p99 s | after the first finish | last 10 km |")
        print("|---|---|---|---|---|")
        for r in sims:
            print(f"| {r['course']} | {r['seed']} | {median_p90_p99(r['gap_all'])} | {median_p90_p99(r['gap_after_first_finish'])} "
                  f"({r['gap_after_first_finish'].get('n', 0):,} rows) | {median_p90_p99(r['gap_last_10_km'])} |")
        print("\n| course | seed | finishers (truth / ours) | winner | places decided (right) | place undecided "
              "| place range holds the truth | pairs ordered (right) | crossing error median / p90 / max s "
              "| credited error median / p90 / max s | credited within 0.5 s / 1 s | credited decided "
              "| credited error where decided, median / p90 / max s | truth within the credited range (+-0.5 s) "
              "| same-time group (its riders) right | groups (truth / ours) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sims:
            x, pl = r["results"], r["results"]["places"]
            c = x["crossing_error_s"]
            print(f"| {r['course']} | {r['seed']} | {x['true_finishers']} / {x['our_finishers']} | {x['winner']} | "
                  f"{pl['places_decided']} ({pl['places_decided_right']}) | {100 * pl['place_undecided_share']:.0f} % | "
                  f"{100 * pl['place_range_holds_truth_share']:.0f} % | "
                  f"{100 * pl['pairs_decided'] / pl['pairs']:.1f} % ({pl['pairs_decided_right']} of {pl['pairs_decided']}) | "
                  f"{c['median']:.2f} / {c['p90']:.2f} / {c['max']:.2f} | {_fmt3(x['credited_error_s'])} | "
                  f"{100 * x['credited_within_half_s_share']:.0f} % / {100 * x['credited_within_1s_share']:.0f} % | "
                  f"{100 * x['credited_decided_share']:.0f} % | {_fmt3(x['credited_error_decided_s'])} | "
                  f"{100 * x['credited_range_holds_truth_share']:.0f} % | "
                  f"{100 * x['same_time_group_right_share']:.0f} % | "
                  f"{x['true_same_time_groups']} / {x['our_same_time_groups']} |")
    print("\nstage 4 against the finish the feed implies:")
    print(json.dumps(s4, indent=1))


if __name__ == "__main__":
    main()
