"""The official Race Center protocol: a tolerant client (the stand-in that serves a recording is
:mod:`peloton.sim.racecenter`).

The Race Center publishes the race as server-sent events at ``/live-stream``
(``event: update``, ``data: {"bind": ..., "data": ...}``; rider telemetry is
the bind ``telemetryCompetitor-<year>``) and a REST API. URL shapes, as open
clients of the feed use them (``pantic14/racecenter-data``, the recorder of
the shipped recordings):

* ``GET /api/allCompetitors-<year>``: the start list (``rest.riders``);
* ``GET /api/team-<year>``: the teams (``rest.teams``);
* ``GET /api/stage-<year>``: every stage, a list (``rest.stages`` is it keyed by date);
* ``GET /api/checkpoint-<year>-<stage number>``: timetable and weather (``rest.checkpoints``);
* ``GET <trace base>/tdf/<year>/stage-<stage number>/trace.json``: the course (``rest.trace``).
  The real trace lives on ASO's asset bucket (:data:`ASO_TRACE_BASE`), not on the
  Race Center host; the stand-in serves it under the same path on itself.

Clients of this feed report that its chunked transfer encoding is rejected by
strict HTTP parsers, so the client here reads the socket itself: a tolerant
de-chunker (:class:`Dechunker`) and an incremental SSE parser over bytes
(:class:`SSEParser`) that keeps events split across chunks, skips comments
and survives a connection cut in the middle of an event.
"""
from __future__ import annotations

import datetime
import json
import math
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from peloton.ingest.recording import RecordingError

__all__ = ["RaceCenterError", "SSEEvent", "SSEParser", "Dechunker", "StreamClosed", "open_event_stream",
           "get_json", "fetch_rest", "ResilientStream", "race_center_base", "trace_base_for", "TELEMETRY_PREFIX",
           "classify_update", "ASO_TRACE_BASE", "race_date"]

TELEMETRY_PREFIX = "telemetryCompetitor"
#: ASO's public asset bucket, where the real stages' ``trace.json`` live (may rotate per season).
ASO_TRACE_BASE = "https://storage.googleapis.com/tdf-prod-assets-7d6b412378cb7194"
RACE = "tdf"
#: Longest SSE line kept: a real tick is ~40 KB; anything this long without a newline is garbage.
MAX_LINE_BYTES = 8 * 1024 * 1024
PARIS = ZoneInfo("Europe/Paris")


class RaceCenterError(RecordingError):
    """A Race Center URL or answer that cannot be used (a kind of unreadable feed: one error line, exit 2)."""


class StreamClosed(ConnectionError):
    """The server ended the stream (cleanly or not)."""


def race_date(epoch_s: float) -> str:
    """The race's calendar date (Europe/Paris) of an instant: the stage id of a tick."""
    return datetime.datetime.fromtimestamp(epoch_s, PARIS).date().isoformat()


# ---------------------------------------------------------------------------------------------------------------
# Client side: URLs, tolerant HTTP, SSE parsing


def race_center_base(url: str) -> str:
    """The Race Center's base URL (scheme://host[:port]) from what an operator gives.

    Accepts the base itself or its ``/live-stream`` URL; anything that is not
    http(s) with a host is a :class:`RaceCenterError`.
    """
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RaceCenterError(f"--source must be an http(s) URL such as https://racecenter.letour.fr: got {url!r}")
    try:
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise RaceCenterError(f"--source has a bad port: {url!r}") from None
    path = parts.path.rstrip("/")
    if path.endswith("/live-stream"):
        path = path[: -len("/live-stream")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def trace_base_for(base: str) -> str:
    """Where a stage's trace.json lives: ASO's bucket for the real Race Center, the source itself otherwise."""
    host = urllib.parse.urlsplit(base).hostname or ""
    return ASO_TRACE_BASE if host.endswith("letour.fr") else base


@dataclass
class SSEEvent:
    event: str
    data: str
    id: str | None


class SSEParser:
    """Incremental server-sent-events parser over raw bytes (WHATWG rules).

    Lines end in CRLF, LF or CR, possibly split across chunks (even inside a
    UTF-8 sequence: lines are decoded whole). Comments (``:``) are counted as
    keep-alives. An event still incomplete when its connection ends is dropped
    by starting a fresh parser, never half-dispatched.
    """

    def __init__(self, last_event_id: str | None = None):
        self._buf = b""
        self._cr_pending = False  # the previous chunk ended in CR: a following LF belongs to it
        self._event = ""
        self._data: list[str] = []
        self._started = False
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self.comments = 0
        self.oversized = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._cr_pending and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._cr_pending = False
        self._buf += chunk
        events = []
        start = 0
        buf = self._buf
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start)
            if lf < 0 and cr < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                end, nxt = cr, cr + 1
                if nxt < n and buf[nxt:nxt + 1] == b"\n":
                    nxt += 1
                elif nxt == n:
                    self._cr_pending = True
            else:
                end, nxt = lf, lf + 1
            event = self._line(buf[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._buf = buf[start:]
        if len(self._buf) > MAX_LINE_BYTES:
            self.oversized += 1
            self._buf = b""
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not self._started:
            self._started = True
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":
            self.comments += 1
            return None
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEEvent(event, "\n".join(data), self.last_event_id)


class Dechunker:
    """Tolerant HTTP/1.1 chunked-body decoder, incremental.

    Accepts what strict parsers refuse: whitespace and extensions after the
    size, upper- or lower-case hex, leading zeros, a bare LF for CRLF, a
    missing CRLF after the data, stray empty lines. A size line that is not
    hex at all means the server did not really chunk: the rest is body as is.
    """

    def __init__(self):
        self._buf = b""
        self._left = 0  # bytes of chunk data still to come
        self._after_data = False  # the CRLF that ends a chunk's data is due
        self.raw = False
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        if self.raw:
            return chunk
        self._buf += chunk
        out = []
        while self._buf and not self.done:
            if self._left:
                take = self._buf[: self._left]
                out.append(take)
                self._left -= len(take)
                self._buf = self._buf[len(take):]
                if not self._left:
                    self._after_data = True
                continue
            if self._after_data:
                if self._buf[:2] == b"\r\n":
                    self._buf = self._buf[2:]
                elif self._buf[:1] == b"\n":
                    self._buf = self._buf[1:]
                elif self._buf == b"\r":
                    break  # wait for the LF
                self._after_data = False
                continue
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > 1024:  # no size line is this long: not chunked after all
                    self.raw = True
                    out.append(self._buf)
                    self._buf = b""
                break
            line = self._buf[:nl].strip()
            token = line.split(b";", 1)[0].strip()
            if not line:
                self._buf = self._buf[nl + 1:]
                continue
            try:
                size = int(token, 16)
            except ValueError:
                self.raw = True
                out.append(self._buf)
                self._buf = b""
                break
            self._buf = self._buf[nl + 1:]
            if size == 0:
                self.done = True
                break
            self._left = size
        return b"".join(out)


def _connect(url: str, timeout: float) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    if parts.scheme == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
    return sock


class HTTPStatusError(ConnectionError):
    def __init__(self, status: int, reason: str, url: str):
        super().__init__(f"{url} answered HTTP {status} {reason}".strip())
        self.status = status


def _request(url: str, headers: dict, timeout: float, max_redirects: int = 3):
    """GET ``url`` over a raw socket; return (socket, status, headers, first body bytes)."""
    for _ in range(max_redirects + 1):
        parts = urllib.parse.urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sock = _connect(url, timeout)
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "User-Agent: peloton-racecenter",
                 "Connection: close", *[f"{k}: {v}" for k, v in headers.items()], "", ""]
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        head = b""
        while True:
            sep = head.find(b"\r\n\r\n")
            sep_len = 4
            if sep < 0:
                sep, sep_len = head.find(b"\n\n"), 2
            if sep >= 0:
                break
            more = sock.recv(65536)
            if not more:
                sock.close()
                raise StreamClosed(f"{url}: the connection closed before the response headers")
            head += more
            if len(head) > 65536:
                sock.close()
                raise RaceCenterError(f"{url}: response headers too long")
        rest = head[sep + sep_len:]
        head_lines = head[:sep].decode("latin-1").splitlines()
        status_line = head_lines[0].split(" ", 2)
        try:
            status = int(status_line[1])
        except (IndexError, ValueError):
            sock.close()
            raise RaceCenterError(f"{url}: not an HTTP response ({head_lines[0][:80]!r})") from None
        reason = status_line[2] if len(status_line) > 2 else ""
        response_headers = {}
        for line in head_lines[1:]:
            k, _, v = line.partition(":")
            response_headers[k.strip().lower()] = v.strip()
        if status in (301, 302, 303, 307, 308) and response_headers.get("location"):
            sock.close()
            url = urllib.parse.urljoin(url, response_headers["location"])
            continue
        if status != 200:
            sock.close()
            raise HTTPStatusError(status, reason, url)
        return sock, response_headers, rest
    raise RaceCenterError(f"{url}: too many redirects")


def _body_chunks(sock: socket.socket, headers: dict, first: bytes):
    """The decoded body of a response, chunk by chunk, as it arrives."""
    dechunk = Dechunker() if "chunked" in headers.get("transfer-encoding", "").lower() else None
    length = int(headers["content-length"]) if dechunk is None and headers.get("content-length", "").isdigit() \
        else None
    got = 0
    data = first
    while True:
        if data:
            body = dechunk.feed(data) if dechunk else data
            got += len(data)
            if body:
                yield body
            if dechunk is not None and dechunk.done:
                return
            if length is not None and got >= length:
                return
        data = sock.recv(65536)
        if not data:
            return


def get_json(url: str, timeout: float = 30.0):
    """GET a JSON document (the REST API), through the same tolerant reader as the stream."""
    try:
        sock, headers, first = _request(url, {"Accept": "application/json"}, timeout)
    except socket.gaierror as exc:
        raise RaceCenterError(f"cannot resolve {urllib.parse.urlsplit(url).hostname}: {exc.strerror}") from None
    except HTTPStatusError as exc:
        raise RaceCenterError(str(exc)) from None
    except OSError as exc:
        raise RaceCenterError(f"cannot get {url}: {exc.strerror or exc}") from None
    try:
        body = b"".join(_body_chunks(sock, headers, first))
    except OSError as exc:
        raise RaceCenterError(f"cannot get {url}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    if not body.strip():
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RaceCenterError(f"{url} did not answer JSON: {exc}") from None


def open_event_stream(base: str, last_event_id: str | None = None, idle_timeout_s: float = 60.0,
                      connect_timeout_s: float = 15.0):
    """Connect to ``base/live-stream``; return ``(parser, events)``.

    ``events`` yields :class:`SSEEvent` as they arrive (and None, a heartbeat,
    for bytes that completed no event and for each silent second) and ends with
    :class:`StreamClosed` when the connection ends, or ``socket.timeout`` when
    the stream is silent (not even a keep-alive) for ``idle_timeout_s``: a
    stalled stream. ``parser.last_event_id`` is what to resume from.
    """
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    sock, response_headers, first = _request(base.rstrip("/") + "/live-stream", headers, connect_timeout_s)
    sock.settimeout(min(1.0, idle_timeout_s))  # wake every second: the caller can stop, and see a stall
    parser = SSEParser(last_event_id)
    dechunk = Dechunker() if "chunked" in response_headers.get("transfer-encoding", "").lower() else None

    def events():
        data, heard = first, time.monotonic()
        try:
            while True:
                if data:
                    heard = time.monotonic()
                    got = parser.feed(dechunk.feed(data) if dechunk else data)
                    yield from got
                    if not got:
                        yield None  # a heartbeat: the stream is alive (a keep-alive, part of an event)
                    if dechunk is not None and dechunk.done:
                        raise StreamClosed("the server ended the stream")
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    if time.monotonic() - heard >= idle_timeout_s:
                        raise
                    data = None
                    yield None
                    continue
                if not data:
                    raise StreamClosed("the server closed the stream")
        finally:
            sock.close()

    return parser, events()


class ResilientStream:
    """The live stream as one endless iterator of events, across disconnections.

    Reconnects with exponential backoff (from the server's ``retry:`` or
    ``backoff_s``, doubling to ``backoff_max_s``, reset once a connection
    delivers) and resumes with ``Last-Event-ID``: the id of the last event
    *dispatched*, never that of an event cut in the middle. A stream silent for
    ``idle_timeout_s`` is taken as stalled and reopened. Only the first
    connection may fail for good (:class:`RaceCenterError`): a wrong URL
    should stop the operator at once, a failing server later should not.
    Yields :class:`SSEEvent`, or None as a heartbeat.
    """

    def __init__(self, base: str, idle_timeout_s: float = 60.0, backoff_s: float = 0.5, backoff_max_s: float = 30.0,
                 log=None, sleep=time.sleep):
        self.base, self.idle_timeout_s = base, idle_timeout_s
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.log, self.sleep = log or (lambda _msg: None), sleep
        self.connections = self.reconnects = self.comments = self.oversized = 0
        self.last_event_id: str | None = None

    def __iter__(self):
        backoff = self.backoff_s
        url = self.base + "/live-stream"
        while True:
            why = ""
            try:
                parser, events = open_event_stream(self.base, self.last_event_id, self.idle_timeout_s)
            except socket.gaierror as exc:
                why = f"cannot resolve {urllib.parse.urlsplit(url).hostname}: {exc.strerror}"
            except HTTPStatusError as exc:
                why = str(exc)
                if self.connections == 0 and exc.status < 500:
                    raise RaceCenterError(why) from None
            except RaceCenterError as exc:
                why = str(exc)
            except OSError as exc:
                why = f"cannot connect to {url}: {exc.strerror or exc}"
            else:
                self.connections += 1
                delivered = False
                try:
                    for event in events:
                        if event is not None:
                            delivered = True
                            self.last_event_id = event.id
                        yield event
                except socket.timeout:
                    why = f"no data for {self.idle_timeout_s:g} s: the stream stalled"
                except (StreamClosed, OSError) as exc:
                    why = str(exc) or type(exc).__name__
                finally:
                    events.close()
                    self.comments += parser.comments
                    self.oversized += parser.oversized
                if delivered:
                    backoff = max(self.backoff_s, (parser.retry_ms or 0) / 1000.0)
            if self.connections == 0:
                raise RaceCenterError(why)
            self.reconnects += 1
            self.log(f"{why}; reconnecting in {backoff:.1f} s"
                     + (f" from event {self.last_event_id}" if self.last_event_id is not None else ""))
            self.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)


def classify_update(data: str) -> tuple[str, object]:
    """What an ``update`` event carries: ("tick", doc), ("other", bind) or ("malformed", reason)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return "malformed", "not JSON"
    if not isinstance(doc, dict) or not isinstance(doc.get("bind"), str):
        return "malformed", "no bind"
    bind = doc["bind"]
    if not bind.startswith(TELEMETRY_PREFIX):
        return "other", bind
    body = doc.get("data")
    if not isinstance(body, dict) or not isinstance(body.get("Riders"), list):
        return "malformed", "telemetry without Riders"
    ts = body.get("TimeStamp")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts <= 0:
        return "malformed", "telemetry without a TimeStamp"
    return "tick", doc


def fetch_rest(base: str, date: str, trace_base: str | None = None, log=None) -> dict:
    """The REST snapshot of one stage, shaped as the shipped recordings' ``rest``.

    Riders, teams and stages are required; the stage's checkpoints and trace
    are fetched by its number and left out (with a note to ``log``) when the
    API has none, as for a time trial's trace.
    """
    year = date[:4]
    riders = get_json(f"{base}/api/allCompetitors-{year}")
    try:
        teams = get_json(f"{base}/api/team-{year}") or []
    except RaceCenterError as exc:
        teams = []
        if log:
            log(f"no teams: {exc}")
    stage_list = get_json(f"{base}/api/stage-{year}")
    if not isinstance(riders, list) or not isinstance(stage_list, list):
        raise RaceCenterError(f"{base}/api: the start list and the stages must be JSON lists")
    stages = {}
    for s in stage_list:
        if isinstance(s, dict) and s.get("date"):
            if "name" not in s:  # as the recorder of the shipped recordings names them
                s["name"] = f"Stage {s.get('stage')} - {(s.get('arrivalCity') or {}).get('label', '')}"
            stages[str(s["date"])[:10]] = s
    if date not in stages:
        raise RaceCenterError(f"no stage on {date} in {base}/api/stage-{year} "
                              f"(stages on {', '.join(sorted(stages)[:3])}...)")
    rest = {"riders": riders, "teams": teams, "stages": stages}
    number = stages[date].get("stage")
    try:
        trace = get_json(f"{trace_base or trace_base_for(base)}/{RACE}/{year}/stage-{number}/trace.json")
        if isinstance(trace, dict):
            rest["trace"] = trace
    except RaceCenterError as exc:
        if log:
            log(f"no trace for stage {number}: {exc}")
    try:
        checkpoints = get_json(f"{base}/api/checkpoint-{year}-{number}")
        if checkpoints:
            rest["checkpoints"] = checkpoints
    except RaceCenterError as exc:
        if log:
            log(f"no checkpoints for stage {number}: {exc}")
    return rest


# ---------------------------------------------------------------------------------------------------------------
