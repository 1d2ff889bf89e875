"""The ``peloton`` command line.

    peloton replay RECORDING --out DIR [--course FILE] [--stage FILE] [--causal] [Beam options]
    peloton tour DIR --out OUT [--causal] [-q] [Beam options]
    peloton live --subscription S --stage FILE [--out DIR] [--output-topic-prefix P] [Beam options]
    peloton evaluate RECORDING DIR [--json]
    peloton stage export RECORDING [--course FILE]
    peloton simulate --course FILE --out RECORDING [--riders N] [--hz F] [--seed S] [--caught yes|no]
    peloton simulate --stages 2022-03,2022-04 | --tour 2022 --first 3 --count 3  --out DIR [--riders N]
    peloton pubsub init --topic T --subscription S [--output-topic-prefix P]
    peloton publish RECORDING --topic T [--speed N] [--per-fix] [--shift-to-now] [faults]
    peloton report DIR [--out report.html] [--stage FILE]
    peloton serve --stage FILE --output-topic-prefix P [--port 8080] [--host 127.0.0.1]
    peloton racecenter serve RECORDING [--speed N] [--port 8090] [--shift-to-now] [faults]
    peloton bridge --source URL --topic T [--sign-key-id ID --feed-keys F]
    peloton stage fetch --source URL --date YYYY-MM-DD [--course FILE]
    peloton record --source URL --out RECORDING [--date YYYY-MM-DD]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from pipelines.commands import COMMANDS
from pipelines.commands.common import CliError, Parser, one_line

__all__ = ["main", "build_parser"]

log = logging.getLogger("peloton")


def build_parser() -> argparse.ArgumentParser:
    """peloton's parser: each command adds its own (``pipelines/commands/``)."""
    parser = Parser(prog="peloton", description="Live race state from rider GPS trackers.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the summary")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    return parser


def _refuse_misspelt_own_options(parser: argparse.ArgumentParser, command: str, beam_args: list[str]) -> None:
    """A near miss of the command's own option is said at once: before Beam loads and Pub/Sub is asked (whose
    answer would hide the typo), and the rest goes to Beam's own check."""
    import difflib

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]  # noqa: SLF001
    own = [f for action in sub._actions for f in action.option_strings if f.startswith("--")]  # noqa: SLF001
    for word in beam_args:
        flag = word.split("=", 1)[0]
        if not flag.startswith("--") or flag.replace("_", "-") in own:  # Beam's spelling of our own options
            continue
        near = difflib.get_close_matches(flag, own, n=1, cutoff=0.8)
        if near:
            raise CliError(f"unknown option {word}: neither peloton's nor Beam's (did you mean {near[0]}?)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, beam_args = parser.parse_known_args(argv)
        if beam_args and args.command not in ("replay", "tour", "live"):
            parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    except SystemExit as done:  # --help, or the parser's one error line: a status, also when called in-process
        return done.code if isinstance(done.code, int) else 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    from peloton.ingest.official import RankingsError
    from peloton.ingest.recording import RecordingError
    from peloton.match.stage import StageError
    from peloton.sim.evaluate import NothingToEvaluate, TableError
    from peloton.state.classifications import StandingsError
    from pipelines.flink import FlinkError
    from pipelines.prism import PrismError
    from pipelines.pubsub import PubSubError

    try:
        if beam_args:
            _refuse_misspelt_own_options(parser, args.command, beam_args)
        return args.func(args, beam_args)
    except BrokenPipeError:  # the reader went away (`| head`): as quiet as a process stopped by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (CliError, RecordingError, StageError, StandingsError, RankingsError, OSError, PubSubError, TableError,
            NothingToEvaluate, FlinkError, PrismError) as exc:
        print(f"peloton: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("peloton: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug, not bad input: still one line, the trace on request
        if os.environ.get("PELOTON_TRACEBACK"):
            raise
        print(f"peloton: internal error: {type(exc).__name__}: {one_line(exc)} (PELOTON_TRACEBACK=1 shows "
              f"where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
