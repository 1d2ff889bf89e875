"""A local stand-in for the Race Center: serves a recording at its recorded rhythm, and misbehaves on purpose.

It speaks the protocol :mod:`peloton.ingest.racecenter` reads (SSE ``/live-stream`` and the REST API), numbers
events with SSE ``id:`` lines (the event's index) so a client that reconnects with ``Last-Event-ID`` resumes
where it stopped, and can cut the connection, stall, send malformed events and other binds, and frame chunks the
way strict parsers refuse (:class:`Faults`). For tests, rehearsals and benchmarks, as Beam keeps its test
sources in ``apache_beam.testing``.
"""
from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from peloton.ingest.racecenter import RACE, RaceCenterError, classify_update
from peloton.ingest.windowing import WINDOWING

__all__ = ["Faults", "ServerStats", "RaceCenterServer"]



@dataclass
class Faults:
    """How the stand-in misbehaves (event numbers are indices of the served recording's events)."""

    drop_at: tuple[int, ...] = ()  # cut the connection in the middle of these events (once each)
    stall_at: tuple[tuple[int, float], ...] = ()  # (event, seconds): silent, not even keep-alives (once each)
    malformed_every: int = 0  # a malformed event after every N events
    other_every: int = 0  # an event of another bind after every N events
    chunk_quirks: bool = False  # chunk framing strict parsers reject, events split across chunks
    seed: int = 0


@dataclass
class ServerStats:
    connections: int = 0
    resumed: int = 0  # connections that came back with Last-Event-ID
    sent: int = 0  # recorded events written out (resends included)
    drops: int = 0
    stalls: int = 0
    malformed: int = 0
    other: int = 0
    first_sent_at: dict = field(default_factory=dict)  # event index -> wall time it was first written


_MALFORMED = (
    lambda tick: "this is not JSON",
    lambda tick: tick[: max(1, len(tick) // 3)],  # cut short
    lambda tick: json.dumps({"bind": "telemetryCompetitor-2026", "data": {"Riders": []}}),  # no TimeStamp
    lambda tick: json.dumps(["a", "list"]),
)


class RaceCenterServer:
    """A local Race Center serving one recording: SSE ``/live-stream`` at the recorded rhythm and the REST API.

    The stream's clock starts with the first connection: event ``i`` is due
    ``sum(dt[:i+1]) / speed`` seconds later (``max_gap_s`` caps each wait). A
    client without ``Last-Event-ID`` joins live (the next event due); with it,
    it first gets every event it missed. ``shift_to_now`` moves the ticks'
    ``TimeStamp`` by whole 6 s steps so that the first one is "now" (plus
    ``shift_lead_s``) when the clock starts (a live pipeline then takes it as
    live data). ``rankings``: the organiser's result, served at ``/api/rankingTypeArrival-YEAR-STAGE`` once the
    stream's clock has passed its last event (the finish) and ``rankings_delay_s`` more; 404 before, as the
    real one says nothing before the jury has.
    """

    def __init__(self, recording: dict, host: str = "127.0.0.1", port: int = 0, speed: float = 1.0,
                 faults: Faults = Faults(), keepalive_s: float = 15.0, shift_to_now: bool = False,
                 max_gap_s: float = 0.0, shift_lead_s: float = 0.0, rankings=None, rankings_delay_s: float = 0.0):
        if speed < 0:
            raise RaceCenterError("--speed must be 0 (as fast as possible) or more")
        self.recording = recording
        self.events = [e if isinstance(e, dict) else {"dt": 0, "data": json.dumps(e)}
                       for e in recording.get("events") or []]
        meta = recording.get("meta") or {}
        self.date = str(meta.get("date", ""))
        self.year = str(meta.get("year") or self.date[:4])
        rest = recording.get("rest") or {}
        self.rest = rest
        info = (rest.get("stages") or {}).get(self.date) or {}
        self.stage_number = info.get("stage")
        self.speed = speed
        self.faults = faults
        self.keepalive_s = keepalive_s
        self.shift_to_now, self.shift_lead_s = shift_to_now, shift_lead_s
        self.shift_s = 0.0
        self.rankings, self.rankings_delay_s = rankings, rankings_delay_s
        due, total = [], 0.0
        for e in self.events:
            dt = max(0.0, float(e.get("dt") or 0) / 1000.0)
            total += min(dt, max_gap_s) if max_gap_s > 0 else dt
            due.append(total / speed if speed > 0 else 0.0)
        self.due = [d - due[0] for d in due] if due else []
        self.t0: float | None = None
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._done_faults: set = set()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "RaceCenterServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True, name="racecenter")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- content

    def rest_document(self, path: str):
        """The REST answer for ``path``, or None (404)."""
        y, n = self.year, self.stage_number
        if path == f"/api/allCompetitors-{y}":
            return self.rest.get("riders") or []
        if path == f"/api/team-{y}":
            return self.rest.get("teams") or []
        if path == f"/api/stage-{y}":  # each with its date, as the real API gives it (a recording keys them by it)
            return [{**v, "date": v.get("date") or d} if isinstance(v, dict) else v
                    for d, v in (self.rest.get("stages") or {}).items()]
        if path == f"/api/checkpoint-{y}-{n}" and self.rest.get("checkpoints") is not None:
            return self.rest["checkpoints"]
        if path == f"/{RACE}/{y}/stage-{n}/trace.json" and self.rest.get("trace") is not None:
            return self.rest["trace"]
        if path == f"/api/rankingTypeArrival-{y}-{n}" and self.rankings is not None and self.rankings_due():
            return self.rankings
        return None

    def rankings_due(self) -> bool:
        """The stream's clock has passed the last event (the finish) and the delay: the result is out."""
        with self._lock:
            t0 = self.t0
        return t0 is not None and time.time() >= t0 + (self.due[-1] if self.due else 0.0) + self.rankings_delay_s

    def _start_clock(self) -> bool:
        """Start the stream's clock (and the shift) if this is the first connection; True if it was."""
        with self._lock:
            if self.t0 is not None:
                return False
            self.t0 = time.time()
            if self.shift_to_now:
                for e in self.events:
                    kind, doc = classify_update(e.get("data") if isinstance(e.get("data"), str) else "")
                    if kind == "tick":
                        lag = self.t0 + self.shift_lead_s - float(doc["data"]["TimeStamp"])
                        self.shift_s = WINDOWING.nearest_windows(lag)  # the live windows cut where the replay's do
                        break
            return True

    def event_text(self, i: int) -> str:
        data = self.events[i].get("data")
        text = data if isinstance(data, str) else json.dumps(data)
        if not self.shift_s:
            return text
        kind, doc = classify_update(text)
        if kind != "tick":
            return text
        doc["data"]["TimeStamp"] = doc["data"]["TimeStamp"] + self.shift_s
        return json.dumps(doc, separators=(",", ":"))

    def _once(self, key) -> bool:
        with self._lock:
            if key in self._done_faults:
                return False
            self._done_faults.add(key)
            return True

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "peloton-racecenter/1"

            def log_message(self, fmt, *args):  # quiet: the operator sees the stand-in's own lines
                pass

            def do_GET(self):  # noqa: N802 - the http.server API
                path = urllib.parse.urlsplit(self.path).path
                if path == "/live-stream":
                    self.close_connection = True
                    try:
                        server._stream(self)
                    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
                        pass
                    return
                doc = server.rest_document(path)
                if doc is None:
                    body = json.dumps({"error": "not found", "path": path}).encode()
                    self.send_response(404)
                else:
                    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
                    self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        first = self._start_clock()
        rng = random.Random(self.faults.seed + self.stats.connections)
        with self._lock:
            self.stats.connections += 1
        last = handler.headers.get("Last-Event-ID")
        if last is not None and last.strip().isdigit():
            start = int(last) + 1
            with self._lock:
                self.stats.resumed += 1
        elif first or self.speed == 0:
            start = 0
        else:  # joins live: what was due before it came is gone, as on the real stream
            now = time.time() - self.t0
            start = next((i for i, d in enumerate(self.due) if d >= now), len(self.due))
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        out = handler.wfile
        quirks = self.faults.chunk_quirks

        def chunk(payload: bytes, declared: int | None = None) -> None:
            size = len(payload) if declared is None else declared
            if quirks:
                line = rng.choice(("%x", "%X ", "%08x", "%x;ext=1", "%x\t")) % size
            else:
                line = "%x" % size
            out.write(line.encode() + b"\r\n" + payload + (b"\r\n" if declared is None else b""))

        def send(payload: bytes) -> None:
            if quirks and len(payload) > 4:  # split anywhere, even inside a UTF-8 sequence or a CRLF
                cuts = sorted(rng.sample(range(1, len(payload)), min(2, len(payload) - 1)))
                for a, b in zip([0, *cuts], [*cuts, len(payload)]):
                    chunk(payload[a:b])
            else:
                chunk(payload)
            out.flush()

        def sse(data: str, event_id: int | None = None) -> bytes:
            lines = ([f"id: {event_id}"] if event_id is not None else []) + ["event: update"]
            lines += [f"data: {line}" for line in data.split("\n")]
            return ("\n".join(lines) + "\n\n").encode("utf-8")

        send(b": peloton race center stand-in\nretry: 1000\n\n")
        for i in range(start, len(self.events)):
            while True:  # wait for the event's turn, with keep-alives
                wait = self.t0 + self.due[i] - time.time()
                if wait <= 0 or self._stopping.is_set():
                    break
                time.sleep(min(wait, self.keepalive_s))
                if self.t0 + self.due[i] - time.time() > 0:
                    send(b": keep-alive\n\n")
            if self._stopping.is_set():
                return
            for at, seconds in self.faults.stall_at:
                if at == i and self._once(("stall", i)):
                    with self._lock:
                        self.stats.stalls += 1
                    self._stopping.wait(seconds)
            payload = sse(self.event_text(i), i)
            if i in self.faults.drop_at and self._once(("drop", i)):
                with self._lock:
                    self.stats.drops += 1
                chunk(payload[: len(payload) // 2], declared=len(payload))  # half an event, then the line goes dead
                out.flush()
                return
            send(payload)
            with self._lock:
                self.stats.sent += 1
                self.stats.first_sent_at.setdefault(i, time.time())
            n = i + 1
            if self.faults.malformed_every and n % self.faults.malformed_every == 0 and self._once(("bad", i)):
                bad = _MALFORMED[(n // self.faults.malformed_every) % len(_MALFORMED)](self.event_text(i))
                send(sse(bad))
                with self._lock:
                    self.stats.malformed += 1
            if self.faults.other_every and n % self.faults.other_every == 0 and self._once(("other", i)):
                other = {"bind": f"pack-{self.year}-{self.stage_number}",
                         "data": {"groups": [], "TimeStamp": time.time()}}
                send(sse(json.dumps(other)))
                with self._lock:
                    self.stats.other += 1
        while not self._stopping.is_set():  # the stage is over: an idle stream, as the real one after a stage
            self._stopping.wait(self.keepalive_s)
            send(b": keep-alive\n\n")
