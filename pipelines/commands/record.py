"""peloton record: the Race Center's stream and REST snapshot, recorded in the shipped recordings' format."""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import sys
import time

from peloton.ingest.racecenter import PARIS, RaceCenterError, ResilientStream, classify_update, fetch_rest, race_center_base
from pipelines.commands.common import check_date, number, sigterm_as_interrupt

__all__ = ["add", "run"]


def add(sub) -> None:
    record = sub.add_parser("record", help="record the Race Center's stream and REST snapshot as a recording")
    record.add_argument("--source", required=True, help="the Race Center or a stand-in")
    record.add_argument("--out", required=True, help="recording to write (*.json.gz), rewritten every minute")
    record.add_argument("--date", help="the stage's date, YYYY-MM-DD (default: today in Europe/Paris)")
    record.add_argument("--trace-base", help="where stage traces live (default: ASO's bucket for the real Race "
                                             "Center, the source itself for a stand-in)")
    record.add_argument("--idle-timeout-s", type=number(above=0), default=60.0,
                        help="a silent stream is reopened after this")
    record.add_argument("--duration-s", type=number(low=0), default=0.0, help="stop after this long (default: Ctrl-C)")
    record.add_argument("--silence-s", type=number(low=0), default=1800.0,
                        help="stop when no event came for this long (default 1800: the stage is over)")
    record.add_argument("--write-every-s", type=number(above=0), default=60.0,
                        help="rewrite the file this often (default 60)")
    record.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    record.set_defaults(func=run)


def _write_recording(path: str, recording: dict) -> None:
    data = json.dumps(recording, separators=(",", ":")).encode("utf-8")
    tmp = path + ".part"
    with open(tmp, "wb") as fh:
        fh.write(gzip.compress(data, 6) if path.endswith(".gz") else data)
    os.replace(tmp, path)


def run(args, _beam_args) -> int:
    """Record the stream and the REST snapshot in the shipped recordings' format (rewritten every minute)."""
    date = check_date(args.date) if args.date else datetime.datetime.now(PARIS).date().isoformat()
    base = race_center_base(args.source)
    if os.path.isdir(args.out):
        raise RaceCenterError(f"--out {args.out} is a folder: give a file name")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise RaceCenterError(f"no folder for {args.out}")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    rest = fetch_rest(base, date, args.trace_base, log=lambda m: say(f"record: {m}"))
    recording = {"version": 1, "meta": {"date": date, "year": int(date[:4]), "source": base}, "rest": rest,
                 "events": []}
    events = recording["events"]
    stream = ResilientStream(base, idle_timeout_s=args.idle_timeout_s, log=lambda m: say(f"record: {m}"))
    started = last_event = last_write = time.time()
    previous = None
    ticks = 0
    sigterm_as_interrupt()
    say(f"record: {base}/live-stream -> {args.out}  (Ctrl-C to stop)")
    reason = "interrupted"
    try:
        for event in stream:
            now = time.time()
            if event is not None:
                events.append({"dt": 0 if previous is None else int(round((now - previous) * 1000)),
                               "data": event.data})
                previous = last_event = now
                ticks += classify_update(event.data)[0] == "tick"
            if now - last_write >= args.write_every_s:
                recording["meta"]["recordedAt"] = _iso_now()
                _write_recording(args.out, recording)
                last_write = now
                say(f"record: {len(events):,} events ({ticks:,} ticks), {stream.reconnects} reconnects")
            if args.duration_s and now - started >= args.duration_s:
                reason = "duration reached"
                break
            if args.silence_s and now - last_event >= args.silence_s:
                reason = f"no event for {args.silence_s:g} s"
                break
    except KeyboardInterrupt:
        pass
    recording["meta"]["recordedAt"] = _iso_now()
    _write_recording(args.out, recording)
    print(f"recorded {len(events):,} events ({ticks:,} telemetry ticks) of {date} in {time.time() - started:.1f} s "
          f"({reason}; {stream.reconnects} reconnects) -> {args.out}")
    return 0


def _iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
