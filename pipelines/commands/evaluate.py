"""peloton evaluate: a replay's tables against the official values its recording carries."""
from __future__ import annotations

import os

from pipelines.commands.common import CliError

__all__ = ["add", "run"]


def add(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="compare a replay's tables with a recording's official values")
    evaluate.add_argument("recording")
    evaluate.add_argument("dir", help="the --out folder of the replay")
    evaluate.add_argument("--json", action="store_true", help="machine-readable report")
    evaluate.set_defaults(func=run)


def run(args, _beam_args) -> int:
    import json

    from peloton.ingest.recording import read_text
    from peloton.sim.evaluate import evaluate_replay, format_report

    report = evaluate_replay(read_text(args.recording), args.dir)
    from peloton.sim.simulate import truth_path

    truth_file = truth_path(args.recording)
    if os.path.exists(truth_file):  # a simulated race: score the groups against its truth
        from peloton.sim.evaluate import group_accuracy, read_table

        try:
            truth = json.loads(read_text(truth_file))
        except ValueError as exc:
            raise CliError(f"unreadable truth file {truth_file}: {exc}") from None
        report["group_accuracy"] = group_accuracy(truth, read_table(args.dir, "rider_state"))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
