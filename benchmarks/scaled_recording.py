"""Make a denser recording from a real one: every rider interpolated to 1 s ticks.

    python benchmarks/scaled_recording.py RECORDING OUT.json.gz [--hz 1] [--hours H]

Load for the scale benchmark: the stage 4 recording (6 s ticks) becomes
~3.2 million fixes at 1 Hz. Positions are interpolated linearly in time
between a rider's consecutive live fixes at most 120 s apart; trackers not
yet live keep their placeholder rows at the original ticks. Official derived
fields are not carried over.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peloton.ingest.feed import PLACEHOLDER_LAT, concat_batches, parse_message  # noqa: E402
from peloton.ingest.recording import iter_messages, load_recording, read_local  # noqa: E402
from peloton.match.matching import dedupe  # noqa: E402

MAX_GAP_S = 120.0


def densify(recording: dict, hz: float, hours: float | None) -> dict:
    text_events = [(k, p) for k, p in iter_messages(json.dumps({"events": recording["events"]}))]
    fixes = concat_batches([parse_message("x", k, p)[0] for k, p in text_events], "x")
    fixes, _ = dedupe(fixes)
    t0 = fixes.t.min()
    t_end = fixes.t.max() if hours is None else t0 + hours * 3600
    step = 1.0 / hz
    out_t, out_bib, out_lat, out_lon = [], [], [], []
    starts = np.r_[0, np.flatnonzero(np.diff(fixes.bib)) + 1, len(fixes)]
    for a, b in zip(starts[:-1], starts[1:]):  # per rider (~180), vectorised within
        t, lat, lon = fixes.t[a:b], fixes.lat[a:b], fixes.lon[a:b]
        grid = np.arange(np.ceil(t[0] / step) * step, min(t[-1], t_end) + 1e-9, step)
        j = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, t.size - 1)
        k = np.clip(j + 1, 0, t.size - 1)
        ok = (t[k] - t[j] <= MAX_GAP_S) | (grid == t[j])
        grid = grid[ok]
        out_t.append(grid)
        out_bib.append(np.full(grid.size, fixes.bib[a]))
        out_lat.append(np.interp(grid, t, lat))
        out_lon.append(np.interp(grid, t, lon))
    t = np.concatenate(out_t)
    order = np.argsort(t, kind="stable")
    t, bib = t[order], np.concatenate(out_bib)[order]
    lat, lon = np.concatenate(out_lat)[order], np.concatenate(out_lon)[order]
    cuts = np.r_[0, np.flatnonzero(np.diff(t)) + 1, t.size]
    events = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        riders = [{"Bib": int(x), "Latitude": round(float(y), 6), "Longitude": round(float(z), 6)}
                  for x, y, z in zip(bib[a:b], lat[a:b], lon[a:b])]
        ts = float(t[a])
        events.append({"dt": int(step * 1000), "data": json.dumps(
            {"bind": "telemetryCompetitor-2026", "data": {"TimeStamp": int(ts) if ts == int(ts) else ts,
                                                          "Riders": riders}}, separators=(",", ":"))})
    # placeholders (trackers not live yet) at their original ticks
    for k, p in text_events:
        data = json.loads(p)["data"]
        if data["TimeStamp"] > t_end:
            continue
        ph = [{"Bib": r["Bib"], "Latitude": r["Latitude"], "Longitude": r["Longitude"]} for r in data["Riders"]
              if abs(r.get("Latitude", 0) - PLACEHOLDER_LAT) < 0.01]
        if ph:
            events.append({"dt": 0, "data": json.dumps({"data": {"TimeStamp": data["TimeStamp"], "Riders": ph}})})
    return {**recording, "events": events}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recording")
    ap.add_argument("out")
    ap.add_argument("--hz", type=float, default=1.0)
    ap.add_argument("--hours", type=float, default=None)
    args = ap.parse_args()
    rec = load_recording(read_local(args.recording))
    dense = densify(rec, args.hz, args.hours)
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=1) as fh:
        json.dump(dense, fh)
    n = sum(len(json.loads(e["data"])["data"]["Riders"]) for e in dense["events"])
    print(f"{args.out}: {len(dense['events'])} ticks, {n} rider rows")


if __name__ == "__main__":
    main()
