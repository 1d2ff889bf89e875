"""peloton pubsub init: the input topic, its subscription and the output topics."""
from __future__ import annotations

from pipelines.pubsub import (OUTPUT_TABLES, PROBE_TIMEOUT_S, PubSubError, check_pubsub_reachable, checked_subscription,
                              checked_topic, output_topic, pubsub_host)

__all__ = ["add", "run"]


def add(sub) -> None:
    pubsub = sub.add_parser("pubsub", help="Pub/Sub set-up (the emulator when PUBSUB_EMULATOR_HOST is set)")
    pubsub_sub = pubsub.add_subparsers(dest="pubsub_command", required=True)
    init = pubsub_sub.add_parser("init", help="create the input topic, its subscription and the output topics")
    init.add_argument("--topic", required=True, help="projects/P/topics/T: where the feed is published")
    init.add_argument("--subscription", required=True, help="projects/P/subscriptions/S: what the pipeline reads")
    init.add_argument("--output-topic-prefix", help="projects/P/topics/NAME: one topic NAME-<table> per table")
    init.set_defaults(func=run)


def run(args, _beam_args) -> int:
    """Create (idempotently) the input topic, its subscription and one output topic per table."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    topic = checked_topic(args.topic)
    subscription = checked_subscription(args.subscription)
    outputs = [output_topic(checked_topic(args.output_topic_prefix, "--output-topic-prefix"), t)
               for t in OUTPUT_TABLES] if args.output_topic_prefix else []
    check_pubsub_reachable(topic.split("/")[1])
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    calls = {"timeout": 2 * PROBE_TIMEOUT_S}  # reachable a moment ago: a call that hangs now is an outage
    try:
        for name in [topic, *outputs]:
            try:
                publisher.create_topic(name=name, **calls)
                print(f"created topic {name}")
            except exceptions.AlreadyExists:
                print(f"topic {name} exists")
        try:
            # acknowledged messages are kept (7 days): 'peloton live' seeks back to the stage's first message at
            # every start, to rebuild the race state after a restart or when started mid-race
            subscriber.create_subscription(request={
                "name": subscription, "topic": topic, "ack_deadline_seconds": 60, "retain_acked_messages": True,
                "message_retention_duration": {"seconds": 7 * 86400}}, **calls)
            print(f"created subscription {subscription}")
        except exceptions.AlreadyExists:
            print(f"subscription {subscription} exists")
    except (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError) as exc:
        raise PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: {exc.message}") from None
    except exceptions.GoogleAPICallError as exc:
        raise PubSubError(f"Pub/Sub refused: {exc.message}") from None
    finally:
        subscriber.close()
    return 0
