"""The live race page: the live pipeline's output topics -> the report's page, updated as the race goes.

``peloton serve --stage FILE --output-topic-prefix P [--port 8080] [--host 127.0.0.1]`` subscribes to the
topics ``peloton live --output-topic-prefix P`` publishes (rider_state, groups, predictions), keeps the
rows in memory (a final row replaces the provisional one of the same key), and serves:

* ``/`` the page (the replay report's, in live mode), ``/data.json`` what it draws now;
* ``/events`` server-sent events: ``update`` whenever new rows came in (at most once a second).

The page shows the event time of the newest row it has and says "feed stalled" once that is more than
30 s old (measured from the rows' own times, not from when they arrived: old rows heard now are not live).
Read-only; it binds to localhost unless told otherwise.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from peloton.report import course_data, render_report, report_data
from peloton.stage import Stage
from pipelines.pubsub import output_topic

__all__ = ["LiveTables", "LivePage", "SERVED_TABLES", "STALL_AFTER_S"]

log = logging.getLogger("peloton")

SERVED_TABLES = ("rider_state", "groups", "predictions", "race_events")
STALL_AFTER_S = 30.0
_KEYS = {"rider_state": ("bib", "event_time"), "groups": ("event_time", "group_id"),
         "predictions": ("event_time", "group_id"), "race_events": ("event_time", "event_type", "detail")}


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
        key = tuple(row.get(k) for k in _KEYS[table])
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
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True

    # -------------------------------------------------------------------- Pub/Sub
    def subscribe(self) -> None:
        from google.cloud import pubsub_v1

        self.subscriber = pubsub_v1.SubscriberClient()
        project = self.topic_prefix.split("/")[1]
        run = uuid.uuid4().hex[:8]
        for table in SERVED_TABLES:
            topic = output_topic(self.topic_prefix, table)
            name = f"projects/{project}/subscriptions/{topic.rsplit('/', 1)[1]}-page-{run}"
            self.subscriber.create_subscription(name=name, topic=topic)
            self._subscriptions.append(name)
            self._futures.append(self.subscriber.subscribe(name, callback=self._on_message))
        log.info("live page listening to %s-{%s}", self.topic_prefix, ",".join(SERVED_TABLES))

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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        for future in self._futures:
            future.cancel()
        for name in self._subscriptions:
            try:
                self.subscriber.delete_subscription(subscription=name)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self.server.server_close()
