"""Predictions against what really happened: finish times, catches, and the stage 4 breakaway.

    python benchmarks/predictions.py [--out bench-results] [--reuse] [--races 6] [--fit]

* **Arrival times** on the shipped recordings (``peloton replay``, its
  ``predictions`` table): the head of the race's predicted finish 60, 30 and
  10 minutes before the first rider finished (stage 4), and every time-trial
  rider's 10 and 5 minutes before his own finish (stage 16), against the
  official timetable and "remaining distance / current speed".
* **Will the breakaway be caught**, on simulated races whose outcome is known
  (``peloton.sim.simulate``, 60 riders, every course x seed below): each minute
  of the breakaway's life, the probability the pipeline gives it against
  the outcome. Brier score, log loss and a reliability table, against the
  "10 km per minute" rule of thumb and a Monte Carlo of both groups holding
  their current speed with noise. Races on the TRAIN courses fit the
  logistic calibration (``--fit`` prints it); the scores are on the TEST
  courses only.
* **Stage 4**: the probability curve of the breakaway that won.

Simulated races are cached in ``--out/predictions-sim`` (``--reuse``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peloton.sim.evaluate import read_table  # noqa: E402
from peloton.predict.model import (PredictParams, StageModel, catch_probability_monte_carlo,  # noqa: E402
                             catch_probability_rule, forecast_race, timetable)

DATA = ROOT.parent / "shared" / "data" / "racecenter-2026"
COURSES = ROOT.parent / "shared" / "data" / "courses-tdf-2022-2024"
ROAD = DATA / "2026-07-07.json.gz"
ITT = (DATA / "2026-07-21.json.gz", DATA / "derived" / "2026-07-21_stage16_ITT_course_from_rider17_DERIVED.geojson")
TRAIN = {"2023-05 Pau > Laruns": "2023/05/trace_2023_5.geojson",
         "2022-03 Vejle > Sonderborg": "2022/03/trace_2022_3.geojson",
         "2024-09 Troyes > Troyes": "2024/09/trace_2024_9.geojson",
         "2023-11 Clermont > Moulins": "2023/11/trace_2023_11.geojson"}
TEST = {"2022-12 Briancon > Alpe d'Huez": "2022/12/trace_2022_12.geojson",
        "2023-04 Dax > Nogaro": "2023/04/trace_2023_4.geojson",
        "2024-06 Macon > Dijon": "2024/06/trace_2024_6.geojson",
        "2022-15 Rodez > Carcassonne": "2022/15/trace_2022_15.geojson"}
SAMPLE_S = 60.0


def ms(x) -> float:
    return x.timestamp() if hasattr(x, "timestamp") else x / 1000.0


# ------------------------------------------------------------------------------------------------ arrival times
def replay(recording: Path, course: Path | None, out: Path, reuse: bool) -> Path:
    if not (reuse and (out / "predictions").exists()):
        peloton = str(Path(sys.executable).parent / "peloton")
        cmd = [peloton, "-q", "replay", str(recording), "--out", str(out)] + (["--course", str(course)] if course else [])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def nearest(rows: list[dict], t: float) -> dict | None:
    if not rows:
        return None
    times = np.array([ms(r["event_time"]) for r in rows])
    i = int(np.argmin(np.abs(times - t)))
    return rows[i] if abs(times[i] - t) <= 30 else None


def road_eta(out: Path, stage) -> dict:
    preds = [r for r in read_table(str(out), "predictions") if r["rank"] == 1]
    groups = [g for g in read_table(str(out), "groups") if g["rank"] == 1]
    finished = [ms(e["event_time"]) for e in read_table(str(out), "race_events") if e["event_type"] == "finished"]
    finish_t = min(finished)
    tt = timetable(stage.checkpoints, stage.date, stage.timezone)
    finish_km = stage.course().finish_km
    result = {"finish_time": finish_t, "timetable_finish": float(tt[-1, 2]), "minutes": {}}
    errs = {"peloton": [], "timetable": [], "timetable_from_here": [], "distance_over_speed": []}
    covered = []
    for minutes in range(5, 125, 5):
        t = finish_t - 60 * minutes
        p, g = nearest(preds, t), nearest(groups, t)
        if p is None or g is None:
            continue
        now = ms(p["event_time"])
        km_here = finish_km - g["km_to_finish_head"]
        row = {
            "peloton": ms(p["eta_finish"]) - finish_t,
            "timetable": float(tt[-1, 2]) - finish_t,
            "timetable_from_here": now + float(tt[-1, 2] - np.interp(km_here, tt[:, 0], tt[:, 2])) - finish_t,
            "distance_over_speed": now + g["km_to_finish_head"] / max(g["speed_kph"], 1.0) * 3600.0 - finish_t,
            "interval": [ms(p["eta_finish_low"]) - finish_t, ms(p["eta_finish_high"]) - finish_t],
            "km_to_finish": p["km_to_finish"], "size": p["size"],
        }
        for k in errs:
            errs[k].append(abs(row[k]))
        covered.append(row["interval"][0] <= 0 <= row["interval"][1])
        result["minutes"][minutes] = row
    result["mean_abs_error_5_to_120_min"] = {k: round(float(np.mean(v)), 1) for k, v in errs.items()}
    result["interval_80_coverage"] = round(float(np.mean(covered)), 3)
    result["samples"] = len(covered)
    return result


def itt_eta(out: Path) -> dict:
    preds = read_table(str(out), "predictions")
    state = read_table(str(out), "rider_state")
    finished = {}
    for e in read_table(str(out), "race_events"):
        if e["event_type"] == "finished":
            for b in e["bibs"]:
                finished[b] = ms(e["event_time"])
    by_bib, speed_of = {}, {}
    for r in preds:
        by_bib.setdefault(r["group_id"], []).append(r)
    for r in state:
        if r["speed_kph"] is not None and r["km_to_finish"] is not None and r["km_to_finish"] > 0:
            speed_of.setdefault(r["bib"], []).append(r)
    result = {}
    for minutes in (20, 10, 5):
        ours, naive, covered = [], [], []
        for bib, t_fin in finished.items():
            p = nearest(by_bib.get(bib, []), t_fin - 60 * minutes)
            s = nearest(speed_of.get(bib, []), t_fin - 60 * minutes)
            if p is None or s is None or not s["speed_kph"]:
                continue
            ours.append(ms(p["eta_finish"]) - t_fin)
            naive.append(ms(s["event_time"]) + s["km_to_finish"] / max(s["speed_kph"], 1.0) * 3600.0 - t_fin)
            covered.append(ms(p["eta_finish_low"]) <= t_fin <= ms(p["eta_finish_high"]))
        if ours:
            result[minutes] = {"riders": len(ours),
                               "peloton_median_abs_s": round(float(np.median(np.abs(ours))), 1),
                               "peloton_p90_abs_s": round(float(np.percentile(np.abs(ours), 90)), 1),
                               "distance_over_speed_median_abs_s": round(float(np.median(np.abs(naive))), 1),
                               "distance_over_speed_p90_abs_s": round(float(np.percentile(np.abs(naive), 90)), 1),
                               "interval_80_coverage": round(float(np.mean(covered)), 3)}
    return result


# ------------------------------------------------------------------------------------------- simulated catches
def simulate_groups(job: tuple) -> dict:
    """One simulated race through the pipeline's kernels: its groups rows and its truth."""
    name, course_file, seed, cache = job
    path = Path(cache) / f"{Path(course_file).stem}-{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    from peloton.ingest.feed import concat_batches, parse_message
    from peloton.ingest.recording import iter_messages
    from peloton.match.matching import match_fixes
    from peloton.match.stage import parse_course_text, stage_from_recording
    from peloton.sim.simulate import SimParams, recording_document, simulate_race
    from peloton.state.race import derive_race_state

    route = parse_course_text(Path(course_file).read_text(), course_file)
    stage0 = stage_from_recording({"meta": {"date": "x"}, "rest": {"trace": {"routePoints": [
        {"lat": p[0], "lon": p[1], "ele": p[2]} for p in route]}}})
    rng = np.random.default_rng(seed)
    params = SimParams(riders=60, seed=seed, breakaway_size=int(rng.integers(1, 6)),
                       breakaway_km=float(rng.uniform(0.03, 0.4)) * stage0.course().length_m / 1000.0)
    race = simulate_race(stage0.course(), params)
    doc = recording_document(race, name)
    stage = stage_from_recording(doc)
    course = stage.course()
    batches = [parse_message(stage.stage_id, k, p)[0] for k, p in iter_messages(json.dumps(doc))]
    m, _rej, _dup = match_fixes(concat_batches(batches, stage.stage_id), course)
    state = derive_race_state(m, course.finish_km)
    groups = state.groups.to_rows()
    out = {"name": name, "seed": seed, "course": str(course_file), "stage": json.loads(stage.to_json()),
           "breakaway": race.breakaway, "attack_at": race.attack_at, "caught_at": race.caught_at,
           "finish_at": float(race.tick_t[np.argmax(np.any(race.true_s >= course.length_m - 1e-6, axis=1))]),
           "groups": groups}
    path.write_text(json.dumps(out))
    return out


def catch_samples(sim: dict, params: PredictParams = PredictParams()) -> list[dict]:
    """Each minute of the breakaway's life: its predicted catch probability, the baselines' and the outcome."""
    from peloton.match.profile import build_profile
    from peloton.match.stage import Stage

    if not sim["breakaway"] or sim["attack_at"] is None:
        return []
    stage = Stage.from_json(json.dumps(sim["stage"]))
    profile = build_profile(stage.course(), stage.checkpoints)
    forecast = forecast_race(stage.stage_id, sim["groups"], StageModel.build(profile), params=params)
    preds = {(r["event_time"], r["group_id"]): r for r in forecast.predictions}
    by_tick: dict = {}
    for g in sim["groups"]:
        by_tick.setdefault(g["event_time"], []).append(g)
    brk = set(sim["breakaway"])
    end = sim["caught_at"] if sim["caught_at"] is not None else sim["finish_at"]
    caught = sim["caught_at"] is not None
    samples, next_t = [], sim["attack_at"] + 300.0
    for tick in sorted(by_tick):
        t = tick / 1000.0
        if t < next_t or t >= end - 30:
            continue
        next_t = t + SAMPLE_S
        groups = sorted(by_tick[tick], key=lambda g: g["rank"])
        largest = max(groups, key=lambda g: (g["size"], -g["rank"]))
        ahead = [g for g in groups if g["rank"] < largest["rank"] and brk & set(g["bibs"])]
        if not ahead:
            continue
        g = max(ahead, key=lambda g: len(brk & set(g["bibs"])))
        p = preds.get((tick, g["group_id"]))
        if p is None or p["catch_probability"] is None or g["km_to_finish_head"] < 2.0:
            continue
        gap = (largest["gap_to_leader_s"] or 0.0) - (g["gap_to_leader_s"] or 0.0)
        samples.append({
            "race": f"{sim['name']} #{sim['seed']}", "t": t, "caught": float(caught),
            "p": p["catch_probability"], "features": p["_features"],
            "rule": float(catch_probability_rule(gap, g["km_to_finish_head"])),
            "monte_carlo": float(catch_probability_monte_carlo(
                g["km_to_finish_head"], largest["km_to_finish_head"], g["speed_kph"] or 1.0,
                largest["speed_kph"] or 1.0, seed=int(t))),
            "gap_s": gap, "km_to_finish": g["km_to_finish_head"]})
    return samples


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1.0, iters: int = 100) -> np.ndarray:
    """P(caught) = 1 / (1 + exp(x . w)) by Newton's method (features as the predictor computes them)."""
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(np.clip(x @ w, -30, 30)))  # P(caught)
        grad = x.T @ (y - p) + ridge * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def scores(p: np.ndarray, y: np.ndarray) -> dict:
    q = np.clip(p, 1e-3, 1 - 1e-3)
    return {"brier": round(float(np.mean((p - y) ** 2)), 4),
            "log_loss": round(float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))), 4)}


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 5) -> list[dict]:
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        inside = (p >= a) & ((p < b) | (b == 1.0))
        if inside.any():
            out.append({"bin": f"{a:.1f}-{b:.1f}", "n": int(inside.sum()), "mean_p": round(float(p[inside].mean()), 3),
                        "observed": round(float(y[inside].mean()), 3)})
    return out


def simulated_catches(out: Path, races: int, fit: bool) -> dict:
    cache = out / "predictions-sim"
    cache.mkdir(parents=True, exist_ok=True)
    jobs = [(name, str(COURSES / f), seed, str(cache)) for split in (TRAIN, TEST) for name, f in split.items()
            for seed in range(100, 100 + races)]
    started = time.perf_counter()
    with Pool(2) as pool:
        sims = pool.map(simulate_groups, jobs)
        print(f"{len(sims)} simulated races ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        samples = pool.map(catch_samples, sims)
    train = [s for sim, ss in zip(sims, samples) if sim["name"] in TRAIN for s in ss]
    test_sims = [sim for sim in sims if sim["name"] in TEST]
    result = {"races": {"train": sum(sim["name"] in TRAIN for sim in sims), "test": len(test_sims)},
              "caught_share_test": round(float(np.mean([sim["caught_at"] is not None for sim in test_sims])), 3)}
    if fit:
        x = np.array([s["features"] for s in train])
        y = np.array([s["caught"] for s in train])
        w = fit_logistic(x, y, ridge=1.0)
        result["fitted_coef"] = [round(float(v), 3) for v in w]
        print("fitted CATCH_COEF:", result["fitted_coef"], file=sys.stderr)
    test = [s for sim, ss in zip(sims, samples) if sim["name"] in TEST for s in ss]
    y = np.array([s["caught"] for s in test])
    methods = {"peloton": np.array([s["p"] for s in test]),
               "rule of thumb (10 km per minute)": np.array([s["rule"] for s in test]),
               "Monte Carlo (current speeds + noise)": np.array([s["monte_carlo"] for s in test])}
    result["samples_test"] = int(y.size)
    methods["base rate of the TRAIN races (no information)"] = np.full(y.size, float(np.mean(
        [s["caught"] for s in train])))
    result["scores"] = {k: scores(v, y) for k, v in methods.items()}
    result["reliability"] = {k: reliability(v, y) for k, v in methods.items()}
    # the same, by km to go: early calls are the hard ones
    km = np.array([s["km_to_finish"] for s in test])
    result["brier_by_km_to_go"] = {}
    for lo, hi in ((0, 20), (20, 50), (50, 100), (100, 1000)):
        inside = (km >= lo) & (km < hi)
        result["brier_by_km_to_go"][f"{lo}-{hi} km ({int(inside.sum())} samples)"] = {
            k: scores(v[inside], y[inside])["brier"] for k, v in methods.items()}
    return result


# -------------------------------------------------------------------------------------------- stage 4 curve
def breakaway_curve(out: Path) -> list[dict]:
    """Every 10 minutes: the catch probability of the group holding the stage winner while it is ahead."""
    events = read_table(str(out), "race_events")
    winner = min((e for e in events if e["event_type"] == "finished"), key=lambda e: ms(e["event_time"]))["bibs"][0]
    preds = read_table(str(out), "predictions")
    groups = {(ms(g["event_time"]), g["group_id"]): g for g in read_table(str(out), "groups")}
    mine = sorted((p for p in preds if winner in groups.get((ms(p["event_time"]), p["group_id"]), {}).get("bibs", [])
                   and p["catch_probability"] is not None), key=lambda p: ms(p["event_time"]))
    curve, next_t = [], -np.inf
    for p in mine:
        t = ms(p["event_time"])
        if t < next_t:
            continue
        next_t = t + 600
        curve.append({"time_utc": time.strftime("%H:%M", time.gmtime(t)), "km_to_finish": round(p["km_to_finish"], 1),
                      "size": p["size"], "label": p["label"], "catch_probability": p["catch_probability"]})
    return curve


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    ap.add_argument("--reuse", action="store_true", help="reuse replays and simulated races already in --out")
    ap.add_argument("--races", type=int, default=6, help="simulated races per course")
    ap.add_argument("--fit", action="store_true", help="fit the catch calibration on the TRAIN courses and print it")
    ap.add_argument("--skip-sim", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    from peloton.match.stage import resolve_stage

    road_out = replay(ROAD, None, out / "predictions-stage04", args.reuse)
    itt_out = replay(ITT[0], ITT[1], out / "predictions-stage16", args.reuse)
    result = {"stage04_finish": road_eta(road_out, resolve_stage(str(ROAD))),
              "stage16_finish": itt_eta(itt_out),
              "stage04_breakaway_curve": breakaway_curve(road_out)}
    if not args.skip_sim:
        result["simulated_catches"] = simulated_catches(out, args.races, args.fit)
    (out / "predictions.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
