"""Time whole commands over several runs: wall seconds and peak RSS per run (os.wait4).

Used by the speed benchmarks; runs A and B alternately so that a drifting
machine affects both, and reports medians and the per-pair ratio.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import time


def run_once(cmd: list[str], env=None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, exit status) of one run of ``cmd``."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    return wall, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def compare(cmd_a: list[str], cmd_b: list[str] | None = None, runs: int = 5, warmup: int = 1) -> dict:
    for _ in range(warmup):
        run_once(cmd_a)
        if cmd_b:
            run_once(cmd_b)
    a, b = [], []
    for _ in range(runs):
        a.append(run_once(cmd_a))
        if cmd_b:
            b.append(run_once(cmd_b))
    out = {"a": _summary(a)}
    if cmd_b:
        out["b"] = _summary(b)
        ratios = [x[0] / y[0] for x, y in zip(a, b)]
        out["ratio_a_over_b"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return out


def _summary(runs) -> dict:
    walls = [r[0] for r in runs]
    rss = [r[1] for r in runs]
    return {"wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
            "peak_rss_mib": {"median": statistics.median(rss), "max": max(rss)},
            "exit_codes": sorted({r[2] for r in runs})}
