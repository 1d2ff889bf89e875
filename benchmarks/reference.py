"""Who is the reference of the gaps: what makes the mountain races' p99, and what the official feed does.

    python benchmarks/reference.py [--out bench-results] [--seeds 2]

Reads what ``benchmarks/finish.py`` left in ``OUT/finish`` (run it first, with
the same ``--seeds``): the simulated mountain races, their replays and stage
4's replay.

* Simulated races (2023-05 and 2022-12, re-simulated in-process to get every
  rider's true position at every tick; same seed, same race): our gap errors
  against the simulator's truth, split by whether our reference (the leader
  of each fix, ``peloton.state.gaps.gap_to_leader_s``) is the truth's (the first
  rider on the road, ``peloton.sim.simulate._truth_at``); the p99 rows by pair
  (ours, truth's): how far apart the two truly were, and how far apart they
  passed the points of the riders whose gaps erred.
* The same gaps with two other ways of choosing the reference (the truth
  unchanged): *sticky* (the leader stays the reference against a rider less
  than 15 m ahead of him who came from more than 10 s behind him in the last
  10 minutes: a chaser who caught him) and *no jumps* (a fix more than 130
  km/h ahead of the rider's previous one cannot lead: on the Alpe d'Huez a
  noisy fix matched to the next hairpin up puts a rider 1-2 km ahead for a
  tick or two). Scored on the simulated races and on stage 4 against the
  feed's ``secToFirstRider``.
* Stage 4's feed at its lead changes: at each tick where the feed's own first
  rider (smallest ``kmToFinish``; a benchmark may read the official values,
  the pipeline never) is not the last tick's, and the two passed the points
  of the riders more than 200 s behind more than 3 s apart (one caught the
  other), whose passage the feed's ``secToFirstRider`` of those riders
  follows: the new first rider's or the last one's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.finish import STAGE4, median_p90_p99  # noqa: E402
from benchmarks.groups import CASES  # noqa: E402
from peloton.ingest.recording import read_local, read_text  # noqa: E402
from peloton.match.course import Course  # noqa: E402
from peloton.match.stage import parse_course_text  # noqa: E402
from peloton.sim.evaluate import error_stats, official_values, read_table  # noqa: E402
from peloton.sim.simulate import SimParams, simulate_race  # noqa: E402
from peloton.state.gaps import gap_to_leader_s, leader_per_tick  # noqa: E402

MOUNTAINS = [name for name in CASES if "mountains" in name]
AT_LINE_KM = 0.05  # peloton.state.race.RaceParams.at_line_km
NEAR_M = 15.0  # the variants: a rider less than this far ahead of the reference ...
CAME_FROM_S = 10.0  # ... who passed a point more than this after him ...
LOOK_S = 600.0  # ... in this many seconds before (sticky)
JUMP_KPH = 130.0  # no jumps: nobody rides this fast


def replay_rows(out: Path, recording: Path) -> dict:
    """The replay's rider rows as arrays, with the recording's secToFirstRider at the same (bib, second)."""
    rows = read_table(str(out), "rider_state")
    official = official_values(read_local(str(recording)))
    val = lambda k: np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=float)  # noqa: E731
    d = {"t": np.array([r["event_time"].timestamp() for r in rows]), "bib": np.array([r["bib"] for r in rows]),
         "km": val("km_from_start"), "ktf": val("km_to_finish"), "speed": val("speed_kph"),
         "sensor": val("sensor_speed_kph"), "gap": val("gap_to_leader_s"),
         "quality": np.array([r["quality"] for r in rows], dtype=object)}
    d["ref"] = np.array([(official.get((int(b), int(x))) or {}).get("secToFirstRider", np.nan)
                         for b, x in zip(d["bib"], d["t"])], dtype=float)
    return d


def our_gaps(d: dict, leaders=None, no_jumps: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(gap, reference per fix) as the replay computes them (``peloton.state.race``), optionally with other leaders, or
    with no fix that jumped ahead leading."""
    usable = np.isin(d["quality"], ("good", "finished", "neutral"))
    can_lead = d["ktf"] > AT_LINE_KM
    if no_jumps:
        can_lead = can_lead & ~jumped_ahead(d, usable)
    gap, leader = gap_to_leader_s(d["t"], d["km"], d["bib"], usable, can_lead=can_lead,
                                  km_to_finish=d["ktf"], speed_kph=d["speed"], sensor_kph=d["sensor"],
                                  at_line_km=AT_LINE_KM, leaders=leaders)
    return np.where(d["quality"] == "clock_off", np.nan, np.round(gap, 2)), leader


def jumped_ahead(d: dict, usable: np.ndarray) -> np.ndarray:
    """Fixes more than JUMP_KPH ahead of the same rider's previous usable fix."""
    out = np.zeros(d["t"].size, dtype=bool)
    idx = np.flatnonzero(usable)
    idx = idx[np.lexsort((d["t"][idx], d["bib"][idx]))]
    same = d["bib"][idx][1:] == d["bib"][idx][:-1]
    fast = same & (np.diff(d["km"][idx]) * 3600.0 > JUMP_KPH * np.maximum(np.diff(d["t"][idx]), 1e-9))
    out[idx[1:][fast]] = True
    return out


def replay_leaders(d: dict) -> tuple[np.ndarray, np.ndarray]:
    usable = np.isin(d["quality"], ("good", "finished", "neutral")) & (d["ktf"] > AT_LINE_KM)
    return leader_per_tick(d["t"], d["km"], d["bib"], usable, km_to_finish=d["ktf"], speed_kph=d["speed"])


def held_leaders(d: dict, ticks: np.ndarray, bibs: np.ndarray, sticky: bool) -> np.ndarray:
    """The replay's leaders, except that the reference is kept against a rider less than NEAR_M ahead of him (who
    came from behind him, when ``sticky``)."""
    usable = np.isin(d["quality"], ("good", "finished", "neutral"))
    tracks = {}
    for b in np.unique(d["bib"]).tolist():
        m = usable & (d["bib"] == b)
        o = np.argsort(d["t"][m])
        tracks[b] = (d["t"][m][o], np.maximum.accumulate(d["km"][m][o]))

    def km_at(b, tick):
        tt, kk = tracks.get(b, (np.zeros(0), np.zeros(0)))
        k = np.searchsorted(tt, tick)
        return kk[k] if k < tt.size and tt[k] == tick else None

    def came_from_behind(b, lead, tick):
        tt, kk = tracks[b]
        k = np.searchsorted(tt, tick - LOOK_S)
        lt, lk = tracks[lead]
        if k >= tt.size or not lk.size or lk[-1] < kk[k]:
            return False
        passed = np.interp(kk[k], lk, lt) if lk[0] <= kk[k] else lt[0]
        return tt[k] - passed > CAME_FROM_S

    out = bibs.copy()
    current, caught = int(bibs[0]), set()
    for i, (tick, b) in enumerate(zip(ticks.tolist(), bibs.tolist())):
        if b != current:
            mine, theirs = km_at(current, tick), km_at(b, tick)
            if (mine is not None and theirs is not None and (theirs - mine) * 1000 <= NEAR_M
                    and (not sticky or b in caught or came_from_behind(b, current, tick))):
                caught.add(b)
                out[i] = current
                continue
            current, caught = b, set()
        out[i] = current
    return out


def simulated(out: Path, name: str, course_path: Path, seed: int) -> dict:
    stem = f"{course_path.stem}_seed{seed}"
    rec, replay = out / f"{stem}.json.gz", out / stem
    route = parse_course_text(read_text(str(course_path)), str(course_path))
    course = Course([p[0] for p in route], [p[1] for p in route],
                    [p[2] if p[2] is not None else float("nan") for p in route])
    race = simulate_race(course, SimParams(seed=seed))
    d = replay_rows(replay, rec)
    tick_round = np.round(race.tick_t)
    ti = np.searchsorted(tick_round, d["t"] - 0.5)
    assert np.array_equal(tick_round[ti], d["t"]), "the replay is not of this simulation"
    col = np.zeros(race.bibs.max() + 1, dtype=np.int64)
    col[race.bibs] = np.arange(race.bibs.size)
    # the truth's reference per tick, as simulate._truth_at chooses it
    on_road = (race.true_s < course.length_m - 1e-6) & (race.true_s >= 0)
    furthest = np.argmax(np.where(on_road, race.true_s, -np.inf), axis=1)
    first_t = np.nanmin(race.finish_t)
    truth_ref = np.where(race.tick_t >= first_t, race.bibs[np.nanargmin(race.finish_t)], race.bibs[furthest])
    gap, leader = our_gaps(d)
    err = gap - d["ref"] - 0.5
    ok = np.isfinite(err)
    same = leader == truth_ref[ti]
    p99 = ok & (np.abs(err) > np.percentile(np.abs(err[ok]), 99))

    def passage(i, s):
        reach = np.maximum.accumulate(np.nan_to_num(race.true_s[:, i], nan=-1e9))
        u, k = np.unique(reach, return_index=True)
        return np.interp(s, u, race.tick_t[k])

    pairs = {}
    for i in np.flatnonzero(p99 & ~same):
        pairs.setdefault((int(leader[i]), int(truth_ref[ti[i]])), []).append(i)
    top = []
    for (ours, theirs), rows in sorted(pairs.items(), key=lambda kv: -len(kv[1]))[:5]:
        rows = np.array(rows)
        at = race.true_s[ti[rows], col[d["bib"][rows]]]
        top.append({"ours": ours, "truth": theirs, "rows": int(rows.size),
                    "from": float(d["t"][rows].min()), "to": float(d["t"][rows].max()),
                    "km_to_finish_of_the_rows": round(float(np.median(d["ktf"][rows])), 1),
                    "truly_apart_m": round(float(np.median(race.true_s[ti[rows], col[theirs]]
                                                           - race.true_s[ti[rows], col[ours]])), 1),
                    "passed_apart_s": round(float(np.median(passage(col[ours], at) - passage(col[theirs], at))), 1),
                    "error_median_s": round(float(np.median(err[rows])), 1)})
    ticks, bibs = replay_leaders(d)
    variants = {}
    for label, g in (("sticky", our_gaps(d, (ticks, held_leaders(d, ticks, bibs, True)))[0]),
                     ("no_jumps", our_gaps(d, no_jumps=True)[0])):
        e = g - d["ref"] - 0.5
        variants[label] = error_stats(e[np.isfinite(e)])
    return {"race": name, "seed": seed, "gap": error_stats(err[ok]),
            "rows_with_the_truths_reference": float(same[ok].mean()),
            "gap_same_reference": error_stats(err[ok & same]), "gap_other_reference": error_stats(err[ok & ~same]),
            "p99_rows_with_another_reference": float((~same[p99]).mean()), "p99_pairs": top, "variants": variants}


def stage4(out: Path) -> dict:
    replay = out / "stage04-finish"
    d = replay_rows(replay, STAGE4)
    ours = {r["bib"]: r for r in read_table(str(replay), "results") if r["status"] == "finished"}
    winner = min(r["finish_time"].timestamp() for r in ours.values())
    before = d["t"] < winner
    result = {}
    gap, _ = our_gaps(d)
    ticks, bibs = replay_leaders(d)
    for label, g in (("replay", gap), ("sticky", our_gaps(d, (ticks, held_leaders(d, ticks, bibs, True)))[0]),
                     ("no_jumps", our_gaps(d, no_jumps=True)[0])):
        e = g - d["ref"] - 0.5
        result[label] = error_stats(e[np.isfinite(e) & before])
    result["feed_lead_changes"] = feed_lead_changes(read_local(str(STAGE4)), winner)
    return result


def feed_lead_changes(text: str, until: float) -> dict:
    """At the feed's lead changes between riders who passed the back of the race more than 3 s apart: does its
    secToFirstRider of the riders more than 200 s behind follow the new first rider's passage, or the last one's?"""
    official = official_values(text, fields=("kmToFinish", "secToFirstRider"))
    keys = [k for k, v in official.items() if v.get("kmToFinish") is not None and v.get("secToFirstRider") is not None
            and k[1] < until]
    bib = np.array([k[0] for k in keys])
    t = np.array([k[1] for k in keys], dtype=float)
    ktf = np.array([official[k]["kmToFinish"] for k in keys], dtype=float)
    sec = np.array([official[k]["secToFirstRider"] for k in keys], dtype=float)
    tracks = {}

    def passage(b, x):
        if b not in tracks:
            m = bib == b
            o = np.argsort(t[m])
            reach, first = np.unique(np.maximum.accumulate(-ktf[m][o]), return_index=True)
            tracks[b] = (reach, t[m][o][first])
        reach, tt = tracks[b]
        return np.interp(x, reach, tt, left=np.nan, right=np.nan)

    ticks = np.unique(t)
    firsts = []
    for tick in ticks:
        m = t == tick
        firsts.append(int(bib[m][np.argmin(ktf[m])]))
    follows_new = follows_last = neither = 0
    apart = []
    for i in range(1, ticks.size):
        new, last = firsts[i], firsts[i - 1]
        if new == last:
            continue
        m = (t == ticks[i]) & (sec > 200)
        if m.sum() < 10:
            continue
        x = -ktf[m]
        by_new, by_last = ticks[i] - passage(new, x), ticks[i] - passage(last, x)
        diff = np.nanmedian(by_last - by_new)
        if not np.isfinite(diff) or abs(diff) <= 3.0:
            continue
        apart.append(abs(float(diff)))
        e_new, e_last = np.nanmedian(np.abs(sec[m] - by_new)), np.nanmedian(np.abs(sec[m] - by_last))
        if min(e_new, e_last) > 2.0:
            neither += 1
        elif e_new < e_last:
            follows_new += 1
        else:
            follows_last += 1
    return {"lead_changes": int(sum(a != b for a, b in zip(firsts[1:], firsts[:-1]))),
            "between_riders_who_passed_the_back_more_than_3_s_apart": len(apart),
            "their_passages_apart_s": error_stats(np.array(apart)),
            "feed_follows_the_new_first_rider": follows_new, "feed_follows_the_last_one": follows_last,
            "neither_within_2_s": neither}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out) / "finish"
    sims = [simulated(out, name, CASES[name], seed) for name in MOUNTAINS for seed in range(args.seeds)]
    s4 = stage4(out)
    (out / "reference.json").write_text(json.dumps({"simulated": sims, "stage4": s4}, indent=1))
    print("| race | seed | gaps: median / p90 / p99 s | rows with the truth's reference | there | elsewhere "
          "| p99 rows with another reference | sticky | no jumps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sims:
        print(f"| {r['race']} | {r['seed']} | {median_p90_p99(r['gap'])} | {100 * r['rows_with_the_truths_reference']:.0f} % "
              f"| {median_p90_p99(r['gap_same_reference'])} | {median_p90_p99(r['gap_other_reference'])} "
              f"| {100 * r['p99_rows_with_another_reference']:.0f} % | {median_p90_p99(r['variants']['sticky'])} "
              f"| {median_p90_p99(r['variants']['no_jumps'])} |")
    for r in sims:
        print(f"\n{r['race']} seed {r['seed']}, p99 rows by (our reference, the truth's):")
        for p in r["p99_pairs"]:
            print("  ", json.dumps(p))
    print("\nstage 4 before the winner crossed, against secToFirstRider:",
          {k: median_p90_p99(v) for k, v in s4.items() if k != "feed_lead_changes"})
    print("stage 4's feed at its lead changes:", json.dumps(s4["feed_lead_changes"], indent=1))


if __name__ == "__main__":
    main()
