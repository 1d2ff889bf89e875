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
import math
import os
import re
import sys
import time

__all__ = ["main"]

log = logging.getLogger("peloton")


class CliError(Exception):
    """An operator error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as the one ``peloton: error:`` line of every other error (no usage block)."""

    def error(self, message):
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        sys.stderr.write(f"peloton: error: {where}{message} (see '{self.prog} --help')\n")
        sys.exit(2)


def _number(kind=float, low=None, high=None, above=None):
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


def _check_out_folder(path: str, what: str) -> None:
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


def _check_output_file(path: str, what: str) -> None:
    """A file to write: its folder exists, and it is not itself a folder (checked before the work)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"{what} {path} is a folder: give a file name")
    if not os.path.isdir(folder):
        raise CliError(f"{what} {path}: no folder {os.path.dirname(path) or folder}")


def _check_recording(path: str) -> None:
    """A recording that can be read and is one of the two formats (RecordingError, one line, otherwise)."""
    from peloton.ingest.recording import detect_format, load_recording, read_text

    text = read_text(path)
    if detect_format(text) == "recording":
        load_recording(text)


def _check_dataset(dataset: str | None) -> None:
    if dataset and not re.match(r"^[\w-]+[:.][\w]+$", dataset):
        raise CliError("--bigquery-dataset must look like PROJECT:DATASET")


def _counters(result) -> dict | None:
    """peloton's counters of a finished run; None when the runner cannot be asked (a portable runner may not
    report user metrics)."""
    from apache_beam.metrics.metric import MetricsFilter

    out = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("peloton"))["counters"]
    except Exception as exc:  # noqa: BLE001 - whatever the runner's metrics client raises: the run itself is done
        log.warning("the runner reports no metrics (%s): the summary has no counts", _one_line(exc))
        return None
    for c in counters:
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + (c.committed or c.attempted or 0)
    return out


def _replay_race_params(beam_args):
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


def _runner_args(beam_args: list[str]) -> list[str]:
    """``beam_args`` checked, with what the chosen runner needs from the local caches (never a download at run
    time): Flink's job server jar (:mod:`pipelines.flink`), Prism's binary (:mod:`pipelines.prism`)."""
    from pipelines.flink import flink_args, normalize_flags
    from pipelines.prism import prism_args

    beam_args = normalize_flags(beam_args)
    runner = check_beam_args(beam_args)
    if runner == "FlinkRunner":
        beam_args = flink_args(beam_args)
    elif runner == "PrismRunner":
        beam_args = prism_args(beam_args)
    if runner in ("FlinkRunner", "PrismRunner"):
        # a SIGTERM exits through atexit, where Beam stops the job server it started (else it is orphaned)
        import signal
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return beam_args


def cmd_replay(args, beam_args) -> int:
    from peloton.match.stage import resolve_stage
    from pipelines.replay import run_replay

    started = time.perf_counter()
    beam_args = _runner_args(beam_args)
    if args.course and args.stage:
        raise CliError("give --course FILE or --stage FILE, not both (a stage file holds its course)")
    _check_out_folder(args.out, "--out")
    _check_dataset(args.bigquery_dataset)
    race_params = _replay_race_params(beam_args)
    stage = _with_standings(resolve_stage(args.recording, args.course, args.stage), args.standings_before)
    if args.stage:  # the stage file spared reading the recording: a bad one is still refused here, not in a worker
        _check_recording(args.recording)
    course = stage.course()
    log.info("stage %s (%s): course %.1f km of polyline, %d of %d km marks used, finish at km %.2f",
             stage.stage_id, stage.name or "?", course.length_m / 1000, len(course.used_anchors),
             len(stage.anchors), course.finish_km)
    os.makedirs(args.out, exist_ok=True) if "://" not in args.out else None
    result = run_replay(stage, args.recording, args.out, beam_args, race_params, write_fixes=args.write_fixes,
                        causal=args.causal, bigquery_dataset=args.bigquery_dataset,
                        bigquery_method=args.bigquery_method)
    c = _counters(result)
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


def cmd_tour(args, beam_args) -> int:
    from pipelines.tour import TourError, run_tour

    started = time.perf_counter()
    beam_args = _runner_args(beam_args)
    _check_out_folder(args.out, "--out")
    try:
        files = run_tour(args.dir, args.out, beam_args, _replay_race_params(beam_args), causal=args.causal,
                         say=(lambda line: None) if args.quiet else (lambda line: print(line, flush=True)))
    except TourError as exc:
        raise CliError(str(exc)) from None
    print(f"tour of {len(files)} stages replayed in {time.perf_counter() - started:.0f} s; standings after the "
          f"last: {files[-1]}")
    return 0


def _truthy(text) -> bool:
    """--authenticate, --authenticate=true (a flex template passes values)."""
    if isinstance(text, bool):
        return text
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def cmd_live(args, beam_args) -> int:
    from peloton.match.stage import resolve_stage
    from pipelines.pubsub import (OUTPUT_TABLES, check_pubsub_reachable, checked_subscription, checked_topic,
                                  feed_keyring, feed_keys_text, output_topic)
    from pipelines.prism import refuse_live

    refuse_live(beam_args)
    subscription = checked_subscription(args.subscription)
    if args.output_topic_prefix:
        checked_topic(args.output_topic_prefix, "--output-topic-prefix")
    if args.out:
        _check_out_folder(args.out, "--out")
    if not (args.out or args.output_topic_prefix or args.bigquery_dataset):
        raise CliError("nothing to write: give --out DIR, --output-topic-prefix projects/P/topics/NAME "
                       "and/or --bigquery-dataset PROJECT:DATASET")
    if args.allowed_lateness_s < 0 or args.early_after_s < 1 or args.avro_flush_s <= 0:
        raise CliError("--allowed-lateness-s must not be negative, --early-after-s at least 1 and "
                       "--avro-flush-s positive")
    # unreachable, no credentials, or a missing subscription or topic: one line within seconds, before Beam loads
    check_pubsub_reachable(subscription, *([output_topic(args.output_topic_prefix, t) for t in OUTPUT_TABLES]
                                           if args.output_topic_prefix else []))
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from peloton.ingest.auth import Limits
    from peloton.sim.publish import ATTR_MESSAGE_ID
    from peloton.state.groups import GroupParams
    from peloton.state.race import RaceParams
    from pipelines.live import build_live
    from pipelines.options import with_local_runner
    from peloton.ingest.windowing import Windowing
    from transforms.live import FeedSecurity

    beam_args = _runner_args(with_local_runner(beam_args, streaming=True))
    runner = check_beam_args(beam_args)
    stage = _with_standings(resolve_stage(None, None, args.stage), args.standings_before)
    stage.course()  # fail here, not on a worker, if the course is unusable
    options = PipelineOptions(beam_args)
    options.view_as(StandardOptions).streaming = True
    params = Windowing(early_after_s=args.early_after_s, allowed_lateness_s=args.allowed_lateness_s)
    race_params = RaceParams(groups=GroupParams(threshold_s=args.group_gap_s, hysteresis_s=args.group_hysteresis_s))
    security = FeedSecurity(
        limits=Limits(max_payload_bytes=args.max_payload_bytes,
                      future_tolerance_s=args.future_tolerance_s if args.future_tolerance_s > 0 else float("inf")),
        authenticate=args.authenticate, keys_text=feed_keys_text(args.feed_keys))
    if args.authenticate and security.keys_text:
        feed_keyring(args.feed_keys)  # a bad key file fails here, not on a worker
    _check_dataset(args.bigquery_dataset)
    pipeline = beam.Pipeline(options=options)
    build_live(pipeline, stage, subscription, args.out, args.output_topic_prefix, params, race_params, security,
               args.bigquery_dataset, args.bigquery_method, avro_flush_s=args.avro_flush_s,
               id_label=None if runner in ("DirectRunner", "BundleBasedDirectRunner") else ATTR_MESSAGE_ID)
    log.info("live: stage %s from %s; final rows %.0f s after their window, provisional within ~%d s",
             stage.stage_id, subscription, params.settle_s, params.early_after_s + 1)
    local = runner in ("DirectRunner", "BundleBasedDirectRunner")
    if local:
        _rewind(subscription)
    return _run_until_stopped(pipeline, stage.stage_id, args.duration_s, local)


#: Longest wait for the drain after a stop: every window and file written, or an error.
DRAIN_TIMEOUT_S = 120.0


def _rewind(subscription: str) -> None:
    from transforms.read_feed import rewind_subscription

    try:
        rewound = rewind_subscription(subscription)
    except Exception as exc:  # Pub/Sub's own error types
        raise CliError(f"cannot prepare {subscription}: {str(exc).splitlines()[0][:200]}") from None
    if rewound:
        log.info("live: %s sought back to its first retained message: the race state is rebuilt from the "
                 "stage's history; rows already in the archive are not written again", subscription)
    else:
        log.warning("live: %s does not keep acknowledged messages: a restart cannot rebuild the race state "
                    "(create it with 'peloton pubsub init')", subscription)


def _run_until_stopped(pipeline, stage_id: str, duration_s: float, local: bool) -> int:
    """Run until SIGINT, SIGTERM or ``duration_s``; then drain: stop reading, write every row, exit 0.

    A second signal stops at once (exit 130).
    """
    import signal
    import threading

    from transforms.read_feed import STOP

    stop = threading.Event()
    reason = {"why": "duration"}

    def on_signal(signum, _frame):
        if stop.is_set():
            print("peloton: stopped without draining", file=sys.stderr)
            os._exit(130)
        reason["why"] = signal.Signals(signum).name
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    ended, failure = threading.Event(), []

    def wait_for_end(result):
        try:
            result.wait_until_finish()  # the local runner updates its state only here
        except Exception as exc:  # the pipeline failed: said below
            failure.append(exc)
        ended.set()

    try:
        STOP.clear()
        result = pipeline.run()
        threading.Thread(target=wait_for_end, args=(result,), daemon=True).start()
        deadline = time.monotonic() + duration_s if duration_s else None
        while not stop.is_set() and not ended.is_set():
            stop.wait(0.5)
            if deadline is not None and time.monotonic() >= deadline:
                break
        if ended.is_set():
            if failure:
                raise CliError(f"the live pipeline failed: {str(failure[0]).splitlines()[0][:300]}")
            return 0
        log.warning("live: %s: draining (no more reads; every accepted row is being written)", reason["why"])
        started = time.monotonic()
        if not local:
            result.cancel()  # Dataflow: 'gcloud dataflow jobs drain' drains; the job keeps its own state
            return 0
        STOP.set()
        if not ended.wait(DRAIN_TIMEOUT_S):
            result.cancel()
            raise CliError(f"the live pipeline did not drain within {DRAIN_TIMEOUT_S:.0f} s")
        if failure:
            raise CliError(f"the live pipeline failed while draining: {str(failure[0]).splitlines()[0][:300]}")
        print(f"live stage {stage_id}: stopped ({reason['why']}); drained in {time.monotonic() - started:.1f} s, "
              f"every accepted row written")
        return 0
    finally:
        STOP.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_evaluate(args, _beam_args) -> int:
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


#: The reference data beside the project (../shared/data), for ``simulate --stages``.
_SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


def cmd_simulate_tour(args) -> int:
    from peloton.sim.simulate import TourSimError, simulate_tour, tour_stage_ids

    if args.course or (args.stages and args.tour):
        raise CliError("give one of --course FILE, --stages LIST or --tour YEAR")
    ids = [x.strip() for x in args.stages.split(",") if x.strip()] if args.stages else \
        tour_stage_ids(args.tour, args.first, args.count)
    _check_out_folder(args.out, "--out")
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    try:
        paths = simulate_tour(ids, args.out, args.courses, args.climbs, riders=args.riders, seed=args.seed,
                              hz=args.hz, say=(lambda line: None) if args.quiet else print)
    except TourSimError as exc:
        raise CliError(str(exc)) from None
    print(f"simulated {len(paths)} stages of {args.riders} riders in {time.perf_counter() - started:.0f} s -> "
          f"{args.out} (replay them with 'peloton tour {args.out} --out OUT')")
    return 0


def cmd_simulate(args, _beam_args) -> int:
    if args.stages or args.tour:
        return cmd_simulate_tour(args)
    if not args.course:
        raise CliError("give --course FILE (one stage), or --stages LIST / --tour YEAR (a tour into --out DIR)")
    import gzip
    import json

    from peloton.ingest.recording import read_text
    from peloton.match.course import Course
    from peloton.match.stage import parse_course_text
    from peloton.sim.simulate import SimParams, recording_document, simulate_race, truth_document, truth_path

    if args.riders < 2 or args.riders > 5000:
        raise CliError("--riders must be between 2 and 5000")
    if not 0.01 <= args.hz <= 10:
        raise CliError("--hz must be between 0.01 and 10 ticks per second")
    for path in (args.out, truth_path(args.out)):  # before the minutes of simulation, not after
        _check_output_file(path, "--out")
    route = parse_course_text(read_text(args.course), args.course)  # gzipped or not
    course = Course([p[0] for p in route], [p[1] for p in route],
                    [p[2] if p[2] is not None else float("nan") for p in route])
    caught = None if args.caught == "random" else args.caught == "yes"
    params = SimParams(riders=args.riders, hz=args.hz, seed=args.seed, caught=caught)
    started = time.perf_counter()
    log.info("simulating %d riders on %s (%.1f km)", args.riders, args.course, course.length_m / 1000)
    race = simulate_race(course, params)
    log.info("raced %.2f h in %.1f s; writing %s", (race.tick_t[-1] - race.tick_t[0]) / 3600,
             time.perf_counter() - started, args.out)
    name = os.path.basename(args.course).rsplit(".", 1)[0]
    for path, doc in ((args.out, recording_document(race, name)), (truth_path(args.out), truth_document(race))):
        data = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        with open(path, "wb") as fh:
            fh.write(gzip.compress(data, 6) if path.endswith(".gz") else data)
    story = ("caught at " + time.strftime("%H:%M:%S", time.gmtime(race.caught_at))) if race.caught_at else "survived"
    print(f"simulated {args.riders} riders, {race.tick_t.size:,} ticks of {1 / args.hz:g} s over "
          f"{course.length_m / 1000:.1f} km in {time.perf_counter() - started:.1f} s")
    print(f"  breakaway {race.breakaway}: {story}; stops {[b for b, _, _ in race.stops]}; "
          f"wind {race.wind_kph:.0f} km/h from {race.wind_from_deg:.0f} deg")
    print(f"  recording -> {args.out}")
    print(f"  truth     -> {truth_path(args.out)}")
    return 0


def _with_standings(stage, path: str | None):
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


def cmd_report(args, _beam_args) -> int:
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
    _check_output_file(out, "--out")
    started = time.perf_counter()
    counts = write_report(args.dir, stage, out)
    print(f"report of stage {stage.stage_id} ({stage.name}): {counts['riders']} riders, {counts['frames']} moments, "
          f"{counts['bytes'] / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s -> {out}")
    return 0


def cmd_serve(args, _beam_args) -> int:
    from peloton.ingest.recording import read_text
    from peloton.match.stage import Stage
    from pipelines.pubsub import check_pubsub_reachable, checked_topic, output_topic
    from pipelines.serve import SERVED_TABLES, LivePage

    prefix = checked_topic(args.output_topic_prefix, "--output-topic-prefix")
    stage = Stage.from_json(read_text(args.stage))
    # unreachable, no credentials, no such topic: one line now
    check_pubsub_reachable(*[output_topic(prefix, table) for table in SERVED_TABLES])
    try:
        page = LivePage(stage, prefix, args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    try:
        page.start()
        print(f"live page of stage {stage.stage_id} ({stage.name}): {page.url}  (Ctrl-C to stop)", flush=True)
        deadline = time.time() + args.duration_s if args.duration_s else None
        while deadline is None or time.time() < deadline:
            time.sleep(0.2)
    except BaseException as exc:
        if not page.stop():  # Pub/Sub went away: its client threads would hold the exit for minutes
            _exit_now(exc)
        raise
    if not page.stop():
        _exit_now(None)
    return 0


def _exit_now(exc: BaseException | None) -> None:
    """Leave at once, past threads that will not stop (interpreter shutdown would wait for them)."""
    if isinstance(exc, KeyboardInterrupt):
        print("peloton: interrupted", file=sys.stderr)
    elif exc is not None:
        print(f"peloton: error: {_one_line(exc)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130 if isinstance(exc, KeyboardInterrupt) else 2 if exc is not None else 0)


def cmd_stage_export(args, _beam_args) -> int:
    from peloton.match.stage import resolve_stage

    stage = resolve_stage(args.recording, args.course, None)
    stage.course()  # fail here, not on a worker, if the course is unusable
    sys.stdout.write(stage.to_json() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from peloton.ingest.auth import Limits
    from peloton.ingest.windowing import WINDOWING
    from peloton.output.tables import CAUSAL, written_by
    from peloton.sim.publish import PlanParams
    from peloton.state.groups import GroupParams

    groups, limits, plan = GroupParams(), Limits(), PlanParams()  # the defaults are the dataclasses'

    parser = _Parser(prog="peloton", description="Live race state from rider GPS trackers.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the summary")
    sub = parser.add_subparsers(dest="command", required=True)

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
                        help="the classifications before this stage: the Race Center's rankings document "
                             "(/api/rankingTypeArrival-YEAR-STAGE of the stage before) or a CSV "
                             "bib,gc_time_s[,points,mountain_points]; riders absent from it are unclassified")
    replay.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress lines, only the summary")
    replay.set_defaults(func=cmd_replay)

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
    tour.set_defaults(func=cmd_tour)

    live = sub.add_parser("live", help="run the live pipeline of one stage from a Pub/Sub subscription",
                          description="Unknown options are passed to Beam (e.g. --runner DataflowRunner).")
    live.add_argument("--subscription", required=True, help="projects/P/subscriptions/S carrying the feed")
    live.add_argument("--stage", required=True, help="stage file from 'peloton stage export'")
    live.add_argument("--standings-before", metavar="FILE", help="the classifications before this stage: the Race Center's rankings document "
                             "(/api/rankingTypeArrival-YEAR-STAGE of the stage before) or a CSV "
                             "bib,gc_time_s[,points,mountain_points]; riders absent from it are unclassified")
    live.add_argument("--out", help="folder for windowed Avro files of the final rows, one sub-folder per table")
    live.add_argument("--output-topic-prefix", help="projects/P/topics/NAME: rows go to NAME-<table> topics")
    live.add_argument("--allowed-lateness-s", type=_number(low=0), default=WINDOWING.allowed_lateness_s,
                      help=f"data this late is still used (default {WINDOWING.allowed_lateness_s:g}); rows are "
                           "final this long after their tick")
    live.add_argument("--early-after-s", type=_number(int, low=1), default=WINDOWING.early_after_s,
                      help=f"provisional rows this many seconds after a window's first fix arrives, or as soon as "
                           f"{WINDOWING.early_after_fixes} fixes are in (default {WINDOWING.early_after_s})")
    live.add_argument("--group-gap-s", type=_number(above=0), default=groups.threshold_s,
                      help="gap that starts a new group (s)")
    live.add_argument("--group-hysteresis-s", type=_number(low=0), default=groups.hysteresis_s,
                      help="hysteresis of the groups (s)")
    live.add_argument("--avro-flush-s", type=_number(above=0), default=60.0,
                      help="with --out: write the final rows gathered so far this often (default 60 s)")
    live.add_argument("--bigquery-dataset", help="PROJECT:DATASET: final rows to BigQuery tables (one per table)")
    live.add_argument("--bigquery-method", default="STORAGE_WRITE_API",
                      choices=("STORAGE_WRITE_API", "STREAMING_INSERTS", "FILE_LOADS"),
                      help="BigQuery write method (default: the Storage Write API, exactly once)")
    live.add_argument("--authenticate", nargs="?", const=True, default=False, type=_truthy,
                      help="require HMAC-signed messages; unsigned, tampered, wrong-key and replayed ones are "
                           "dead letters")
    live.add_argument("--feed-keys", help="JSON file {\"key id\": \"hex secret\"} (default: $PELOTON_FEED_KEYS "
                                          "on the workers)")
    live.add_argument("--max-payload-bytes", type=_number(int, low=1), default=limits.max_payload_bytes,
                      help="larger messages are dead letters")
    live.add_argument("--future-tolerance-s", type=_number(low=0), default=limits.future_tolerance_s,
                      help="event times further ahead of the clock are dead letters (0: no check, for feeds "
                           "published faster than real time)")
    live.add_argument("--duration-s", type=_number(low=0), default=0.0,
                      help="stop after this many seconds (default: run until interrupted)")
    live.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    live.set_defaults(func=cmd_live)

    evaluate = sub.add_parser("evaluate", help="compare a replay's tables with a recording's official values")
    evaluate.add_argument("recording")
    evaluate.add_argument("dir", help="the --out folder of the replay")
    evaluate.add_argument("--json", action="store_true", help="machine-readable report")
    evaluate.set_defaults(func=cmd_evaluate)

    sim = sub.add_parser("simulate", help="simulate a race on a real course: a feed recording and its truth")
    sim.add_argument("--course", help="course file (GeoJSON or GPX, with elevation if possible)")
    sim.add_argument("--out", required=True, help="recording to write (*.json or *.json.gz); the truth goes "
                                                  "beside it as *.truth.json(.gz). A tour: a folder")
    sim.add_argument("--stages", help="a tour: the same riders over these courses (YEAR-NN,...: e.g. "
                                      "2022-03,2022-04), one recording per stage and the truth of every "
                                      "classification in --out DIR")
    sim.add_argument("--tour", type=_number(int, low=1900, high=2100), help="a tour of YEAR's courses, with "
                                                                            "--first N --count K")
    sim.add_argument("--first", type=_number(int, low=1, high=30), default=1)
    sim.add_argument("--count", type=_number(int, low=1, high=30), default=3)
    sim.add_argument("--courses", default=os.path.join(_SHARED, "courses-tdf-2022-2024"),
                     help="folder of YEAR/NN/trace_YEAR_N.geojson courses (default ../shared/data/...)")
    sim.add_argument("--climbs", default=os.path.join(_SHARED, "climbs"),
                     help="folder of climbs (GPX) whose summits are categorised where a course passes them")
    sim.add_argument("--riders", type=_number(int, low=2, high=5000), default=176)
    sim.add_argument("--hz", type=_number(low=0.01, high=10), default=1 / 6,
                     help="feed ticks per second (default one every 6 s)")
    sim.add_argument("--seed", type=_number(int, low=0, high=2**32 - 1), default=0)
    sim.add_argument("--caught", choices=("yes", "no", "random"), default="random",
                     help="whether the breakaway is caught (default: drawn from the seed)")
    sim.set_defaults(func=cmd_simulate)

    from pipelines.pubsub import cmd_publish, cmd_pubsub_init

    pubsub = sub.add_parser("pubsub", help="Pub/Sub set-up (the emulator when PUBSUB_EMULATOR_HOST is set)")
    pubsub_sub = pubsub.add_subparsers(dest="pubsub_command", required=True)
    init = pubsub_sub.add_parser("init", help="create the input topic, its subscription and the output topics")
    init.add_argument("--topic", required=True, help="projects/P/topics/T: where the feed is published")
    init.add_argument("--subscription", required=True, help="projects/P/subscriptions/S: what the pipeline reads")
    init.add_argument("--output-topic-prefix", help="projects/P/topics/NAME: one topic NAME-<table> per table")
    init.set_defaults(func=cmd_pubsub_init)

    pub = sub.add_parser("publish", help="replay a recording into a topic as a live feed, with faults")
    pub.add_argument("recording")
    pub.add_argument("--topic", required=True)
    pub.add_argument("--course", help="course file when the recording has no trace")
    pub.add_argument("--speed", type=_number(low=0), default=10.0, help="times real speed; 0 = as fast as possible")
    pub.add_argument("--per-fix", action="store_true", help="one message per rider fix, not per feed tick")
    pub.add_argument("--shift-to-now", action="store_true",
                     help="event times moved to the clock: at --speed N the first tick lands "
                          "D*(1-1/N) before now (D: the duration published), so no tick is ahead of the clock "
                          "when it goes out (now at speed 1)")
    pub.add_argument("--duplicate-rate", type=_number(low=0, high=1), default=plan.duplicate_rate,
                     help="share of messages published twice")
    pub.add_argument("--disorder-s", type=_number(low=0), default=plan.disorder_s,
                     help="publish each message up to S s late")
    pub.add_argument("--malformed-rate", type=_number(low=0, high=1), default=plan.malformed_rate,
                     help="extra broken messages, as a share")
    pub.add_argument("--seed", type=_number(int, low=0), default=plan.seed, help="seed of the fault draws")
    pub.add_argument("--sign-key-id", help="sign every message with this key (HMAC-SHA256)")
    pub.add_argument("--feed-keys", help="JSON file {\"key id\": \"hex secret\"} (default: $PELOTON_FEED_KEYS)")
    pub.add_argument("--start-s", type=_number(low=0), default=plan.start_s,
                     help="start this many seconds into the recording")
    pub.add_argument("--duration-s", type=_number(low=0), default=plan.duration_s,
                     help="publish this many seconds of it (0: all)")
    pub.set_defaults(func=cmd_publish)

    report = sub.add_parser("report", help="one self-contained HTML page of a replay: map, profile, gaps, "
                                           "predictions, groups, climbs")
    report.add_argument("dir", help="the --out folder of a replay")
    report.add_argument("--out", help="the HTML file (default DIR/report.html)")
    report.add_argument("--stage", help="stage file (default DIR/stage.json, written by the replay)")
    report.set_defaults(func=cmd_report)

    serve = sub.add_parser("serve", help="the live race page, fed by the output topics of 'peloton live'")
    serve.add_argument("--stage", required=True, help="stage file ('peloton stage export')")
    serve.add_argument("--output-topic-prefix", required=True,
                       help="projects/P/topics/NAME, as given to 'peloton live --output-topic-prefix'")
    serve.add_argument("--port", type=_number(int, low=0, high=65535), default=8080,
                       help="port to listen on (default 8080; 0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default localhost only)")
    serve.add_argument("--duration-s", type=_number(above=0), default=None,
                       help="stop after this long (default: Ctrl-C)")
    serve.set_defaults(func=cmd_serve)

    stage = sub.add_parser("stage", help="stage files")
    stage_sub = stage.add_subparsers(dest="stage_command", required=True)
    export = stage_sub.add_parser("export", help="write the stage file of a recording to stdout")
    export.add_argument("recording")
    export.add_argument("--course", help="course file when the recording has no trace")
    export.set_defaults(func=cmd_stage_export)

    from pipelines.bridge import cmd_bridge, cmd_racecenter_serve, cmd_record, cmd_stage_fetch

    fetch = stage_sub.add_parser("fetch", help="write the stage file of a date from the Race Center's REST API")
    fetch.add_argument("--source", required=True, help="the Race Center (https://racecenter.letour.fr) or a stand-in")
    fetch.add_argument("--date", required=True, help="the stage's date, YYYY-MM-DD")
    fetch.add_argument("--course", help="course file when the API has no trace (time trials)")
    fetch.add_argument("--trace-base", help="where stage traces live (default: ASO's bucket for the real Race "
                                            "Center, the source itself for a stand-in)")
    fetch.set_defaults(func=cmd_stage_fetch)

    rc = sub.add_parser("racecenter", help="a local stand-in for the official Race Center (rehearsals, tests)")
    rc_sub = rc.add_subparsers(dest="racecenter_command", required=True)
    rc_serve = rc_sub.add_parser("serve", help="serve a recording as the Race Center does: SSE /live-stream at "
                                               "the recorded rhythm, and the REST API")
    rc_serve.add_argument("recording", help="official feed recording (*.json, *.json.gz)")
    rc_serve.add_argument("--speed", type=_number(low=0), default=1.0,
                          help="times real speed (default 1); 0 = at once")
    rc_serve.add_argument("--port", type=_number(int, low=0, high=65535), default=8090,
                          help="port to listen on (default 8090; 0: any free port)")
    rc_serve.add_argument("--host", default="127.0.0.1", help="address to bind (default localhost only)")
    rc_serve.add_argument("--shift-to-now", action="store_true",
                          help="move tick times by whole 6 s steps so the first tick is now (for a live pipeline)")
    rc_serve.add_argument("--lead-s", type=_number(), default=0.0,
                          help="with --shift-to-now: the first tick's time this far after now (the local runner "
                               "gives provisional rows only for ticks ahead of its clock)")
    rc_serve.add_argument("--start-s", type=_number(low=0), default=0.0,
                          help="start this many seconds into the recording")
    rc_serve.add_argument("--duration-s", type=_number(low=0), default=0.0,
                          help="serve this many seconds of it (0: all)")
    rc_serve.add_argument("--max-gap-s", type=_number(low=0), default=0.0,
                          help="wait at most this long between events (default 0: as recorded)")
    rc_serve.add_argument("--keepalive-s", type=_number(above=0), default=15.0,
                          help="keep-alive comment period (default 15)")
    rc_serve.add_argument("--drop-at", help="cut the connection in the middle of these events (e.g. 10,40)")
    rc_serve.add_argument("--stall-at", help="go silent before these events, EVENT:SECONDS (e.g. 30:90)")
    rc_serve.add_argument("--malformed-every", type=_number(int, low=0), default=0,
                          help="a malformed event after every N events")
    rc_serve.add_argument("--other-every", type=_number(int, low=0), default=0,
                          help="an event of another bind after every N events")
    rc_serve.add_argument("--chunk-quirks", action="store_true",
                          help="chunk framing strict HTTP parsers reject; events split across chunks")
    rc_serve.add_argument("--seed", type=_number(int, low=0), default=0, help="seed of the chunk splits")
    rc_serve.add_argument("--serve-for-s", type=_number(low=0), default=0.0,
                          help="stop after this long (default: Ctrl-C)")
    rc_serve.set_defaults(func=cmd_racecenter_serve)

    bridge = sub.add_parser("bridge", help="publish the Race Center's live telemetry to a Pub/Sub topic, as "
                                           "'peloton publish' does")
    bridge.add_argument("--source", required=True,
                        help="the Race Center (https://racecenter.letour.fr) or a stand-in (http://127.0.0.1:8090)")
    bridge.add_argument("--topic", required=True, help="projects/P/topics/T: the live pipeline's input topic")
    bridge.add_argument("--stage-id", help="the stage_id attribute (default: the tick's date in Europe/Paris)")
    bridge.add_argument("--sign-key-id", help="sign every message with this key (HMAC-SHA256)")
    bridge.add_argument("--feed-keys", help="JSON file {\"key id\": \"hex secret\"} (default: $PELOTON_FEED_KEYS)")
    bridge.add_argument("--buffer", type=_number(int, low=1), default=1000,
                        help="ticks held while Pub/Sub is slow; beyond that the oldest are dropped (default 1000)")
    bridge.add_argument("--idle-timeout-s", type=_number(above=0), default=60.0,
                        help="a stream silent this long (not even a keep-alive) is reopened (default 60)")
    bridge.add_argument("--progress-s", type=_number(low=0), default=10.0,
                        help="progress line period on stderr (default 10)")
    bridge.add_argument("--duration-s", type=_number(low=0), default=0.0, help="stop after this long (default: Ctrl-C)")
    bridge.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    bridge.set_defaults(func=cmd_bridge)

    record = sub.add_parser("record", help="record the Race Center's stream and REST snapshot as a recording")
    record.add_argument("--source", required=True, help="the Race Center or a stand-in")
    record.add_argument("--out", required=True, help="recording to write (*.json.gz), rewritten every minute")
    record.add_argument("--date", help="the stage's date, YYYY-MM-DD (default: today in Europe/Paris)")
    record.add_argument("--trace-base", help="where stage traces live (default: ASO's bucket for the real Race "
                                             "Center, the source itself for a stand-in)")
    record.add_argument("--idle-timeout-s", type=_number(above=0), default=60.0,
                        help="a silent stream is reopened after this")
    record.add_argument("--duration-s", type=_number(low=0), default=0.0, help="stop after this long (default: Ctrl-C)")
    record.add_argument("--silence-s", type=_number(low=0), default=1800.0,
                        help="stop when no event came for this long (default 1800: the stage is over)")
    record.add_argument("--write-every-s", type=_number(above=0), default=60.0,
                        help="rewrite the file this often (default 60)")
    record.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    record.set_defaults(func=cmd_record)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # "[Errno 21] Is a directory: 'x'" -> "x: Is a directory"
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


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
    except (CliError, RecordingError, StageError, StandingsError, OSError, PubSubError, TableError,
            NothingToEvaluate, FlinkError, PrismError) as exc:
        print(f"peloton: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("peloton: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug, not bad input: still one line, the trace on request
        if os.environ.get("PELOTON_TRACEBACK"):
            raise
        print(f"peloton: internal error: {type(exc).__name__}: {_one_line(exc)} (PELOTON_TRACEBACK=1 shows "
              f"where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
