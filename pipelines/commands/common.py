"""What every command shares: the one-line errors, the argument types, the checks made before any work."""
from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import re
import signal
import sys
import threading

from peloton.ingest.racecenter import RaceCenterError

__all__ = ["CliError", "Parser", "STANDINGS_HELP", "number", "truthy", "check_beam_args", "check_out_folder",
           "check_output_file", "check_recording", "check_dataset", "counters", "replay_race_params",
           "with_standings", "runner_args", "one_line", "exit_now", "sigterm_as_interrupt", "check_date"]

log = logging.getLogger("peloton")

#: ``--standings-before`` of replay and live.
STANDINGS_HELP = ("the classifications before this stage: the Race Center's rankings document "
                  "(/api/rankingTypeArrival-YEAR-STAGE of the stage before) or a CSV "
                  "bib,gc_time_s[,points,mountain_points]; riders absent from it are unclassified")


class CliError(Exception):
    """An operator error: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as the one ``peloton: error:`` line of every other error (no usage block)."""

    def error(self, message):
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        sys.stderr.write(f"peloton: error: {where}{message} (see '{self.prog} --help')\n")
        sys.exit(2)


def number(kind=float, low=None, high=None, above=None):
    """An argparse type: a finite number within bounds (``low``/``high`` inclusive, ``above`` exclusive)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (low is not None and value < low) or (high is not None and value > high) or (
                above is not None and value <= above):
            bounds = (f"between {low} and {high}" if low is not None and high is not None
                      else f"more than {above}" if above is not None else f"at least {low}" if low is not None
                      else f"at most {high}")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def truthy(text) -> bool:
    """--authenticate, --authenticate=true (a flex template passes values)."""
    if isinstance(text, bool):
        return text
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _beam_option_flags():
    """Every flag Beam's own parser knows: the options of all registered ``PipelineOptions`` subclasses.

    ``PipelineOptions.get_all_options`` builds the same parser (and only warns about what it cannot parse);
    importing a runner's module registers its options, so the runner is resolved first.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    import pipelines.options  # noqa: F401 - registers ReplayOptions

    class Parser(_BeamArgumentParser):
        def error(self, message):
            raise CliError(message)

    parser = Parser(allow_abbrev=False, add_help=False)
    seen = set()
    for cls in PipelineOptions.__subclasses__():
        if str(cls) not in seen:  # Beam's own de-duplication of classes defined twice
            seen.add(str(cls))
            cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's registry has no public accessor
    return parser


def check_beam_args(beam_args: list[str]) -> str:
    """Refuse what Beam would only warn about: a misspelled option, a stray word, an unknown runner.

    Returns the runner's name (DirectRunner when none is given).
    """
    import difflib

    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.runners.runner import create_runner

    runner = None
    try:
        runner = PipelineOptions(list(beam_args)).view_as(StandardOptions).runner
    except (CliError, SystemExit):
        pass  # the full parse below says what is wrong
    if runner:
        try:
            create_runner(runner)  # also imports the runner's module, registering its options
        except (ValueError, ImportError, AttributeError) as exc:
            raise CliError(f"--runner {runner}: {' '.join(str(exc).split())}") from None
    parser = _beam_option_flags()
    _known, unknown = parser.parse_known_args(list(beam_args))
    if unknown:
        flags = [f for action in parser._actions for f in action.option_strings]  # noqa: SLF001
        word = unknown[0]
        if word.startswith("-"):
            near = difflib.get_close_matches(word.split("=", 1)[0], flags, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise CliError(f"unknown option {word}: neither peloton's nor Beam's{hint}")
        raise CliError(f"unexpected argument {word!r}")
    return (runner or "DirectRunner").split(".")[-1]


def runner_args(beam_args: list[str], streaming: bool = False) -> list[str]:
    """``beam_args`` checked, with what the chosen runner needs from the local caches (never a download at run
    time): Flink's job server jar (:mod:`pipelines.flink`), Prism's binary (:mod:`pipelines.prism`).

    ``streaming``: a live job (on Flink: checkpointed, named, to be stopped with a savepoint)."""
    from pipelines.flink import flink_args, normalize_flags
    from pipelines.prism import prism_args

    beam_args = normalize_flags(beam_args)
    runner = check_beam_args(beam_args)
    if runner == "FlinkRunner":
        beam_args = flink_args(beam_args, streaming=streaming)
    elif runner == "PrismRunner":
        beam_args = prism_args(beam_args)
    if runner in ("FlinkRunner", "PrismRunner"):
        # a SIGTERM exits through atexit, where Beam stops the job server it started (else it is orphaned)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return beam_args


def check_out_folder(path: str, what: str) -> None:
    """An output folder: absent (it is made) or a folder, and not below a file."""
    if "://" in path:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise CliError(f"{what} {path} is a file, not a folder")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CliError(f"{what} {path}: {parent} is a file, not a folder")


def check_output_file(path: str, what: str) -> None:
    """A file to write: its folder exists, and it is not itself a folder (checked before the work)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"{what} {path} is a folder: give a file name")
    if not os.path.isdir(folder):
        raise CliError(f"{what} {path}: no folder {os.path.dirname(path) or folder}")


def check_recording(path: str) -> None:
    """A recording that can be read and is one of the two formats (RecordingError, one line, otherwise)."""
    from peloton.ingest.recording import detect_format, load_recording, read_text

    text = read_text(path)
    if detect_format(text) == "recording":
        load_recording(text)


def check_dataset(dataset: str | None) -> None:
    if dataset and not re.match(r"^[\w-]+[:.][\w]+$", dataset):
        raise CliError("--bigquery-dataset must look like PROJECT:DATASET")


def counters(result) -> dict | None:
    """peloton's counters of a finished run; None when the runner cannot be asked (a portable runner may not
    report user metrics)."""
    from apache_beam.metrics.metric import MetricsFilter

    out = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("peloton"))["counters"]
    except Exception as exc:  # noqa: BLE001 - whatever the runner's metrics client raises: the run itself is done
        log.warning("the runner reports no metrics (%s): the summary has no counts", one_line(exc))
        return None
    for c in counters:
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + (c.committed or c.attempted or 0)
    return out


def replay_race_params(beam_args):
    """The race parameters a replay's options set (``--group-gap-s``, ``--group-hysteresis-s``), checked."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from peloton.state.groups import GroupParams
    from peloton.state.race import RaceParams
    from pipelines.options import ReplayOptions

    replay = PipelineOptions(list(beam_args)).view_as(ReplayOptions)
    if not (replay.group_gap_s > 0 and replay.group_hysteresis_s >= 0) or not math.isfinite(
            replay.group_gap_s + replay.group_hysteresis_s):
        raise CliError("--group-gap-s must be positive and --group-hysteresis-s not negative")
    return RaceParams(groups=GroupParams(threshold_s=replay.group_gap_s, hysteresis_s=replay.group_hysteresis_s))


def with_standings(stage, path: str | None):
    """The stage with the classifications before it (``--standings-before FILE``), read and checked here: a bad
    file is one error line at launch, not a worker's traceback."""
    import dataclasses

    from peloton.ingest.recording import read_text
    from peloton.state.classifications import parse_standings

    if not path:
        return stage
    standings = parse_standings(read_text(path), path, stage.start_list(), stage.year, stage.number)
    log.info("standings before stage %s: %d riders in the general classification (%s)", stage.stage_id,
             len(standings.gc_s), path)
    return dataclasses.replace(stage, standings_before=standings.to_dict())


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # "[Errno 21] Is a directory: 'x'" -> "x: Is a directory"
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def exit_now(exc: BaseException | None) -> None:
    """Leave at once, past threads that will not stop (interpreter shutdown would wait for them)."""
    if isinstance(exc, KeyboardInterrupt):
        print("peloton: interrupted", file=sys.stderr)
    elif exc is not None:
        print(f"peloton: error: {one_line(exc)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130 if isinstance(exc, KeyboardInterrupt) else 2 if exc is not None else 0)


def sigterm_as_interrupt() -> None:
    """SIGTERM (a service manager's stop) ends the bridge the way Ctrl-C does: flushed, exit 0."""
    def handler(_signum, _frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_date(date: str) -> str:
    if not _DATE.match(date or ""):
        raise RaceCenterError(f"--date must be YYYY-MM-DD: got {date!r}")
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        raise RaceCenterError(f"--date {date} is not a day of the calendar") from None
    return date
