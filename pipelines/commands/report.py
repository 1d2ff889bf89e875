"""peloton report: one self-contained HTML page of a replay."""
from __future__ import annotations

import os
import time

from pipelines.commands.common import CliError, check_output_file

__all__ = ["add", "run"]


def add(sub) -> None:
    report = sub.add_parser("report", help="one self-contained HTML page of a replay: map, profile, gaps, "
                                           "predictions, groups, climbs")
    report.add_argument("dir", help="the --out folder of a replay")
    report.add_argument("--out", help="the HTML file (default DIR/report.html)")
    report.add_argument("--stage", help="stage file (default DIR/stage.json, written by the replay)")
    report.set_defaults(func=run)


def run(args, _beam_args) -> int:
    from peloton.ingest.recording import read_text
    from peloton.match.stage import Stage
    from peloton.report.page import write_report

    stage_file = args.stage or os.path.join(args.dir, "stage.json")
    if not os.path.isdir(args.dir):
        raise CliError(f"{args.dir} is not a folder of tables (run 'peloton replay --out {args.dir}' first)")
    if not os.path.exists(stage_file):
        raise CliError(f"no stage file {stage_file}: replay again, or pass --stage FILE ('peloton stage export')")
    stage = Stage.from_json(read_text(stage_file))
    out = args.out or os.path.join(args.dir, "report.html")
    check_output_file(out, "--out")
    started = time.perf_counter()
    counts = write_report(args.dir, stage, out)
    print(f"report of stage {stage.stage_id} ({stage.name}): {counts['riders']} riders, {counts['frames']} moments, "
          f"{counts['bytes'] / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s -> {out}")
    return 0
