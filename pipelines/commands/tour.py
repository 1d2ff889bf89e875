"""peloton tour: every stage recording of a folder replayed in date order, the classifications chained."""
from __future__ import annotations

import argparse
import time

from pipelines.commands.common import CliError, check_out_folder, replay_race_params, runner_args

__all__ = ["add", "run"]


def add(sub) -> None:
    tour = sub.add_parser("tour", help="replay every stage recording of a folder in date order, the "
                                       "classifications chained from stage to stage",
                          description="Beside a recording STEM.json.gz: STEM.course.geojson (or .gpx), its course "
                                      "when it has none; STEM.rankings.json, the official standings after it. "
                                      "Unknown options are passed to each replay and to Beam.")
    tour.add_argument("dir", help="folder of stage recordings (*.json.gz, *.json)")
    tour.add_argument("--out", required=True, help="output folder: OUT/DATE/<table>/*.avro and "
                                                   "OUT/DATE/standings_after.csv per stage")
    tour.add_argument("--causal", action="store_true", help="each stage as 'peloton replay --causal'")
    tour.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                      help="no progress line per stage")
    tour.set_defaults(func=run)


def run(args, beam_args) -> int:
    from pipelines.tour import TourError, run_tour

    started = time.perf_counter()
    beam_args = runner_args(beam_args)
    check_out_folder(args.out, "--out")
    try:
        files = run_tour(args.dir, args.out, beam_args, replay_race_params(beam_args), causal=args.causal,
                         say=(lambda line: None) if args.quiet else (lambda line: print(line, flush=True)))
    except TourError as exc:
        raise CliError(str(exc)) from None
    print(f"tour of {len(files)} stages replayed in {time.perf_counter() - started:.0f} s; standings after the "
          f"last: {files[-1]}")
    return 0
