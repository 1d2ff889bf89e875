"""peloton stage export | fetch: the stage file, from a recording or from the Race Center's REST API."""
from __future__ import annotations

import json
import logging
import sys

from peloton.ingest.official import compact_rankings, rankings_bind
from peloton.ingest.racecenter import RaceCenterError, fetch_rest, race_center_base, trace_base_for
from pipelines.bridge import rankings_fetcher
from pipelines.commands.common import check_date

__all__ = ["add", "run_export", "run_fetch"]

log = logging.getLogger("peloton")


def add(sub) -> None:
    stage = sub.add_parser("stage", help="stage files")
    stage_sub = stage.add_subparsers(dest="stage_command", required=True)
    export = stage_sub.add_parser("export", help="write the stage file of a recording to stdout")
    export.add_argument("recording")
    export.add_argument("--course", help="course file when the recording has no trace")
    export.set_defaults(func=run_export)
    fetch = stage_sub.add_parser("fetch", help="write the stage file of a date from the Race Center's REST API")
    fetch.add_argument("--source", required=True, help="the Race Center (https://racecenter.letour.fr) or a stand-in")
    fetch.add_argument("--date", required=True, help="the stage's date, YYYY-MM-DD")
    fetch.add_argument("--course", help="course file when the API has no trace (time trials)")
    fetch.add_argument("--rankings", metavar="OUT", help="also save the stage's official result (the Race Center's "
                                                         "/api/rankingTypeArrival-YEAR-STAGE, once out) to OUT: "
                                                         "'peloton replay --rankings OUT'")
    fetch.add_argument("--trace-base", help="where stage traces live (default: ASO's bucket for the real Race "
                                            "Center, the source itself for a stand-in)")
    fetch.set_defaults(func=run_fetch)


def run_export(args, _beam_args) -> int:
    from peloton.match.stage import resolve_stage

    stage = resolve_stage(args.recording, args.course, None)
    stage.course()  # fail here, not on a worker, if the course is unusable
    sys.stdout.write(stage.to_json() + "\n")
    return 0


def run_fetch(args, _beam_args) -> int:
    """The stage file from the REST API, built by the same code as ``stage export`` builds it from a recording."""
    from peloton.ingest.recording import read_text
    from peloton.match.stage import parse_course_text, stage_from_recording

    date = check_date(args.date)
    base = race_center_base(args.source)
    rest = fetch_rest(base, date, args.trace_base, log=lambda m: log.warning("stage fetch: %s", m))
    route = parse_course_text(read_text(args.course), args.course) if args.course else None
    if route is None and not (rest.get("trace") or {}).get("routePoints"):
        number = rest["stages"][date].get("stage")
        raise RaceCenterError(f"no trace of stage {number} at {args.trace_base or trace_base_for(base)} (a time "
                              f"trial has none): pass --course FILE")
    stage = stage_from_recording({"meta": {"date": date, "year": int(date[:4])}, "rest": rest}, route=route)
    stage.course()  # fail here, not on a worker, if the course is unusable
    if args.rankings:
        _fetch_rankings_file(base, stage, args.rankings)
    sys.stdout.write(stage.to_json() + "\n")
    return 0


def _fetch_rankings_file(base: str, stage, out: str) -> None:
    """The stage's rankings (``stage fetch --rankings OUT``), checked as the live gate checks them, saved as
    fetched (compacted): the replay's ``--rankings FILE``."""
    from peloton.ingest.gate import Gate

    bind = rankings_bind(stage.year, stage.number)
    got = rankings_fetcher(base, stage.year, stage.number)(0.0)
    if got is None:
        raise RaceCenterError(f"{base}/api/{bind}: the official result is not out yet")
    text = json.dumps(compact_rankings(got[1]), separators=(",", ":"))
    Gate.of_stage(stage).check_rankings(text, f"{base}/api/{bind}")
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    log.warning("stage fetch: the official result of stage %s (%s) -> %s", stage.number, bind, out)
