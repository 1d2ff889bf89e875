"""peloton replay: an archived stage through the pipeline, with hindsight or window by window."""
from __future__ import annotations

import argparse
import logging
import os
import time

from pipelines.commands.common import (STANDINGS_HELP, CliError, check_dataset, check_out_folder, check_recording,
                                       counters, replay_race_params, runner_args, with_standings)

__all__ = ["add", "run"]

log = logging.getLogger("peloton")


def add(sub) -> None:
    from peloton.output.tables import CAUSAL, written_by

    replay = sub.add_parser("replay", help="replay an archived stage through the pipeline",
                            description="Unknown options are passed to Beam (e.g. --runner DirectRunner).")
    replay.add_argument("recording", help="official feed recording (*.json, *.json.gz) or flat CSV")
    replay.add_argument("--out", required=True, help="output folder (one sub-folder of Avro files per table)")
    replay.add_argument("--course", help="course file (GeoJSON or GPX) when the recording has no trace")
    replay.add_argument("--stage", help="stage file from 'peloton stage export'")
    replay.add_argument("--write-fixes", action="store_true", help="also write the parsed fixes (tracker_fix)")
    replay.add_argument("--bigquery-dataset", help="PROJECT:DATASET: also write every table to BigQuery")
    replay.add_argument("--bigquery-method", default="FILE_LOADS",
                        choices=("FILE_LOADS", "STORAGE_WRITE_API", "STREAMING_INSERTS"),
                        help="BigQuery write method (default: load jobs, the batch way)")
    replay.add_argument("--causal", action="store_true",
                        help="derive each window from the past only, as 'peloton live' does ("
                             f"{', '.join(written_by(CAUSAL))}): the rows the live pipeline gives for this "
                             "recording")
    replay.add_argument("--standings-before", metavar="FILE",
                        help=STANDINGS_HELP)
    replay.add_argument("--rankings", metavar="FILE",
                        help="the official result of this stage: the Race Center's rankings document "
                             "(/api/rankingTypeArrival-YEAR-STAGE, as 'peloton stage fetch --rankings' saves it); "
                             "written as results and classifications rows with source = official, as the live "
                             "pipeline writes them when the bridge brings it")
    replay.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress lines, only the summary")
    replay.set_defaults(func=run)


def official_rankings(stage, path: str | None):
    """The organiser's result of this stage (``--rankings FILE``), checked by the gate here: a bad file is one
    error line at launch."""
    from peloton.ingest.gate import Gate
    from peloton.ingest.recording import read_text

    if not path:
        return None
    doc = Gate.of_stage(stage).check_rankings(read_text(path), path)
    log.info("official result of stage %s: %d riders ranked (%s)", stage.stage_id, len(doc.of("ite")), path)
    return doc


def run(args, beam_args) -> int:
    from peloton.match.stage import resolve_stage
    from pipelines.replay import run_replay

    started = time.perf_counter()
    beam_args = runner_args(beam_args)
    if args.course and args.stage:
        raise CliError("give --course FILE or --stage FILE, not both (a stage file holds its course)")
    check_out_folder(args.out, "--out")
    check_dataset(args.bigquery_dataset)
    race_params = replay_race_params(beam_args)
    stage = with_standings(resolve_stage(args.recording, args.course, args.stage), args.standings_before)
    rankings = official_rankings(stage, args.rankings)
    if args.stage:  # the stage file spared reading the recording: a bad one is still refused here, not in a worker
        check_recording(args.recording)
    course = stage.course()
    log.info("stage %s (%s): course %.1f km of polyline, %d of %d km marks used, finish at km %.2f",
             stage.stage_id, stage.name or "?", course.length_m / 1000, len(course.used_anchors),
             len(stage.anchors), course.finish_km)
    os.makedirs(args.out, exist_ok=True) if "://" not in args.out else None
    result = run_replay(stage, args.recording, args.out, beam_args, race_params, write_fixes=args.write_fixes,
                        causal=args.causal, bigquery_dataset=args.bigquery_dataset,
                        bigquery_method=args.bigquery_method, rankings=rankings)
    c = counters(result)
    wall = time.perf_counter() - started
    if c is None:
        print(f"replayed stage {stage.stage_id} ({stage.name}) in {wall:.1f} s (no counts: the runner reports "
              f"no metrics) -> {args.out}")
        return 0
    rejected = {k.split(".", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("dead_letter.")}
    print(f"replayed stage {stage.stage_id} ({stage.name}) in {wall:.1f} s")
    print(f"  rows read:          {c.get('rows_in', 0):>9,}  ({c.get('messages_read', 0):,} messages)")
    print(f"  matched fixes:      {c.get('fixes_matched', 0):>9,}  -> {os.path.join(args.out, 'rider_state')}")
    print(f"  rejected:           {sum(rejected.values()):>9,}  -> {os.path.join(args.out, 'dead_letter')}")
    for reason, n in rejected.items():
        print(f"    {reason:<22}{n:>9,}")
    print(f"  duplicates removed: {c.get('duplicates_removed', 0):>9,}")
    return 0
