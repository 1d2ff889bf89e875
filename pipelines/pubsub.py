"""Pub/Sub plumbing of the command line: names checked, the service probed, keys read (``peloton pubsub init``,
``publish``, ``live``, ``serve`` and ``bridge`` use it).

Works against Google Cloud or, with ``PUBSUB_EMULATOR_HOST`` set, the local
emulator (``scripts/pubsub_emulator.sh start``).
"""
from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time

from peloton.output.tables import LIVE, table_of, written_by

__all__ = ["OUTPUT_TABLES", "output_topic", "PubSubError", "check_pubsub_reachable", "checked_topic",
           "checked_subscription", "pubsub_host", "PROBE_TIMEOUT_S", "PUBLISH_GIVE_UP_S", "signing_key",
           "feed_keys_text", "feed_keyring"]

log = logging.getLogger("peloton")

#: Tables the live pipeline writes to topics, from the registry (one topic each; late data is a dead letter
#: with reason "late").
OUTPUT_TABLES = written_by(LIVE)
#: a Google Cloud project id as Beam's Pub/Sub IO accepts it (6-63 characters, domain-scoped ids with ':')
_PROJECT = r"[a-z][-a-z0-9:.]{4,61}[a-z0-9]"
_TOPIC = re.compile(rf"^projects/{_PROJECT}/topics/[A-Za-z][\w.~+%-]{{2,254}}$")
_SUBSCRIPTION = re.compile(rf"^projects/{_PROJECT}/subscriptions/[A-Za-z][\w.~+%-]{{2,254}}$")
#: the whole reachability/credentials probe answers within this (the operator's "within 10 s")
PROBE_TIMEOUT_S = 4.0
#: publish gives up (one error line, exit 2) when Pub/Sub has not taken a message for this long
PUBLISH_GIVE_UP_S = 15.0


class PubSubError(ValueError):
    """A bad topic or subscription path, or a Pub/Sub call that failed."""


def _check(path: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.match(path or ""):
        kind = "topics" if pattern is _TOPIC else "subscriptions"
        raise PubSubError(f"{what} must look like projects/PROJECT/{kind}/NAME (PROJECT: 6-63 lowercase "
                          f"letters, digits and '-'; NAME: 3-255 characters, starting with a letter): got {path!r}")
    return path


def checked_topic(path: str, what: str = "--topic") -> str:
    """``path`` if it is a topic path Pub/Sub accepts, else :class:`PubSubError` naming ``what``: a bad path is
    one error line at the command, not a failure inside a running pipeline."""
    return _check(path, _TOPIC, what)


def checked_subscription(path: str, what: str = "--subscription") -> str:
    """``path`` if it is a subscription path Pub/Sub accepts, else :class:`PubSubError` naming ``what``."""
    return _check(path, _SUBSCRIPTION, what)


def pubsub_host() -> str:
    """Where the Pub/Sub clients go: the emulator's host:port, or Google Cloud's endpoint."""
    return os.environ.get("PUBSUB_EMULATOR_HOST") or "pubsub.googleapis.com:443"


def _probe(paths: tuple[str, ...], timeout_s: float) -> None:
    """The body of :func:`check_pubsub_reachable` (run under its deadline)."""
    from google.api_core import exceptions

    deadline = time.monotonic() + timeout_s
    host = pubsub_host()
    emulator = bool(os.environ.get("PUBSUB_EMULATOR_HOST"))
    if emulator:  # a refused or silent port fails here in milliseconds, before any client retries
        name, _, port = host.rpartition(":")
        try:
            socket.create_connection((name.strip("[]") or "localhost", int(port)), timeout=timeout_s / 2).close()
        except (OSError, ValueError) as exc:
            raise PubSubError(f"cannot reach Pub/Sub at {host} (PUBSUB_EMULATOR_HOST): "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    else:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        # its "No project ID could be determined" warning is not ours to print: the paths name the project
        logging.getLogger("google.auth._default").setLevel(logging.ERROR)
        try:
            google.auth.default(scopes=["https://www.googleapis.com/auth/pubsub"])
        except DefaultCredentialsError:
            raise PubSubError("no Google Cloud credentials (set PUBSUB_EMULATOR_HOST for the emulator, or "
                              "GOOGLE_APPLICATION_CREDENTIALS / 'gcloud auth application-default login')") from None
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), None
    path = paths[0]
    try:
        for path in paths:
            left = max(0.2, deadline - time.monotonic())
            if "/topics/" in path:
                publisher.get_topic(request={"topic": path}, timeout=left, retry=None)
            elif "/subscriptions/" in path:
                subscriber = subscriber or pubsub_v1.SubscriberClient()
                subscriber.get_subscription(request={"subscription": path}, timeout=left, retry=None)
            else:
                parts = path.split("/")
                project = parts[1] if len(parts) > 1 and parts[0] == "projects" else path
                next(iter(publisher.list_topics(request={"project": f"projects/{project}", "page_size": 1},
                                                timeout=left, retry=None)), None)
    except exceptions.NotFound:
        what = "topic" if "/topics/" in path else "subscription"
        raise PubSubError(f"no {what} {path} at {host} (create it with 'peloton pubsub init')") from None
    except (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError) as exc:
        raise PubSubError(f"cannot reach Pub/Sub at {host}: {exc.message or type(exc).__name__}") from None
    except (exceptions.Unauthenticated, exceptions.PermissionDenied) as exc:
        raise PubSubError(f"Pub/Sub at {host} refused the credentials: {exc.message}") from None
    except exceptions.GoogleAPICallError as exc:
        raise PubSubError(f"Pub/Sub at {host} refused: {exc.message}") from None
    finally:
        if subscriber is not None:
            subscriber.close()


def check_pubsub_reachable(*paths: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, in one line, when Pub/Sub cannot serve ``paths``: unreachable, no credentials, or missing.

    Each path is a project id, a topic or a subscription path; a topic or subscription must exist. Every
    command that talks to Pub/Sub calls this first: without it the client libraries retry for a minute or
    more and end in tracebacks. Raises :class:`PubSubError`; the whole probe takes at most ``timeout_s``
    (plus half a second), whatever the network does.
    """
    outcome: list = []

    def run():
        try:
            _probe(paths, timeout_s)
            outcome.append(None)
        except PubSubError as exc:
            outcome.append(exc)
        except Exception as exc:  # noqa: BLE001 - any client failure is "cannot reach", said once
            outcome.append(PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: {type(exc).__name__}: {exc}"))

    worker = threading.Thread(target=run, name="pubsub-probe", daemon=True)  # a hung resolver cannot hold us
    worker.start()
    worker.join(timeout_s + 0.5)
    if not outcome:
        raise PubSubError(f"cannot reach Pub/Sub at {pubsub_host()}: no answer in {timeout_s + 0.5:g} s")
    if outcome[0] is not None:
        raise outcome[0]


def output_topic(prefix: str, table: str) -> str:
    return table_of(table).topic(prefix)


def feed_keys_text(source: str | None) -> str | None:
    """--feed-keys: a file holding the keys, or None for the environment (PELOTON_FEED_KEYS)."""
    if not source:
        return None
    try:
        with open(source, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise PubSubError(f"cannot read the feed keys: {exc}") from None


def feed_keyring(source: str | None):
    from peloton.ingest.auth import ENV_KEYS, Keyring

    text = feed_keys_text(source)
    try:
        keyring = Keyring.from_text(text) if text else Keyring.from_env()
    except ValueError as exc:
        raise PubSubError(str(exc)) from None
    if keyring is None:
        raise PubSubError(f"no feed keys: give --feed-keys FILE or set {ENV_KEYS}")
    return keyring


def signing_key(key_id: str | None, source: str | None) -> bytes:
    """The secret that ``--sign-key-id`` names among the feed keys; empty when messages go unsigned."""
    if not key_id:
        return b""
    keyring = feed_keyring(source)
    if key_id not in keyring.keys:
        raise PubSubError(f"--sign-key-id {key_id!r} is not among the feed keys")
    return keyring.keys[key_id]

