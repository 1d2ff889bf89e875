"""The live race page: the live pipeline's output topics -> the report's page, updated as the race goes.

``peloton serve --stage FILE --output-topic-prefix P [--port 8080] [--host 127.0.0.1]`` subscribes to the
topics ``peloton live --output-topic-prefix P`` publishes (rider_state, groups, predictions), keeps the
rows in memory (a final row replaces the provisional one of the same key), and serves:

* ``/`` the page (the replay report's, in live mode), ``/data.json`` what it draws now;
* ``/events`` server-sent events: ``update`` whenever new rows came in (at most once a second).

The page shows the event time of the newest row it has and says "feed stalled" once that is more than
60 s old (the Race Center's ticks are 6 s apart, but often 36 s) (measured from the rows' own times, not from when they arrived: old rows heard now are not live).
Read-only; it binds to localhost unless told otherwise.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from peloton.match.stage import Stage
from peloton.output.tables import LIVE, drawn, row_key
from peloton.report.page import course_data, render_report, report_data
from pipelines.pubsub import PubSubError, output_topic

__all__ = ["LiveTables", "LivePage", "SERVED_TABLES", "STALL_AFTER_S"]

log = logging.getLogger("peloton")

SERVED_TABLES = drawn(LIVE)  # what the page draws, of what the live pipeline publishes (the registry)
STALL_AFTER_S = 60.0  # the feed's own gaps: 267 of stage 4's over 30 s (most 36 s), 10 over 60 s
STOP_TIMEOUT_S = 1.0  # Ctrl-C ends 'peloton serve' within 2 s, whatever Pub/Sub does
PAGE_SUBSCRIPTION_TTL_S = 24 * 3600  # Pub/Sub's shortest: a page's subscription left behind (outage) expires


class LiveTables:
    """The rows heard so far, by table and key; final rows win over provisional ones."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = {t: {} for t in SERVED_TABLES}
        self.version = 0
        self.last_message_at: float | None = None  # wall clock

    def add(self, table: str, row: dict, status: str) -> None:
        if table not in self.rows:
            return
        key = row_key(table, row)
        with self.lock:
            held = self.rows[table].get(key)
            if held is None or status == "final" or held[0] != "final":
                self.rows[table][key] = (status, row)
                self.version += 1
            self.last_message_at = time.time()

    def snapshot(self) -> dict:
        with self.lock:
            return {t: [row for _status, row in rows.values()] for t, rows in self.rows.items()}


class LivePage:
    """Subscriptions on the output topics and the HTTP server of the page."""

    def __init__(self, stage: Stage, topic_prefix: str, host: str = "127.0.0.1", port: int = 8080,
                 stall_after_s: float = STALL_AFTER_S):
        self.stage, self.topic_prefix = stage, topic_prefix
        self.tables = LiveTables()
        self.stall_after_s = stall_after_s
        self.course = course_data(stage)
        self._data_cache = (-1, None)
        self._futures, self._subscriptions = [], []
        self.subscriber = None
        self._serving: threading.Thread | None = None
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True

    # -------------------------------------------------------------------- Pub/Sub
    def subscribe(self) -> None:
        from google.api_core import exceptions
        from google.cloud import pubsub_v1

        self.subscriber = pubsub_v1.SubscriberClient()
        project = self.topic_prefix.split("/")[1]
        run = uuid.uuid4().hex[:8]
        for table in SERVED_TABLES:
            topic = output_topic(self.topic_prefix, table)
            name = f"projects/{project}/subscriptions/{topic.rsplit('/', 1)[1]}-page-{run}"
            try:
                self.subscriber.create_subscription(
                    request={"name": name, "topic": topic,
                             "expiration_policy": {"ttl": {"seconds": PAGE_SUBSCRIPTION_TTL_S}}}, timeout=10.0)
            except exceptions.GoogleAPICallError as exc:
                raise PubSubError(f"cannot subscribe to {topic}: {exc.message}") from None
            self._subscriptions.append(name)
            self._futures.append(self.subscriber.subscribe(name, callback=self._on_message))
        suffixes = [output_topic(self.topic_prefix, t)[len(self.topic_prefix) + 1:] for t in SERVED_TABLES]
        log.info("live page listening to %s-{%s}", self.topic_prefix, ",".join(suffixes))

    def _on_message(self, message) -> None:
        try:
            row = json.loads(message.data.decode("utf-8"))
            attrs = message.attributes
            self.tables.add(attrs.get("table", ""), row, attrs.get("status", "final"))
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("live page: unreadable row (%s)", exc)
        message.ack()

    # ------------------------------------------------------------------------ data
    def data(self) -> dict:
        version = self.tables.version
        if self._data_cache[0] != version:
            data = report_data(self.stage, self.tables.snapshot(), course=self.course)
            data["stall_after_s"] = self.stall_after_s
            self._data_cache = (version, data)
        return self._data_cache[1]

    def _handler(self):
        page = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet: the operator's terminal shows the pipeline
                log.debug(fmt, *args)

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path in ("/", "/index.html"):
                    self._send(200, render_report(page.data(), live=True).encode("utf-8"), "text/html; charset=utf-8")
                elif path == "/data.json":
                    self._send(200, json.dumps(page.data(), separators=(",", ":")).encode("utf-8"),
                               "application/json")
                elif path == "/events":
                    self._events()
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _events(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seen = -1
                try:
                    while True:
                        version = page.tables.version
                        if version != seen and page.tables.last_message_at is not None:
                            seen = version
                            self.wfile.write(f"event: update\ndata: {version}\n\n".encode())
                        else:
                            self.wfile.write(b": alive\n\n")
                        self.wfile.flush()
                        time.sleep(1.0)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def do_POST(self):  # read-only
                self._send(405, b"read-only\n", "text/plain")

        return Handler

    # --------------------------------------------------------------------- running
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "LivePage":
        self.subscribe()
        self._serving = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                         name="live-page-http", daemon=True)
        self._serving.start()
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop serving and listening, within ``timeout_s`` whatever Pub/Sub does.

        Cancelling a streaming pull only starts its shutdown (on a daemon thread); deleting the page's
        subscriptions is a courtesy, made in daemon threads with the time left and not waited for past
        ``timeout_s``. Returns False when something was still running at the deadline: the caller should
        then leave without waiting for the client's threads (interpreter shutdown would join them).
        """
        deadline = time.monotonic() + timeout_s
        for future in self._futures:
            future.cancel()  # non-blocking
        if self._serving is not None:
            self.server.shutdown()  # returns within the 0.2 s poll interval
        self.server.server_close()
        budget = max(0.1, deadline - time.monotonic())
        cleanups = [threading.Thread(target=self._delete_subscription, args=(name, budget), daemon=True,
                                     name="live-page-cleanup") for name in self._subscriptions]
        for thread in cleanups:
            thread.start()
        for thread in cleanups:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in cleanups)

    def _delete_subscription(self, name: str, budget_s: float) -> None:
        try:
            self.subscriber.delete_subscription(request={"subscription": name}, timeout=budget_s, retry=None)
        except Exception:  # noqa: BLE001 - best effort on the way out (Pub/Sub may be gone); it expires anyway
            log.info("live page: subscription %s left behind (it expires after a day unused)", name)
