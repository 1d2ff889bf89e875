"""Builders of synthetic tracks along real courses, with known truth."""
from __future__ import annotations

import contextlib

import numpy as np

from peloton.ingest.feed import FixBatch
from peloton.match.course import Course
from peloton.match.geo import LocalProjection


def track_along(course: Course, bib: int, speed_mps: float, dt_s: float, noise_m: float, seed: int,
                start_s: float = 0.0, end_s: float | None = None, t0: float = 1.7e9, gaps=()):
    """A rider riding the course at constant speed: (FixBatch, true polyline distance).

    ``gaps`` are (from_s, to_s) stretches of polyline without fixes (signal lost).
    """
    rng = np.random.default_rng(seed)
    end_s = course.length_m if end_s is None else end_s
    t = np.arange(0.0, (end_s - start_s) / speed_mps, dt_s)
    s = start_s + speed_mps * t
    keep = np.ones(s.size, dtype=bool)
    for a, b in gaps:
        keep &= ~((s >= a) & (s < b))
    s, t = s[keep], t[keep]
    lat, lon = course.point_at(s)
    x, y = course.proj.forward(lat, lon)
    x = x + rng.normal(0, noise_m, s.size)
    y = y + rng.normal(0, noise_m, s.size)
    lat, lon = course.proj.inverse(x, y)
    fixes = FixBatch("test", np.full(s.size, bib, dtype=np.int64), t0 + t, lat, lon, np.full(s.size, np.nan))
    return fixes, s


def line_course(points_xy_m, lat0=45.0, lon0=6.0, anchors=(), finish_km=None) -> Course:
    """A course from points in metres east/north of (lat0, lon0)."""
    xy = np.asarray(points_xy_m, dtype=float)
    lat, lon = LocalProjection(lat0, lon0).inverse(xy[:, 0], xy[:, 1])
    return Course(lat, lon, None, anchors=list(anchors), finish_km=finish_km)


def canonical_rows(rows) -> list[tuple]:
    """Rows (dicts from Avro, JSON or Columns) as sorted tuples, comparable across sinks.

    Timestamps become epoch milliseconds, arrays and records tuples, nulls -1 (so tuples sort).
    """
    import datetime

    def value(v):
        if v is None:
            return -1
        if isinstance(v, datetime.datetime):
            return int(round(v.timestamp() * 1000))
        if isinstance(v, list):
            return tuple(value(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((k, value(x)) for k, x in v.items()))
        return v

    return sorted(tuple(sorted((k, value(v)) for k, v in r.items())) for r in rows)


def course_with_elevation(length_m: float, heading_deg: float, elevation, step_m: float = 20.0) -> Course:
    """A straight course on ``heading_deg`` (clockwise from north) with altitude ``elevation(s)``."""
    s = np.arange(0.0, length_m + step_m, step_m)
    h = np.radians(heading_deg)
    lat, lon = LocalProjection(45.0, 6.0).inverse(s * np.sin(h), s * np.cos(h))
    return Course(lat, lon, elevation(s), finish_km=length_m / 1000.0)


def weather(force, direction, km=0.0, temperature=20.0):
    return {"km": km, "meteo": {"windForce": force, "windDirection": direction, "temperature": temperature}}


def causal_step(recording_text: str, stage, course: Course, shift_s: float = 0.0):
    """What the causal replay says of a recording's ticks (one engine over them all), event times moved by
    ``shift_s`` as a publisher's ``--shift-to-now`` moves them: the reference a live run is held to."""
    from peloton.ingest.feed import concat_batches, parse_message
    from peloton.ingest.recording import iter_messages
    from peloton.match.matching import dedupe
    from peloton.predict.model import StageModel
    from peloton.state.classifications import StageClassifier
    from peloton.state.engine import RaceEngine
    from peloton.state.results import same_time_gap_s

    fixes = concat_batches([parse_message(stage.stage_id, k, p)[0] for k, p in iter_messages(recording_text)],
                           stage.stage_id)
    fixes.t = fixes.t + shift_s
    engine = RaceEngine(stage.stage_id, course.finish_km, stage.is_time_trial,
                        same_time_gap_s=same_time_gap_s(stage.stage_type), classifier=StageClassifier(stage))
    return engine.advance(dedupe(fixes)[0], course, StageModel.of_stage(stage, course))


def publish_at_pace(publisher, topic: str, messages, started: float) -> None:
    """Publish each planned message at its ``at_s`` after ``started`` (wall clock), as a live feed does."""
    import time

    for m in messages:
        wait = m.at_s - (time.time() - started)
        if wait > 0:
            time.sleep(wait)
        publisher.publish(topic, m.data, **m.attributes)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def flink_session(state_dir):
    """A Flink session cluster of the test's own (scripts/flink.sh on free ports, its state in ``state_dir``):
    yields its REST address; stopped after. Fails at once, in one line, when the artifacts are not cached."""
    import os
    import subprocess

    import pytest

    from pipelines.flink import FlinkError, job_server_jar
    from tests.conftest import ROOT

    try:
        job_server_jar()
    except FlinkError as exc:
        pytest.fail(f"the Flink artifacts are not cached: {exc}", pytrace=False)
    env = {**os.environ, "PELOTON_FLINK_STATE": str(state_dir)}
    script = str(ROOT / "scripts" / "flink.sh")
    port, rpc = free_port(), free_port()
    started = subprocess.run([script, "start", str(port), str(rpc)], capture_output=True, text=True, timeout=180,
                             env=env)
    try:
        assert started.returncode == 0, f"the Flink session cluster did not start: {started.stderr[-2000:]}"
        yield f"localhost:{port}"
    finally:
        subprocess.run([script, "stop"], timeout=60, env=env)
