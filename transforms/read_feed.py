"""The live source: the feed subscription, read by a step of ours on the local runner.

Beam's local Pub/Sub reader (``_PubSubReadEvaluator``) could not be made safe
from outside: it raised on an ``event_time`` attribute it could not parse
before anything acknowledged the message (so the message came back every
minute and took the messages pulled with it along), its 4 MiB gRPC limit
failed a whole pull on one oversized message, it waited 30 s in every idle
pull (provisional rows waited with it), and a lost connection raised in the
runner. :class:`FeedReadEvaluator` replaces it for ``peloton live``:

* every message is delivered as it is, whatever its attributes and size: the
  gate (:mod:`transforms.live`) turns a bad one into a dead letter;
* a pull waits at most :data:`PULL_WAIT_S`;
* Pub/Sub going away is said once, retried with backoff, and said again
  when it comes back; the pipeline keeps running;
* the watermark follows the feed's own event times while a backlog is read
  (after a restart the subscription is sought back to the stage's first
  message, and the race state is rebuilt from it) and the wall clock when
  the feed is quiet, never ahead of the wall clock (a forged clock cannot
  close windows early);
* :data:`STOP` drains: no more pulls, the watermark goes to the end of time,
  every window and every Avro file is written, and the pipeline ends.

On Dataflow the runner's own reader is used (with ``id_label``); there too
the read has no ``timestamp_attribute``, so a bad attribute cannot stop it,
and the watermark is the backlog's oldest publish time.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import time

import apache_beam as beam

from peloton.ingest import eventtime

__all__ = ["ReadFeed", "STOP", "PULL_WAIT_S", "subscriber_client", "rewind_subscription"]

log = logging.getLogger("peloton")

#: Set to drain the live pipeline (SIGINT, SIGTERM, --duration-s).
STOP = threading.Event()
#: Longest wait of one pull: a provisional row waits for nothing longer.
PULL_WAIT_S = 0.5
#: Messages per pull.
PULL_MAX_MESSAGES = 200
#: Backoff when Pub/Sub cannot be reached: first and longest wait.
BACKOFF_S = (1.0, 30.0)
#: The feed is quiet after this long without a message: the watermark then follows the wall clock.
QUIET_AFTER_S = 1.0


def subscriber_client():
    """A SubscriberClient whose channel takes any message Pub/Sub can hold (10 MB), so the gate sees it.

    The default channel to the emulator refuses responses over 4 MiB on the client side, which failed the
    whole pull.
    """
    from google.cloud import pubsub_v1

    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return pubsub_v1.SubscriberClient()  # Google's own channel has no receive limit
    import grpc
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    channel = grpc.insecure_channel(host, options=[("grpc.max_receive_message_length", -1),
                                                   ("grpc.max_send_message_length", -1)])
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


def _event_time_ms(attributes) -> int | None:
    """The ``event_time`` attribute in ms when the gate would read it, else None (the gate says why)."""
    seconds = eventtime.from_attribute(dict(attributes or {}))
    return None if seconds is None else eventtime.ms(seconds)


class _ReadState:
    """What one subscription's reader keeps between bundles: its client, watermark and connection health."""

    def __init__(self, subscription: str):
        self.subscription = subscription
        self.client = None
        self.watermark_ms = None  # None until the first message
        self.newest_event_ms = None
        self.last_arrival = None  # wall clock of the last message
        self.failing_since = None
        self.next_try = 0.0
        self.backoff = BACKOFF_S[0]
        self.lock = threading.Lock()

    def pull(self) -> list:
        """Received messages (maybe none); Pub/Sub errors are said, backed off and retried, never raised."""
        now = time.monotonic()
        if now < self.next_try:
            time.sleep(min(0.2, self.next_try - now))
            return []
        from google.api_core import exceptions as gexc

        try:
            if self.client is None:
                self.client = subscriber_client()
            response = self.client.pull(subscription=self.subscription, max_messages=PULL_MAX_MESSAGES,
                                        timeout=PULL_WAIT_S, retry=None)
            received = list(response.received_messages)
            if received:
                self.client.acknowledge(subscription=self.subscription, ack_ids=[m.ack_id for m in received])
        except gexc.DeadlineExceeded:
            received = []
        except Exception as exc:  # any transport or service error: the race goes on
            self._failed(exc)
            return []
        if self.failing_since is not None:
            log.warning("live: Pub/Sub answers again after %.0f s; reading %s", time.monotonic() -
                        self.failing_since, self.subscription)
            self.failing_since, self.backoff = None, BACKOFF_S[0]
        if not received:
            time.sleep(0.05)  # an emulator answers an empty pull at once
        return received

    def _failed(self, exc: Exception) -> None:
        host = os.environ.get("PUBSUB_EMULATOR_HOST") or "pubsub.googleapis.com"
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        log.warning("live: reading from Pub/Sub at %s failed (%s); retrying in %.0f s", host,
                    str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__, self.backoff)
        self.next_try = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_S[1])
        try:
            if self.client is not None:
                self.client.close()
        except Exception:  # closing a broken channel may fail too
            pass
        self.client = None

    def advance(self, event_ms: list[int]) -> int | None:
        """The watermark after a pull: the newest event time read (a backlog), or, once the feed is quiet, that
        plus the quiet time; never ahead of the wall clock, never backwards."""
        now_ms = int(time.time() * 1000)
        if event_ms:
            newest = min(max(event_ms), now_ms)
            self.newest_event_ms = newest if self.newest_event_ms is None else max(self.newest_event_ms, newest)
            self.last_arrival = time.time()
        if self.newest_event_ms is None:
            return self.watermark_ms
        candidate = self.newest_event_ms
        quiet_s = time.time() - self.last_arrival
        if quiet_s > QUIET_AFTER_S:
            candidate += int(quiet_s * 1000)
        candidate = min(candidate, now_ms)
        self.watermark_ms = candidate if self.watermark_ms is None else max(self.watermark_ms, candidate)
        return self.watermark_ms


_STATES: dict[tuple, _ReadState] = {}
_STATES_LOCK = threading.Lock()


def _state(run, subscription: str) -> _ReadState:
    """One reader state per pipeline run and subscription (a test may run several pipelines in one process)."""
    with _STATES_LOCK:
        key = (id(run), subscription)
        if key not in _STATES:
            _STATES[key] = _ReadState(subscription)
        return _STATES[key]


@functools.lru_cache(maxsize=None)
def _evaluator_class():
    """Built on first use: the DirectRunner's modules load only where the local runner runs."""
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.pvalue import PBegin
    from apache_beam.runners.direct.transform_evaluator import TransformResult, _PubSubReadEvaluator
    from apache_beam.transforms.window import GlobalWindows
    from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Timestamp

    class FeedReadEvaluator(_PubSubReadEvaluator):
        """One pull per bundle, as the runner's own reader does, without its failure modes (module doc)."""

        def finish_bundle(self):
            state = _state(self._evaluation_context, self._sub_name)
            transform = self._applied_ptransform.transform
            pbegin = PBegin(transform.pipeline)
            if STOP.is_set():  # drain: no more input; the end of time closes every window and flushes every file
                return TransformResult(self, [], [], None, {None: MAX_TIMESTAMP})
            with state.lock:
                received = state.pull()
                event_ms = [_event_time_ms(m.message.attributes) for m in received]
                watermark_ms = state.advance([e for e in event_ms if e is not None])
            bundles = []
            if received:
                bundle = self._evaluation_context.create_bundle(list(self._outputs)[0])
                for rm, ms in zip(received, event_ms):
                    message = PubsubMessage._from_message(rm.message)
                    if ms is not None:
                        stamp = eventtime.beam_timestamp(ms)
                    else:
                        stamp = Timestamp.from_utc_datetime(rm.message.publish_time)
                    bundle.output(GlobalWindows.windowed_value(message, timestamp=stamp))
                bundles.append(bundle)
            watermark = MIN_TIMESTAMP if watermark_ms is None else eventtime.beam_timestamp(watermark_ms)
            return TransformResult(self, bundles, [self._evaluation_context.create_bundle(pbegin)], None,
                                   {None: watermark})

    return FeedReadEvaluator


_REGISTERED = False


def _register_local_reader() -> None:
    """Make the local runner read Pub/Sub with :class:`FeedReadEvaluator` (its registry's documented hook)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from apache_beam.runners.direct.direct_runner import _DirectReadFromPubSub
    from apache_beam.runners.direct.transform_evaluator import TransformEvaluatorRegistry

    TransformEvaluatorRegistry._test_evaluators_overrides[_DirectReadFromPubSub] = _evaluator_class()
    _REGISTERED = True


class ReadFeed(beam.PTransform):
    """Subscription -> PubsubMessages, timestamped by their ``event_time`` attribute where it is readable.

    ``id_label``: the attribute a runner deduplicates on (Dataflow); the local runner takes none, the graph
    deduplicates anyway.
    """

    def __init__(self, subscription: str, local: bool = True, id_label: str | None = None):
        super().__init__()
        self.subscription, self.local, self.id_label = subscription, local, id_label

    def expand(self, pbegin):
        if self.local:
            _register_local_reader()
        return pbegin | "ReadPubSub" >> beam.io.ReadFromPubSub(
            subscription=self.subscription, with_attributes=True, id_label=None if self.local else self.id_label)


def rewind_subscription(subscription: str) -> bool:
    """Seek ``subscription`` back to the first message it retains, so a (re)started pipeline rebuilds the race
    state from the stage's history. False when it does not retain acknowledged messages (nothing to rewind to).

    Seeking is by publish time; the retained messages are the stage's whole feed when the subscription was made
    by ``peloton pubsub init`` before the stage began (retention 7 days, acknowledged messages kept).
    """
    from google.protobuf.timestamp_pb2 import Timestamp as ProtoTimestamp

    client = subscriber_client()
    try:
        sub = client.get_subscription(subscription=subscription, timeout=10)
        if not sub.retain_acked_messages:
            return False
        since = ProtoTimestamp()
        since.FromSeconds(int(time.time()) - 7 * 86400)
        client.seek(request={"subscription": subscription, "time": since}, timeout=10)
        return True
    finally:
        client.close()
