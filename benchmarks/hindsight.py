"""What hindsight buys over the causal (live) path, on stages 4 and 16.

    python benchmarks/hindsight.py [--cache DIR] [--reuse] [--stage 4|16]

Replays each shipped recording twice, ``peloton -q replay RECORDING --out
OUT`` (hindsight: every rider's whole track) and the same with ``--causal``
(the live engine, each 6 s window from the past only), and scores both
against the official feed (the answer key, read here and in
``peloton.sim.evaluate`` only): km and gaps (``peloton evaluate``'s kernel),
riders' backward steps (no answer key), our groups against the feed's
(official gaps parted at steps of 2 or 3 s) and against each other, group
events, the finish ETAs (``benchmarks/predictions.py``'s), rows per table
and the cost of each replay. Prints one markdown table per stage.

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
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import CASES  # noqa: E402
from benchmarks.predictions import itt_eta, ms, road_eta  # noqa: E402
from peloton.sim.evaluate import (adjusted_rand_index, error_stats, evaluate_replay, official_values,  # noqa: E402
                              read_table)
from peloton.ingest.recording import read_local  # noqa: E402
from peloton.match.stage import resolve_stage  # noqa: E402
from peloton.output.tables import CAUSAL, REPLAY, written_by  # noqa: E402

MODES = ("hindsight", "causal")
#: the feed's groups: a new group where the sorted official gaps step by this much (s); 2 s is the rule,
#: 3 s a looser reading (the feed's own positions are noisy too)
FEED_STEPS_S = (2.0, 3.0)
#: stage 16: the feed's hot seat before this rider finishes (14:30 UTC) is a ride that started before the
#: recording, whose splits nobody can know; from his finish on he is the hot seat in the feed and in our data
#: (benchmarks/HISTORY.md, "Time trial")
SHARED_HOT_SEAT_BIB = 22
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


def feed_groups(official: dict, step_s: float = 2.0) -> dict:
    """(bib, epoch s) -> the feed's group at that tick: riders sorted by ``secToFirstRider``, a new group
    where it steps by ``step_s`` or more.

    The official gaps are whole seconds, truncated: a step of 1 can be 0-2 s, a step of 2 is at least 1 s,
    the UCI rule's gap; so 2 s is the least step that surely parts two riders.
    """
    by_tick: dict = {}
    for (bib, ts), v in official.items():
        if v.get("secToFirstRider") is not None:
            by_tick.setdefault(ts, []).append((float(v["secToFirstRider"]), bib))
    out = {}
    for ts, riders in by_tick.items():
        riders.sort()
        gaps = np.array([g for g, _ in riders])
        group = np.r_[0, np.cumsum(np.diff(gaps) >= step_s)]
        out.update({(bib, ts): int(g) for (_, bib), g in zip(riders, group)})
    return out


def _group_ids(state: list[dict], before_s: float) -> dict:
    """(bib, epoch s) -> ``rider_state.group_id`` of the grouped rows before ``before_s``."""
    ids = {}
    for r in state:
        ts = int(round(ms(r["event_time"])))
        if r.get("group_id") is not None and r["group_id"] >= 0 and ts < before_s:
            ids[(r["bib"], ts)] = r["group_id"]
    return ids


def partition_agreement(truth: dict, ours: dict) -> dict:
    """Per tick, over the riders both partitions hold: the adjusted Rand index, and over all ticks the share
    of rider pairs both put together or both apart (and how the rest disagree)."""
    by_tick: dict = {}
    for key, g in ours.items():
        if key in truth:
            by_tick.setdefault(key[1], []).append((truth[key], g))
    ari, counts = [], Counter()
    upper_of: dict = {}
    for _ts, v in sorted(by_tick.items()):
        if len(v) < 2:
            continue
        a, b = np.array(v).T
        ari.append(adjusted_rand_index(a, b))
        upper = upper_of.setdefault(a.size, np.triu(np.ones((a.size, a.size), bool), 1))
        together_a, together_b = (a[:, None] == a[None, :])[upper], (b[:, None] == b[None, :])[upper]
        counts["agree"] += int((together_a == together_b).sum())
        counts["they_together_we_apart"] += int((together_a & ~together_b).sum())
        counts["they_apart_we_together"] += int((~together_a & together_b).sum())
    ari = np.array(ari)
    pairs = counts["agree"] + counts["they_together_we_apart"] + counts["they_apart_we_together"]
    return {"ticks": int(ari.size), "ari_median": float(np.median(ari)), "ari_mean": float(ari.mean()),
            "ari_p10": float(np.percentile(ari, 10)), "ticks_ari_at_least_0_95": float((ari >= 0.95).mean()),
            "pairs": pairs, **{k: v / pairs for k, v in counts.items()}}


def placed_apart(hindsight: Path, causal: Path, official: dict, over_m: float = 100.0) -> dict:
    """The fixes the two ways place more than ``over_m`` apart (what matching the whole track changes), and
    on those, each way's error against the official ``kmToFinish`` (m)."""
    ours = {(r["bib"], r["event_time"]): r["km_to_finish"] for r in read_table(str(hindsight), "rider_state")}
    apart = []
    for r in read_table(str(causal), "rider_state"):
        km = ours.get((r["bib"], r["event_time"]))
        if km is None or r["km_to_finish"] is None or abs(km - r["km_to_finish"]) * 1000 <= over_m:
            continue
        ref = (official.get((r["bib"], int(round(ms(r["event_time"]))))) or {}).get("kmToFinish")
        apart.append((km, r["km_to_finish"], np.nan if ref is None else ref))
    if not apart:
        return {"fixes": 0}
    h, c, ref = np.array(apart).T
    with np.errstate(invalid="ignore"):
        err_h, err_c = np.abs(h - ref) * 1000, np.abs(c - ref) * 1000
        return {"fixes": len(apart), "hindsight": error_stats(err_h), "causal": error_stats(err_c),
                "hindsight_closer": int((err_h < err_c).sum()), "causal_closer": int((err_c < err_h).sum())}


def backward_steps(bib, t, km_to_finish, over_m: float = 50.0) -> int:
    """Times a rider's distance to go grows by more than ``over_m`` from one fix to his next: riders do not
    ride back, so these are misplacements (a check that needs no answer key)."""
    bib, t, ktf = np.asarray(bib), np.asarray(t, dtype=float), np.asarray(km_to_finish, dtype=float)
    keep = np.isfinite(ktf)
    bib, t, ktf = bib[keep], t[keep], ktf[keep]
    order = np.lexsort((t, bib))
    same = bib[order][1:] == bib[order][:-1]
    return int(((np.diff(ktf[order]) * 1000 > over_m) & same).sum())


def official_backward_steps(official: dict) -> int:
    keys = [k for k, v in official.items() if v.get("kmToFinish") is not None]
    return backward_steps([b for b, _ in keys], [ts for _, ts in keys], [official[k]["kmToFinish"] for k in keys])


def first_crossing(out: Path) -> float:
    times = [ms(r["finish_time"]) for r in read_table(str(out), "results") if r.get("finish_time") is not None]
    return min(times) if times else np.inf


def itt_gap_after(state: list[dict], official: dict, start_s: float) -> dict:
    """``gap_to_leader_s`` against ``secToITTLead`` + 0.5 s on the rows from ``start_s``."""
    err = []
    for r in state:
        ts = ms(r["event_time"])
        ref = (official.get((r["bib"], int(round(ts)))) or {}).get("secToITTLead")
        if ts >= start_s and ref is not None and r.get("gap_to_leader_s") is not None:
            err.append(r["gap_to_leader_s"] - ref - 0.5)
    return error_stats(np.array(err, dtype=float))


def score(stage: str, out: Path, text: str, official: dict, feed: dict | None) -> dict:
    """Everything measured on one replay."""
    recording, _course = STAGES[stage]
    report = evaluate_replay(text, str(out))
    crossing = first_crossing(out)
    events = Counter(e["event_type"] for e in read_table(str(out), "race_events"))
    rows = {t: len(read_table(str(out), t)) for t in written_by(REPLAY)}
    state = read_table(str(out), "rider_state")
    backward = backward_steps([r["bib"] for r in state], [ms(r["event_time"]) for r in state],
                              [np.nan if r["km_to_finish"] is None else r["km_to_finish"] for r in state])
    result = {"backward_steps": backward, "evaluate": report, "first_crossing": crossing, "events": dict(events),
              "rows": rows}
    if stage == "4":
        result["group_ids"] = _group_ids(state, crossing)
        result["groups"] = {step: partition_agreement(f, result["group_ids"]) for step, f in feed.items()}
        result["eta"] = road_eta(out, resolve_stage(str(recording)))
    else:
        shared = [ms(r["finish_time"]) for r in read_table(str(out), "results")
                  if r["bib"] == SHARED_HOT_SEAT_BIB and r.get("finish_time") is not None]
        result["shared_hot_seat_from"] = shared[0] if shared else None
        result["itt_gap_shared_hot_seat"] = itt_gap_after(state, official, shared[0]) if shared else {"n": 0}
        result["eta"] = itt_eta(out)
    return result


def _stats(s: dict | None, unit: str, digits: int) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['median']:.{digits}f} / {s['p90']:.{digits}f} / {s['p99']:.{digits}f} {unit}"


def _eta(v, minutes) -> str:
    row = v["eta"].get("minutes", {}).get(minutes)
    return "-" if row is None else f"{row['peloton']:+.0f} s"


def _itt_eta(v, minutes) -> str:
    row = v["eta"].get(minutes)
    return "-" if row is None else f"{row['peloton_median_abs_s']:.1f} s ({row['riders']} riders)"


GROUP_EVENTS = ("attack", "split", "dropped", "bridge", "merge")


def table(stage: str, by_mode: dict, official_back: int) -> str:
    """One markdown table: a row per measure, a column per way of replaying."""
    lines = [f"| stage {stage} | hindsight replay | causal (= live) |", "|---|---|---|"]

    def row(label, fn):
        cells = []
        for mode in MODES:
            try:
                cells.append(fn(by_mode[mode]))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    km = lambda v: v["evaluate"]["km_to_finish_error_m"]  # noqa: E731
    row("km vs `kmToFinish`, on course: median / p90 / p99", lambda v: _stats(km(v)["on_course"], "m", 1))
    row("matched fixes over 1 km off (of all matched)",
        lambda v: f"{km(v)['all_matched']['over_1km']} (of {km(v)['all_matched']['n']:,})")
    row(f"a rider's km to go growing by 50 m+ from one fix to his next (the feed's own: {official_back:,})",
        lambda v: f"{v['backward_steps']:,}")
    row("fixes the two place over 100 m apart: their km error median / max; closer to `kmToFinish`",
        lambda v: "-" if "placed_apart" not in v else "none" if not v["placed_apart"]["fixes"] else (
            f"{v['placed_apart']['fixes']:,}: hindsight {v['placed_apart']['hindsight']['median']:.0f} / "
            f"{v['placed_apart']['hindsight']['max']:.0f} m, causal {v['placed_apart']['causal']['median']:.0f} / "
            f"{v['placed_apart']['causal']['max']:.0f} m; closer: hindsight {v['placed_apart']['hindsight_closer']}, "
            f"causal {v['placed_apart']['causal_closer']}"))
    if stage == "4":
        g = lambda v: v["evaluate"]["gap_to_leader_error_s"]  # noqa: E731
        row("gap vs `secToFirstRider` + 0.5 s, before the first finisher: median / p90 / p99",
            lambda v: _stats(g(v)["before_the_line_plus_half"], "s", 2))
        row("the same, every row", lambda v: _stats(g(v)["vs_official_plus_half"], "s", 2))
        row("official gaps without ours", lambda v: f"{g(v)['ours_missing']:,} (of {g(v)['official_rows']:,})")
        for step in FEED_STEPS_S:
            grp = lambda v, st=step: v["groups"][st]  # noqa: E731
            row(f"groups vs the feed's (`secToFirstRider` steps of {step:.0f} s+), per tick before the first "
                f"finisher: ARI median / mean / p10",
                lambda v, grp=grp: f"{grp(v)['ari_median']:.3f} / {grp(v)['ari_mean']:.3f} / {grp(v)['ari_p10']:.3f}")
            row(f"... ticks with ARI >= 0.95; rider pairs both put together or both apart (steps of {step:.0f} s+)",
                lambda v, grp=grp: f"{100 * grp(v)['ticks_ari_at_least_0_95']:.1f} % of {grp(v)['ticks']:,}; "
                                   f"{100 * grp(v)['agree']:.2f} %")
        row("causal groups vs hindsight's, per tick: ARI median / mean; pairs alike",
            lambda v: f"{v['groups_vs_hindsight']['ari_median']:.3f} / {v['groups_vs_hindsight']['ari_mean']:.3f}; "
                      f"{100 * v['groups_vs_hindsight']['agree']:.2f} %" if "groups_vs_hindsight" in v else "-")
        row("group events: " + " / ".join(GROUP_EVENTS),
            lambda v: " / ".join(str(v["events"].get(k, 0)) for k in GROUP_EVENTS))
        for minutes in (60, 30, 10, 5):
            row(f"head of the race's predicted finish, {minutes} min before the first crossing (error)",
                lambda v, m=minutes: _eta(v, m))
        row("the same, mean absolute error every 5 min from 5 to 120 min out",
            lambda v: f"{v['eta']['mean_abs_error_5_to_120_min']['peloton']:.0f} s ({v['eta']['samples']} points)")
    else:
        g = lambda v: v["evaluate"]["itt_gap_error_s"]  # noqa: E731
        row("gap vs `secToITTLead` + 0.5 s, every row: median / p90 / p99",
            lambda v: _stats(g(v)["vs_official_plus_half"], "s", 2))
        row(f"the same, from bib {SHARED_HOT_SEAT_BIB}'s finish on (a hot seat both know)",
            lambda v: _stats(v["itt_gap_shared_hot_seat"], "s", 2))
        row("official gaps without ours", lambda v: f"{g(v)['ours_missing']:,} (of {g(v)['official_rows']:,})")
        for minutes in (20, 10, 5):
            row(f"each rider's predicted finish, {minutes} min before his crossing: median absolute error",
                lambda v, m=minutes: _itt_eta(v, m))
        row("stop events (`stopped`)", lambda v: str(v["events"].get("stopped", 0)))
    row("rows: " + ", ".join(t for t in by_mode["hindsight"]["rows"]),
        lambda v: ", ".join(f"{n:,}" for n in v["rows"].values()))
    row("wall time / CPU time of the replay (one run, loaded machine)",
        lambda v: f"{v['cost']['wall_s']:.0f} s / {v['cost']['cpu_s']:.0f} s")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/peloton-hindsight", help="where the replays go (not the repo)")
    ap.add_argument("--reuse", action="store_true", help="score the replays already in --cache")
    ap.add_argument("--stage", choices=sorted(STAGES), action="append", help="only this stage (repeatable)")
    ap.add_argument("--mode", choices=MODES, action="append", help="only run this way (repeatable)")
    ap.add_argument("--run-only", action="store_true", help="run the replays, score nothing")
    args = ap.parse_args()
    cache = Path(args.cache)
    outs: dict = {}
    for stage in args.stage or sorted(STAGES, key=int):
        recording, course = STAGES[stage]
        outs[stage] = {}
        for mode in args.mode or MODES:
            out, cost = replay(recording, course, mode, cache, args.reuse)
            print(f"stage {stage} {mode}: {out} wall {cost['wall_s']:.0f} s, CPU {cost.get('cpu_s', 0):.0f} s",
                  file=sys.stderr, flush=True)
            outs[stage][mode] = (out, cost)
    if args.run_only:
        return
    results = {}
    for stage, by_mode in outs.items():
        recording, _course = STAGES[stage]
        text = read_local(str(recording))
        official = official_values(text)
        feed = {step: feed_groups(official, step) for step in FEED_STEPS_S} if stage == "4" else None
        results[stage] = {mode: {**score(stage, out, text, official, feed), "cost": cost}
                          for mode, (out, cost) in by_mode.items()}
        if set(by_mode) == set(MODES):
            results[stage]["causal"]["placed_apart"] = placed_apart(by_mode["hindsight"][0], by_mode["causal"][0],
                                                                    official)
        if stage == "4" and set(by_mode) == set(MODES):
            results[stage]["causal"]["groups_vs_hindsight"] = partition_agreement(
                results[stage]["hindsight"]["group_ids"], results[stage]["causal"]["group_ids"])
        official_back = official_backward_steps(official)
        for v in results[stage].values():
            v.pop("group_ids", None)
            v["official_backward_steps"] = official_back
    scored = cache / "hindsight.json"  # every stage scored so far: a run of one stage keeps the other's
    previous = json.loads(scored.read_text()) if scored.exists() else {}
    scored.write_text(json.dumps({**previous, **results}, indent=2, default=str))
    print(f"tables every pipeline writes: replay {', '.join(written_by(REPLAY))}; causal "
          f"{', '.join(written_by(CAUSAL))}")
    for stage, by_mode in results.items():
        if set(by_mode) == set(MODES):
            print(f"\n{table(stage, by_mode, by_mode['hindsight']['official_backward_steps'])}")


if __name__ == "__main__":
    main()
