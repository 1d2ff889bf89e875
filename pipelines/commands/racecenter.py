"""peloton racecenter serve: a local stand-in for the official Race Center (rehearsals, tests)."""
from __future__ import annotations

import json
import os
import time

from peloton.ingest.racecenter import RaceCenterError
from peloton.sim.racecenter import Faults, RaceCenterServer
from pipelines.bridge import rankings_from_truth
from pipelines.commands.common import number, sigterm_as_interrupt

__all__ = ["add", "run", "window_events"]


def add(sub) -> None:
    rc = sub.add_parser("racecenter", help="a local stand-in for the official Race Center (rehearsals, tests)")
    rc_sub = rc.add_subparsers(dest="racecenter_command", required=True)
    rc_serve = rc_sub.add_parser("serve", help="serve a recording as the Race Center does: SSE /live-stream at "
                                               "the recorded rhythm, and the REST API")
    rc_serve.add_argument("recording", help="official feed recording (*.json, *.json.gz)")
    rc_serve.add_argument("--speed", type=number(low=0), default=1.0,
                          help="times real speed (default 1); 0 = at once")
    rc_serve.add_argument("--port", type=number(int, low=0, high=65535), default=8090,
                          help="port to listen on (default 8090; 0: any free port)")
    rc_serve.add_argument("--host", default="127.0.0.1", help="address to bind (default localhost only)")
    rc_serve.add_argument("--shift-to-now", action="store_true",
                          help="move tick times by whole 6 s steps so the first tick is now (for a live pipeline)")
    rc_serve.add_argument("--lead-s", type=number(), default=0.0,
                          help="with --shift-to-now: the first tick's time this far after now (the local runner "
                               "gives provisional rows only for ticks ahead of its clock)")
    rc_serve.add_argument("--start-s", type=number(low=0), default=0.0,
                          help="start this many seconds into the recording")
    rc_serve.add_argument("--duration-s", type=number(low=0), default=0.0,
                          help="serve this many seconds of it (0: all)")
    rc_serve.add_argument("--max-gap-s", type=number(low=0), default=0.0,
                          help="wait at most this long between events (default 0: as recorded)")
    rc_serve.add_argument("--keepalive-s", type=number(above=0), default=15.0,
                          help="keep-alive comment period (default 15)")
    rc_serve.add_argument("--drop-at", help="cut the connection in the middle of these events (e.g. 10,40)")
    rc_serve.add_argument("--stall-at", help="go silent before these events, EVENT:SECONDS (e.g. 30:90)")
    rc_serve.add_argument("--malformed-every", type=number(int, low=0), default=0,
                          help="a malformed event after every N events")
    rc_serve.add_argument("--other-every", type=number(int, low=0), default=0,
                          help="an event of another bind after every N events")
    rc_serve.add_argument("--chunk-quirks", action="store_true",
                          help="chunk framing strict HTTP parsers reject; events split across chunks")
    rc_serve.add_argument("--seed", type=number(int, low=0), default=0, help="seed of the chunk splits")
    rc_serve.add_argument("--rankings", metavar="FILE",
                          help="the official result to serve at /api/rankingTypeArrival-YEAR-STAGE once the last "
                               "event has been served (default: for a simulated stage, built from its truth beside "
                               "the recording; else none, 404)")
    rc_serve.add_argument("--rankings-delay-s", type=number(low=0), default=0.0,
                          help="serve the official result this long after the last event (default 0)")
    rc_serve.add_argument("--serve-for-s", type=number(low=0), default=0.0,
                          help="stop after this long (default: Ctrl-C)")
    rc_serve.set_defaults(func=run)


def _parse_faults(args) -> Faults:
    try:
        drops = tuple(int(x) for x in args.drop_at.split(",") if x.strip()) if args.drop_at else ()
        stalls = tuple((int(a), float(b)) for a, b in (x.split(":") for x in args.stall_at.split(",") if x.strip())) \
            if args.stall_at else ()
    except ValueError:
        raise RaceCenterError("--drop-at takes event numbers (10,20); --stall-at EVENT:SECONDS (30:90)") from None
    return Faults(drop_at=drops, stall_at=stalls, malformed_every=args.malformed_every,
                  other_every=args.other_every, chunk_quirks=args.chunk_quirks, seed=args.seed)


def window_events(recording: dict, start_s: float, duration_s: float) -> dict:
    """The recording's events from ``start_s`` seconds in (by their ``dt``), for ``duration_s`` (0: to the end)."""
    kept, t = [], 0.0
    for i, e in enumerate(recording.get("events") or []):
        t += (float(e.get("dt") or 0) / 1000.0) if i and isinstance(e, dict) else 0.0
        if t >= start_s and (not duration_s or t < start_s + duration_s):
            kept.append(e)
    return {**recording, "events": kept}


def run(args, _beam_args) -> int:
    from peloton.ingest.recording import detect_format, load_recording, read_text

    text = read_text(args.recording)
    if detect_format(text) != "recording":
        raise RaceCenterError(f"{args.recording} is not a Race Center recording (JSON with events)")
    recording = load_recording(text)
    total_events = len(recording.get("events") or [])
    recording = window_events(recording, args.start_s, args.duration_s)
    if total_events and not recording["events"]:
        raise RaceCenterError(f"nothing to serve: no event from --start-s {args.start_s:g} on (the recording's "
                              f"{total_events:,} events)")
    faults = _parse_faults(args)
    rankings, rankings_from = _stand_in_rankings(args.recording, recording, args.rankings)
    try:
        server = RaceCenterServer(recording, args.host, args.port, speed=args.speed, faults=faults,
                                  keepalive_s=args.keepalive_s, shift_to_now=args.shift_to_now,
                                  max_gap_s=args.max_gap_s, shift_lead_s=args.lead_s, rankings=rankings,
                                  rankings_delay_s=args.rankings_delay_s).start()
    except OSError as exc:
        raise RaceCenterError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    total = server.due[-1] if server.due else 0.0
    print(f"race center stand-in of {server.date or 'the recording'} (stage {server.stage_number}): {server.url}  "
          f"{len(server.events):,} events over {total / 60:.1f} min at "
          f"{'full speed' if args.speed == 0 else f'{args.speed:g}x'}  (Ctrl-C to stop)", flush=True)
    print(f"  stream {server.url}/live-stream; REST {server.url}/api/stage-{server.year}, "
          f"/api/allCompetitors-{server.year}, /api/team-{server.year}, "
          f"/api/checkpoint-{server.year}-{server.stage_number}, "
          f"/tdf/{server.year}/stage-{server.stage_number}/trace.json", flush=True)
    print(f"  official result /api/rankingTypeArrival-{server.year}-{server.stage_number}: "
          + (f"{rankings_from}, after the last event + {args.rankings_delay_s:g} s" if rankings is not None
             else "none (404): no --rankings and no truth beside the recording"), flush=True)
    sigterm_as_interrupt()
    try:
        deadline = time.time() + args.serve_for_s if args.serve_for_s else None
        shift_said = False
        while deadline is None or time.time() < deadline:
            time.sleep(0.5)
            if server.shift_s and not shift_said:
                shift_said = True
                print(f"  tick times shifted by {server.shift_s:+.0f} s (the first tick is now)", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    st = server.stats
    print(f"served {st.sent:,} events on {st.connections} connections ({st.resumed} resumed); faults: "
          f"{st.drops} drops, {st.stalls} stalls, {st.malformed} malformed, {st.other} other binds")
    return 0


def _stand_in_rankings(path: str, recording: dict, rankings_path: str | None):
    """(document, where from) the stand-in serves as the stage's result: ``--rankings FILE``, else for a simulated
    stage one built from its truth (``STEM.truth.json.gz``: the true finishes), else (None, "")."""
    from peloton.ingest.recording import read_text
    from peloton.sim.simulate import truth_path

    if rankings_path:
        try:
            return json.loads(read_text(rankings_path)), rankings_path
        except ValueError as exc:
            raise RaceCenterError(f"{rankings_path}: not JSON ({exc})") from None
    truth_file = truth_path(path)
    if not os.path.exists(truth_file):
        return None, ""
    try:
        truth = json.loads(read_text(truth_file))
    except ValueError as exc:
        raise RaceCenterError(f"{truth_file}: not JSON ({exc})") from None
    doc = rankings_from_truth(truth, recording)
    return (doc, f"built from {os.path.basename(truth_file)}") if doc else (None, "")
