"""peloton live: the live pipeline of one stage, from a Pub/Sub subscription, until stopped and drained."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from pipelines.commands.common import (STANDINGS_HELP, CliError, check_beam_args, check_dataset, check_out_folder,
                                       number, runner_args, truthy, with_standings)

__all__ = ["add", "run", "DRAIN_TIMEOUT_S", "STOP_TIMEOUT_S"]

log = logging.getLogger("peloton")


def add(sub) -> None:
    from peloton.ingest.auth import Limits
    from peloton.ingest.windowing import WINDOWING
    from peloton.state.groups import GroupParams

    groups, limits = GroupParams(), Limits()  # the defaults are the dataclasses'
    live = sub.add_parser("live", help="run the live pipeline of one stage from a Pub/Sub subscription",
                          description="Unknown options are passed to Beam (e.g. --runner DataflowRunner).")
    live.add_argument("--subscription", required=True, help="projects/P/subscriptions/S carrying the feed")
    live.add_argument("--stage", required=True, help="stage file from 'peloton stage export'")
    live.add_argument("--standings-before", metavar="FILE", help=STANDINGS_HELP)
    live.add_argument("--out", help="folder for windowed Avro files of the final rows, one sub-folder per table")
    live.add_argument("--output-topic-prefix", help="projects/P/topics/NAME: rows go to NAME-<table> topics")
    live.add_argument("--allowed-lateness-s", type=number(low=0), default=WINDOWING.allowed_lateness_s,
                      help=f"data this late is still used (default {WINDOWING.allowed_lateness_s:g}); rows are "
                           "final this long after their tick")
    live.add_argument("--early-after-s", type=number(int, low=1), default=WINDOWING.early_after_s,
                      help=f"provisional rows at most this many seconds after a window's first fix arrives (default "
                           f"{WINDOWING.early_after_s}) ...")
    live.add_argument("--early-after-messages", type=number(int, low=1), default=WINDOWING.early_after_messages,
                      help=f"... or as soon as this many messages of the window are in (default "
                           f"{WINDOWING.early_after_messages}: a tick message gives them at once; raise it for a feed "
                           f"of one message per fix to batch its panes by time)")
    live.add_argument("--group-gap-s", type=number(above=0), default=groups.threshold_s,
                      help="gap that starts a new group (s)")
    live.add_argument("--group-hysteresis-s", type=number(low=0), default=groups.hysteresis_s,
                      help="hysteresis of the groups (s)")
    live.add_argument("--avro-flush-s", type=number(above=0), default=60.0,
                      help="with --out: write the final rows gathered so far this often (default 60 s)")
    live.add_argument("--bigquery-dataset", help="PROJECT:DATASET: final rows to BigQuery tables (one per table)")
    live.add_argument("--bigquery-method", default="STORAGE_WRITE_API",
                      choices=("STORAGE_WRITE_API", "STREAMING_INSERTS", "FILE_LOADS"),
                      help="BigQuery write method (default: the Storage Write API, exactly once)")
    live.add_argument("--authenticate", nargs="?", const=True, default=False, type=truthy,
                      help="require HMAC-signed messages; unsigned, tampered, wrong-key and replayed ones are "
                           "dead letters")
    live.add_argument("--feed-keys", help="JSON file {\"key id\": \"hex secret\"} (default: $PELOTON_FEED_KEYS "
                                          "on the workers)")
    live.add_argument("--max-payload-bytes", type=number(int, low=1), default=limits.max_payload_bytes,
                      help="larger messages are dead letters")
    live.add_argument("--future-tolerance-s", type=number(low=0), default=limits.future_tolerance_s,
                      help="event times further ahead of the clock are dead letters (0: no check, for feeds "
                           "published faster than real time)")
    live.add_argument("--savepoint-path", metavar="PATH", default=None,
                      help="--runner FlinkRunner: resume from this savepoint (the path a stop printed)")
    live.add_argument("--duration-s", type=number(low=0), default=0.0,
                      help="stop after this many seconds (default: run until interrupted)")
    live.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    live.set_defaults(func=run)


def run(args, beam_args) -> int:
    from peloton.match.stage import resolve_stage
    from pipelines.pubsub import (OUTPUT_TABLES, check_pubsub_reachable, checked_subscription, checked_topic,
                                  feed_keyring, feed_keys_text, output_topic)
    from pipelines.prism import refuse_live

    refuse_live(beam_args)

    subscription = checked_subscription(args.subscription)
    if args.output_topic_prefix:
        checked_topic(args.output_topic_prefix, "--output-topic-prefix")
    if args.out:
        check_out_folder(args.out, "--out")
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

    from pipelines.flink import _given, normalize_flags

    beam_args = normalize_flags(with_local_runner(beam_args, streaming=True))
    runner = check_beam_args(beam_args)  # before Flink's job server options, which Python's parser does not know
    beam_args = runner_args(beam_args, streaming=True)
    flink = runner == "FlinkRunner"  # checkpointed; the feed read by transforms.read_feed.PullFeedFn
    if args.savepoint_path and not flink:
        raise CliError("--savepoint-path is for --runner FlinkRunner")
    if args.savepoint_path:  # a job server option (Python's options do not know it)
        beam_args += ["--savepoint_path", args.savepoint_path]
    stage = with_standings(resolve_stage(None, None, args.stage), args.standings_before)
    stage.course()  # fail here, not on a worker, if the course is unusable
    options = PipelineOptions(beam_args)
    options.view_as(StandardOptions).streaming = True
    params = Windowing(early_after_s=args.early_after_s, early_after_messages=args.early_after_messages,
                       allowed_lateness_s=args.allowed_lateness_s)
    race_params = RaceParams(groups=GroupParams(threshold_s=args.group_gap_s, hysteresis_s=args.group_hysteresis_s))
    security = FeedSecurity(
        limits=Limits(max_payload_bytes=args.max_payload_bytes,
                      future_tolerance_s=args.future_tolerance_s if args.future_tolerance_s > 0 else float("inf")),
        authenticate=args.authenticate, keys_text=feed_keys_text(args.feed_keys))
    if args.authenticate and security.keys_text:
        feed_keyring(args.feed_keys)  # a bad key file fails here, not on a worker
    check_dataset(args.bigquery_dataset)
    pipeline = beam.Pipeline(options=options)
    build_live(pipeline, stage, subscription, args.out, args.output_topic_prefix, params, race_params, security,
               args.bigquery_dataset, args.bigquery_method, avro_flush_s=args.avro_flush_s,
               id_label=None if flink or runner in ("DirectRunner", "BundleBasedDirectRunner") else ATTR_MESSAGE_ID,
               portable=flink)
    log.info("live: stage %s from %s; final rows %.0f s after their window, provisional within ~%d s",
             stage.stage_id, subscription, params.settle_s, params.early_after_s + 1)
    local = runner in ("DirectRunner", "BundleBasedDirectRunner")
    if local or (flink and _given(beam_args, "--savepoint_path") is None):
        _rewind(subscription)  # a savepoint holds the race state: its job reads on from where it stopped
    flink_job = (_given(beam_args, "--flink_master"), _given(beam_args, "--job_name")) if flink else None
    return _run_until_stopped(pipeline, stage.stage_id, args.duration_s, local, flink_job)


#: Longest wait for the drain after a stop: every window and file written, or an error.
DRAIN_TIMEOUT_S = 120.0
#: Longest wait for a Flink job's savepoint (its tasks may still be restoring from a checkpoint).
STOP_TIMEOUT_S = 300.0


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


def _run_until_stopped(pipeline, stage_id: str, duration_s: float, local: bool, flink_job=None) -> int:
    """Run until SIGINT, SIGTERM or ``duration_s``; then drain: stop reading, write every row, exit 0.

    A second signal stops at once (exit 130). On a Flink session cluster (``flink_job``: its address and the
    job's name) the job stops with a savepoint instead, to resume from with ``--savepoint-path``.
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
        session = flink_job is not None and flink_job[0] not in (None, "[auto]", "[local]")
        while not stop.is_set() and not (ended.is_set() and not (session and _flink_job_runs(*flink_job))):
            stop.wait(0.5 if not ended.is_set() else 2.0)
            if deadline is not None and time.monotonic() >= deadline:
                break
        if ended.is_set() and not (session and _flink_job_runs(*flink_job)):
            if failure:
                raise CliError(f"the live pipeline failed: {str(failure[0]).splitlines()[0][:300]}")
            return 0
        if session:
            return _stop_flink_job(stage_id, reason["why"], *flink_job)
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


def _flink_job_runs(master: str, name: str) -> bool:
    """Whether the live job still runs on the session cluster: Beam's job server may lose sight of it (its
    stream to the client closes while Flink restarts the job from a checkpoint), the cluster does not."""
    from pipelines.flink import running_job

    try:
        runs = running_job(master, name) is not None
    except OSError:
        return False
    if runs and not getattr(_flink_job_runs, "said", False):
        _flink_job_runs.said = True
        log.warning("live: Beam's job server no longer follows job %s; it runs on at %s (stop it with SIGINT: a "
                    "savepoint)", name, master)
    return runs


def _stop_flink_job(stage_id: str, why: str, master: str, name: str) -> int:
    """Stop the live job on the Flink cluster with a savepoint (its state: windows, race, reader) and say where."""
    from pipelines.flink import running_job, savepoint_dir, stop_with_savepoint

    job_id = None
    for _ in range(120):  # the job server may still be submitting it
        job_id = running_job(master, name)
        if job_id:
            break
        time.sleep(0.5)
    if job_id is None:
        raise CliError(f"no job {name} runs on the Flink cluster at {master}")
    path = stop_with_savepoint(master, job_id, savepoint_dir(), timeout_s=STOP_TIMEOUT_S)
    print(f"live stage {stage_id}: stopped ({why}) with a savepoint; resume with --savepoint-path {path}")
    return 0
