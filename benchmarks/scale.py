"""Scale (issue 27): ``peloton tour`` of a simulated multi-stage race on the local runner and on a Flink session
cluster: wall time and peak memory, and how they grow with stages and riders.

    .venv/bin/python -m benchmarks.scale --work DIR [--stages 2022-02,...] [--riders 60,176]
        [--runners local,flink] [--flink-master localhost:8092] [--flink-state .flink] [--runs 1] [--json F]
    .venv/bin/python -m benchmarks.scale --table F1.json F2.json ...   (the table of earlier runs)

For each rider count it simulates the stages once (``peloton simulate --stages ... --riders R --seed 1``, kept
in ``DIR/simR`` and reused), then runs ``peloton tour DIR/simR --out DIR/out-R-RUNNER`` (Flink:
``--runner FlinkRunner --flink-master M``) as a child process, reading its per-stage lines as they come and
sampling memory every second from /proc:

* client: the ``peloton`` process and all its descendants (on Flink: the job server JVM Beam starts);
* cluster: the Flink JVMs whose pids ``scripts/flink.sh`` keeps in ``--flink-state`` and their descendants
  (the ``peloton-flink-worker`` SDK workers the TaskManagers start), idle cluster included.

Peak RSS is the largest sum over one sample. The first N stages of a tour are the same work whatever follows,
so the tour of N stages is read off the run of all of them at the end of stage N (its wall time from the
start, its peak so far); ``--stages`` of 1 or 3 measures a shorter tour alone. Per-stage rows are the
simulated recording's fixes (riders x ticks).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PELOTON = os.path.join(os.path.dirname(sys.executable), "peloton")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
STAGE_LINE = re.compile(r"^stage (\d+)/(\d+) (\S+) .*replayed in (\d+) s")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pids: list[int]) -> float:
    """CPU seconds of processes (user + system), with their reaped children's (where a JVM or this client
    waited for its workers and job servers)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


def tree_rss_mib(roots: list[int], kids: dict[int, list[int]]) -> float:
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(kids.get(pid, ()))
    return sum(_rss_kib(p) for p in seen) / 1024


def flink_pids(state: str) -> list[int]:
    pids = []
    for name in ("jobmanager.pid", "taskmanager-1.pid", "taskmanager-2.pid"):
        try:
            with open(os.path.join(state, name), encoding="ascii") as fh:
                pids.append(int(fh.read().strip()))
        except (OSError, ValueError):
            pass
    return pids


def run_tour(sim_dir: str, out: str, runner_args: list[str], cluster: list[int]) -> dict:
    """One ``peloton tour``: per stage, its time and the wall and peaks at its end."""
    samples, stop = [], threading.Event()
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    err = open(os.path.join(out, "tour.stderr"), "w", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([PELOTON, "tour", sim_dir, "--out", out, *runner_args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=err, text=True)

    def sample():
        while not stop.is_set():
            kids = _children()
            samples.append((time.perf_counter() - started, tree_rss_mib([proc.pid], kids),
                            tree_rss_mib(cluster, kids) if cluster else 0.0))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stages = []
    cpu_before = {"client": cpu_s([proc.pid]), "cluster": cpu_s(cluster)}
    for line in proc.stdout:
        m = STAGE_LINE.match(line.strip())
        if m:
            at = time.perf_counter() - started
            upto = [s for s in samples if s[0] <= at] or samples[:1]
            stages.append({"stage": int(m.group(1)), "date": m.group(3), "stage_s": int(m.group(4)),
                           "wall_s": round(at, 1), "client_mib": round(max(s[1] for s in upto)),
                           "cluster_mib": round(max(s[2] for s in upto)),
                           "total_mib": round(max(s[1] + s[2] for s in upto))})
            # CPU of the stage: the client's (its job server, reaped, included) and the cluster's (JVMs, and
            # the SDK workers they reaped)
            cpu_now = {"client": cpu_s([proc.pid]), "cluster": cpu_s(cluster)}
            stages[-1].update({f"{k}_cpu_s": round(cpu_now[k] - cpu_before[k], 1) for k in cpu_now})
            cpu_before = cpu_now
    proc.wait()
    err.close()
    stop.set()
    sampler.join()
    if proc.returncode != 0:  # the stages done so far still count; the table says where it stopped
        print(f"scale: peloton tour {sim_dir} {' '.join(runner_args)} failed ({proc.returncode}) after "
              f"{len(stages)} stages: {os.path.join(out, 'tour.stderr')}", file=sys.stderr)
    return {"stages": stages, "wall_s": round(time.perf_counter() - started, 1), "exit": proc.returncode,
            "cluster_idle_mib": round(samples[0][2]) if samples else 0}


def stage_rows(sim_dir: str) -> dict[str, int]:
    """Fixes per simulated stage (riders x ticks), by date."""
    rows = {}
    for name in sorted(os.listdir(sim_dir)):
        if name.endswith(".json.gz") and ".truth." not in name:
            with gzip.open(os.path.join(sim_dir, name), "rt", encoding="utf-8") as fh:
                rec = json.load(fh)
            rows[name.split(".")[0]] = sum(len(json.loads(e["data"])["data"].get("Riders") or ())
                                           for e in rec["events"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work")
    ap.add_argument("--stages", default="2022-02,2022-03,2022-04,2022-05,2022-06,2022-07")
    ap.add_argument("--riders", default="60,176")
    ap.add_argument("--runners", default="local,flink")
    ap.add_argument("--flink-master", default="localhost:8081")
    ap.add_argument("--flink-state", default=os.path.join(ROOT, ".flink"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--table", nargs="+", metavar="JSON", help="only print the table of earlier --json files")
    args = ap.parse_args()
    if args.table:
        results = []
        for path in args.table:
            with open(path, encoding="utf-8") as fh:
                results += json.load(fh)
        print_table(results)
        return
    if not args.work:
        ap.error("--work DIR is needed (or --table)")
    os.makedirs(args.work, exist_ok=True)
    results = []
    for riders in (int(r) for r in args.riders.split(",")):
        sim = os.path.join(args.work, f"sim{riders}")
        if not os.path.isdir(sim):
            subprocess.run([PELOTON, "-q", "simulate", "--stages", args.stages, "--riders", str(riders), "--seed",
                            "1", "--out", sim], check=True, cwd=ROOT)
        rows = stage_rows(sim)
        for runner in args.runners.split(","):
            extra = ["--runner", "FlinkRunner", "--flink-master", args.flink_master] if runner == "flink" else []
            cluster = flink_pids(args.flink_state) if runner == "flink" else []
            for run in range(args.runs):
                out = os.path.join(args.work, f"out-{riders}-{runner}-{run}")
                r = run_tour(sim, out, extra, cluster)
                r.update(riders=riders, runner=runner, run=run, rows=rows, load=os.getloadavg())
                results.append(r)
                if args.json:  # after every run: a later failure keeps what was measured
                    with open(args.json, "w", encoding="utf-8") as fh:
                        json.dump(results, fh, indent=1)
                print(f"{runner} {riders} riders run {run + 1}: {r['wall_s']} s, load {r['load'][0]:.1f}; "
                      + ", ".join(f"{s['stage']}: {s['stage_s']} s" for s in r["stages"]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    print_table(results)


def print_table(results: list[dict]) -> None:
    print("\n| runner | riders | stages N | tour wall (s) | per stage (s), median (min-max) | CPU per stage (s), "
          "median | fixes per s | client peak (MiB) | cluster peak (MiB) | total peak (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["runner"], r["riders"]) for r in results}, key=lambda k: (k[0], k[1]))
    for runner, riders in keys:
        runs = [r for r in results if (r["runner"], r["riders"]) == (runner, riders)]
        n_max = min(len(r["stages"]) for r in runs)
        for n in sorted({1, 3, 6, 21, n_max} & set(range(1, n_max + 1))):
            at = [r["stages"][n - 1] for r in runs]
            per = [s["stage_s"] for r in runs for s in r["stages"][:n]]
            rows = sum(list(runs[0]["rows"].values())[:n])
            wall = statistics.median(a["wall_s"] for a in at)
            cpu = [s.get("client_cpu_s", 0) + s.get("cluster_cpu_s", 0) for r in runs for s in r["stages"][:n]]
            print(f"| {runner} | {riders} | {n} | {wall:.0f} | {statistics.median(per):.0f} "
                  f"({min(per)}-{max(per)}) | {statistics.median(cpu):.0f} | {rows / wall:,.0f} | "
                  f"{max(a['client_mib'] for a in at)} | {max(a['cluster_mib'] for a in at) or '-'} | "
                  f"{max(a['total_mib'] for a in at)} |")


if __name__ == "__main__":
    main()
