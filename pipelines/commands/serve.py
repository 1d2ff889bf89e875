"""peloton serve: the live race page, fed by the output topics of 'peloton live'."""
from __future__ import annotations

import time

from pipelines.commands.common import CliError, exit_now, number

__all__ = ["add", "run"]


def add(sub) -> None:
    serve = sub.add_parser("serve", help="the live race page, fed by the output topics of 'peloton live'")
    serve.add_argument("--stage", required=True, help="stage file ('peloton stage export')")
    serve.add_argument("--output-topic-prefix", required=True,
                       help="projects/P/topics/NAME, as given to 'peloton live --output-topic-prefix'")
    serve.add_argument("--port", type=number(int, low=0, high=65535), default=8080,
                       help="port to listen on (default 8080; 0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default localhost only)")
    serve.add_argument("--duration-s", type=number(above=0), default=None,
                       help="stop after this long (default: Ctrl-C)")
    serve.set_defaults(func=run)


def run(args, _beam_args) -> int:
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
            exit_now(exc)
        raise
    if not page.stop():
        exit_now(None)
    return 0
