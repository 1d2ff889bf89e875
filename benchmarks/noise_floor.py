"""How much of the gap error is the rider's own GPS noise: the floor a gap read from raw fixes cannot go under.

    python benchmarks/noise_floor.py [--out bench-results] [--seeds 2]

Reads what ``benchmarks/finish.py`` left in ``OUT/finish`` (run it first, with
the same ``--seeds``): the simulated races and their replays. Each race is
re-simulated in-process (same seed, same race) for every rider's exact
position, speed and gap at every tick (the recording's ``secToFirstRider``
is whole seconds and its ``kmToFinish`` is to 10 m).

A gap is the time since the reference passed the point where the rider is
now, so its error is the sum of two:

* **the rider's own position**: our km to go minus his true one, over his
  true speed. At climbing speed a few metres are a second;
* **the rest**: when the reference passed that point (his fixes on either
  side, their noise) and who the reference is.

Also: the own part if the rider's position were a straight line fitted to
his last ``k`` fixes (a causal smoother: the best a live system could do
with positions alone at a steady pace; it lags at every change of pace).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.finish import median_p90_p99  # noqa: E402
from benchmarks.groups import CASES  # noqa: E402
from benchmarks.reference import replay_rows  # noqa: E402
from peloton.ingest.recording import read_text  # noqa: E402
from peloton.match.course import Course  # noqa: E402
from peloton.match.stage import parse_course_text  # noqa: E402
from peloton.sim.evaluate import error_stats  # noqa: E402
from peloton.sim.simulate import SimParams, simulate_race  # noqa: E402

FIT_FIXES = (3, 4, 5)
TICK_S = 6.0


def fitted_km(t: np.ndarray, bib: np.ndarray, km: np.ndarray, k: int) -> np.ndarray:
    """km to go at each fix from a straight line through the rider's last ``k`` fixes (NaN where they are not
    ``k`` consecutive ticks); rows sorted by (bib, t)."""
    out = np.full(t.size, np.nan)
    if t.size < k:
        return out
    win_t = np.lib.stride_tricks.sliding_window_view(t, k)
    win_km = np.lib.stride_tricks.sliding_window_view(km, k)
    win_bib = np.lib.stride_tricks.sliding_window_view(bib, k)
    x = win_t - win_t[:, -1:]
    xm, ym = x.mean(axis=1), win_km.mean(axis=1)
    slope = ((x - xm[:, None]) * (win_km - ym[:, None])).sum(axis=1) / np.maximum(
        ((x - xm[:, None]) ** 2).sum(axis=1), 1e-9)
    ok = (win_bib == win_bib[:, :1]).all(axis=1) & (-x[:, 0] <= TICK_S * (k - 1) + 1.0)
    ok &= np.isfinite(win_km).all(axis=1)
    out[k - 1:] = np.where(ok, ym - slope * xm, np.nan)
    return out


@np.errstate(invalid="ignore", divide="ignore")  # riders at a standstill have no seconds per metre
def race_floor(out: Path, name: str, course_path: Path, seed: int) -> dict:
    stem = f"{course_path.stem}_seed{seed}"
    route = parse_course_text(read_text(str(course_path)), str(course_path))
    course = Course([p[0] for p in route], [p[1] for p in route],
                    [p[2] if p[2] is not None else float("nan") for p in route])
    race = simulate_race(course, SimParams(seed=seed))
    d = replay_rows(out / stem, out / f"{stem}.json.gz")
    order = np.lexsort((d["t"], d["bib"]))
    d = {k: v[order] for k, v in d.items()}
    tick_round = np.round(race.tick_t)
    ti = np.searchsorted(tick_round, d["t"] - 0.5)
    assert np.array_equal(tick_round[ti], d["t"]), "the replay is not of this simulation"
    col = np.zeros(race.bibs.max() + 1, dtype=np.int64)
    col[race.bibs] = np.arange(race.bibs.size)
    ci = col[d["bib"]]
    true_ktf = (course.length_m - race.true_s[ti, ci]) / 1000.0
    true_ms = race.true_kph[ti, ci] / 3.6
    true_gap = race.gap_to_leader_s[ti, ci]
    err = d["gap"] - true_gap
    seconds_per_m = 1.0 / np.where(true_ms > 1.0, true_ms, np.nan)
    own = (d["ktf"] - true_ktf) * 1000.0 * seconds_per_m
    first = np.nanmin(race.finish_t)
    usable = np.isfinite(err) & np.isfinite(own) & (true_ktf > 0.05)
    fitted_own = {k: (fitted_km(d["t"], d["bib"], d["ktf"], k) - true_ktf) * 1000.0 * seconds_per_m
                  for k in FIT_FIXES}  # the own part with a line through the last k fixes
    result = {"race": name, "seed": seed}
    for part, sel in (("after_first_finish", usable & (d["t"] >= first)), ("last_10_km", usable & (true_ktf <= 10)),
                      ("all", usable)):
        fits = {str(k): error_stats(f_own[sel & np.isfinite(f_own)]) for k, f_own in fitted_own.items()}
        result[part] = {"rows": int(sel.sum()), "gap_vs_exact_truth_s": error_stats(err[sel]),
                        "gap_vs_feed_truth_s": error_stats((d["gap"] - d["ref"] - 0.5)[sel & np.isfinite(d["ref"])]),
                        "own_position_s": error_stats(own[sel]), "rest_s": error_stats((err - own)[sel]),
                        "own_km_error_m": error_stats(((d["ktf"] - true_ktf) * 1000.0)[sel]),
                        "true_speed_kph_median": round(float(np.median(true_ms[sel]) * 3.6), 1),
                        "own_position_fitted_s": fits}
    print(f"{name} seed {seed}: done", file=sys.stderr, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out) / "finish"
    if not out.is_dir():
        sys.exit(f"noise_floor: no {out}: run benchmarks/finish.py --out {args.out} first")
    races = [race_floor(out, name, course, seed) for name, course in CASES.items() for seed in range(args.seeds)]
    (out / "noise_floor.json").write_text(json.dumps(races, indent=1))
    fits = " | ".join(f"own, fit of {k}" for k in FIT_FIXES)
    print(f"| race | seed | rows | speed km/h | gap vs exact truth | vs the feed's whole seconds | own position "
          f"| rest | own km error m | {fits} |")
    print("|---|---|---|---|---|---|---|---|---|" + "---|" * len(FIT_FIXES))
    for part in ("after_first_finish", "last_10_km", "all"):
        print(f"| **{part.replace('_', ' ')}** |")
        for r in races:
            p = r[part]
            print(f"| {r['race']} | {r['seed']} | {p['rows']:,} | {p['true_speed_kph_median']} "
                  f"| {median_p90_p99(p['gap_vs_exact_truth_s'])} | {median_p90_p99(p['gap_vs_feed_truth_s'])} "
                  f"| {median_p90_p99(p['own_position_s'])} | {median_p90_p99(p['rest_s'])} "
                  f"| {median_p90_p99(p['own_km_error_m'])} | "
                  + " | ".join(median_p90_p99(p["own_position_fitted_s"][str(k)]) for k in FIT_FIXES) + " |")


if __name__ == "__main__":
    main()
