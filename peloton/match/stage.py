"""The stage spec: everything the pipeline needs to know about one stage.

A :class:`Stage` is plain JSON-serialisable data (course polyline, official
km anchors, checkpoints, start list), built once when the pipeline is
launched and shipped to workers, where :meth:`Stage.course` builds the
geometry. It never carries official *derived* telemetry (km to finish, gaps).
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, fields

from peloton.match.course import Anchor, Course

__all__ = ["Stage", "StageError", "stage_from_recording", "read_course_file", "parse_course_text"]


class StageError(ValueError):
    """A stage or course description that cannot be used."""


@dataclass
class Stage:
    stage_id: str
    name: str = ""
    date: str = ""
    stage_type: str = ""
    length_km: float | None = None
    start_time: str = ""
    timezone: str = "Europe/Paris"  # of the timetable's clock times
    route: list[list[float]] = field(default_factory=list)  # [lat, lon, ele|None]
    anchors: list[dict] = field(default_factory=list)  # {lat, lon, km, label}
    checkpoints: list[dict] = field(default_factory=list)
    riders: list[dict] = field(default_factory=list)  # {bib, name, team[, birthdate]}
    #: the classifications before this stage (:class:`peloton.state.classifications.Standings` as a dict), given at
    #: launch (``--standings-before``); None: the classifications are of this stage alone
    standings_before: dict | None = None

    def course(self) -> Course:
        if len(self.route) < 2:
            raise StageError(f"stage {self.stage_id} has no course polyline")
        lat = [p[0] for p in self.route]
        lon = [p[1] for p in self.route]
        ele = [p[2] if len(p) > 2 and p[2] is not None else float("nan") for p in self.route]
        anchors = [Anchor(a["lat"], a["lon"], a["km"], a.get("label", "")) for a in self.anchors]
        return Course(lat, lon, ele, anchors=anchors, finish_km=self.length_km, name=self.name)

    def start_list(self) -> list[int] | None:
        """The bibs on the start list: any other bib in the feed is a dead letter. None for a stage file
        without one (written before start lists were kept): then bibs are not checked."""
        bibs = sorted({r["bib"] for r in self.riders if isinstance(r, dict) and type(r.get("bib")) is int})
        return bibs or None

    @property
    def year(self) -> int | None:
        return int(self.date[:4]) if re.match(r"^\d{4}", self.date or "") else None

    @property
    def number(self) -> int | None:
        """The stage number, from its name ("Stage 4 - Foix")."""
        m = re.search(r"(?i)stage\s+(\d+)", self.name or "")
        return int(m.group(1)) if m else None

    @property
    def is_time_trial(self) -> bool:
        return self.stage_type in ("PAS", "EQU", "ITT", "TTT")

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Stage":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StageError(f"not a stage file: {exc}") from None
        if not isinstance(data, dict):
            raise StageError("not a stage file: a JSON object from 'peloton stage export' is expected")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown or "stage_id" not in data:
            what = f"unknown key {unknown[0]!r}" if unknown else "no 'stage_id'"
            raise StageError(f"not a stage file ({what}): write one with 'peloton stage export'")
        try:
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise StageError(f"not a stage file: {exc}") from None


def _checkpoint_rows(rest: dict) -> list[dict]:
    rows = []
    for block in rest.get("checkpoints") or []:
        if not isinstance(block, dict):
            continue
        for key, cp in block.items():
            if key.isdigit() and isinstance(cp, dict):
                rows.append(cp)
    rows.sort(key=lambda c: c.get("checkpoint", 0))
    return rows


def _anchors_from_recording(rest: dict) -> list[dict]:
    """Official km marks: points of interest, then timetable checkpoints.

    Checkpoints before the real start carry ``length`` 0 (the neutral zone), so
    only the one typed ``real`` and those with a positive length are km marks.
    """
    anchors = []
    trace = rest.get("trace") or {}
    for poi in trace.get("pointsOfInterest") or []:
        if poi.get("distanceTraveled") is None:
            continue
        anchors.append({"lat": poi["lat"], "lon": poi["lon"], "km": float(poi["distanceTraveled"]),
                        "label": str(poi.get("label", ""))})
    for cp in _checkpoint_rows(rest):
        length = cp.get("length")
        types = {t.get("type") for t in cp.get("checkpointTypes") or []}
        if length is None or cp.get("latitude") is None:
            continue
        if float(length) > 0 or "real" in types:
            anchors.append({"lat": cp["latitude"], "lon": cp["longitude"], "km": float(length),
                            "label": str(cp.get("place") or cp.get("checkpoint"))})
    return anchors


def stage_from_recording(recording: dict, route: list[list[float]] | None = None) -> Stage:
    """Build the stage spec from an official feed recording.

    ``route`` overrides the recording's trace (a time trial recording has none).
    """
    meta = recording.get("meta") or {}
    rest = recording.get("rest") or {}
    date = str(meta.get("date", ""))
    info = (rest.get("stages") or {}).get(date) or {}
    trace = rest.get("trace") or {}
    if route is None:
        route = [[p["lat"], p["lon"], p.get("ele")] for p in trace.get("routePoints") or []]
    if len(route) < 2:
        raise StageError("the recording has no course (rest.trace); pass --course FILE")
    length = trace.get("totalDistance") or info.get("length")
    teams = {t.get("_id"): t.get("name") or t.get("code") for t in rest.get("teams") or [] if isinstance(t, dict)}
    riders = [{"bib": r["bib"], "name": f"{r.get('firstname', '')} {r.get('lastname', '')}".strip(),
               "team": teams.get(r.get("$team", "").split(":")[-1]) or "",
               "birthdate": str(r.get("birthdate") or "")[:10]}  # the young riders' classification
              for r in rest.get("riders") or [] if isinstance(r, dict) and "bib" in r]
    checkpoints = [{"km": float(cp.get("length") or 0.0), "lat": cp.get("latitude"), "lon": cp.get("longitude"),
                    "place": cp.get("place") or "", "schedule": [cp.get("lowSchedule"), cp.get("middleSchedule"),
                                                                cp.get("highSchedule")],
                    "types": [t.get("type") for t in cp.get("checkpointTypes") or []],
                    "summits": cp.get("checkpointSummits") or [], "meteo": cp.get("checkpointMeteo")}
                   for cp in _checkpoint_rows(rest)]
    return Stage(
        stage_id=date or "stage",
        name=str(info.get("name") or trace.get("name") or ""),
        date=date,
        stage_type=str(info.get("type") or info.get("stageType") or ""),
        length_km=float(length) if length else None,
        start_time=str(info.get("startTime") or ""),
        timezone=str(info.get("timezone") or "Europe/Paris"),
        route=route,
        anchors=_anchors_from_recording(rest),
        checkpoints=checkpoints,
        riders=riders,
    )


def parse_course_text(text: str, name: str = "course") -> list[list[float]]:
    """A GeoJSON (LineString / MultiLineString) or GPX text -> [[lat, lon, ele], ...]."""
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return _parse_gpx(stripped, name)
    try:
        doc = json.loads(text)
    except ValueError:
        raise StageError(f"{name}: neither GeoJSON nor GPX") from None
    lines = []

    def walk(obj):
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "FeatureCollection":
            for f in obj.get("features") or []:
                walk(f)
        elif kind == "Feature":
            walk(obj.get("geometry"))
        elif kind == "LineString":
            lines.append(obj.get("coordinates") or [])
        elif kind == "MultiLineString":
            lines.extend(obj.get("coordinates") or [])
        elif kind == "GeometryCollection":
            for g in obj.get("geometries") or []:
                walk(g)

    walk(doc)
    route = [[c[1], c[0], c[2] if len(c) > 2 else None] for line in lines for c in line if len(c) >= 2]
    if len(route) < 2:
        raise StageError(f"{name}: no LineString or MultiLineString with at least two points")
    return route


def _parse_gpx(text: str, name: str) -> list[list[float]]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise StageError(f"{name}: unreadable GPX ({exc})") from None
    route = []
    for el in root.iter():
        tag = re.sub(r"^\{.*\}", "", el.tag)
        if tag in ("trkpt", "rtept") and el.get("lat") is not None:
            ele = next((c.text for c in el if re.sub(r"^\{.*\}", "", c.tag) == "ele"), None)
            route.append([float(el.get("lat")), float(el.get("lon")), float(ele) if ele else None])
    if len(route) < 2:
        raise StageError(f"{name}: GPX without a track or route of at least two points")
    return route


def read_course_file(path: str) -> list[list[float]]:
    """Read a course file through Beam-free local IO (used at launch time)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise StageError(f"cannot read course file {path}: {exc.strerror}") from None
    return parse_course_text(text, path)


def resolve_stage(recording: str | None, course: str | None = None, stage_file: str | None = None) -> Stage:
    """The stage spec of a replay or a publish: from ``stage_file``, else the recording (and ``course``)."""
    import os

    from peloton.ingest.recording import detect_format, load_recording, read_text

    if stage_file:
        return Stage.from_json(read_text(stage_file))
    text = read_text(recording)
    route = parse_course_text(read_text(course), course) if course else None
    if detect_format(text) == "recording":
        return stage_from_recording(load_recording(text), route=route)
    if route is None:
        raise StageError(f"{recording} is a flat CSV without a course: pass --course FILE or --stage FILE")
    name = os.path.basename(recording).split(".")[0]
    return Stage(stage_id=name.split("_")[0], name=name, route=route)
