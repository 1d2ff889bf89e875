"""The official result: the organiser's rankings after the stage as ``results`` and ``classifications`` rows.

The Race Center publishes them after the finish at ``/api/rankingTypeArrival-YEAR-STAGE`` (the same document
rides its live stream under the bind ``rankingTypeArrival-YEAR-STAGE``). Public clients record its shape: a JSON
list with one ranking per type, ``{"_bind": "rankingTypeArrival-YEAR-STAGE", "checkpoint": 0, "type": "itg",
"rankings": [{"position": 1, "bib": 11, "absolute": 1000, "relative": 0, "bonus": 6000, "$rider": "..."}, ...]}``;
times in ms (``absolute`` the time, ``relative`` the gap to the first, ``bonus`` and ``penality`` in ms), points
rankings carry their points (``points``, else ``absolute``), team rankings their team (``team`` or ``code``).
Types: ``ite`` the stage's individual time (the stage result), ``itg`` general time, ``ipe``/``ipg`` points,
``ime``/``img`` mountains, ``ije``/``ijg`` young rider, ``ete``/``etg`` teams (``e``: the stage, ``g``: general).

Rows (source = ``official``; a consumer takes, per key, the official row over the provisional one):

* ``results``: one per rider of ``ite``: his place (decided), his credited time behind the first
  (``absolute`` minus the first's; ``elapsed_s`` the official stage time), his same-time group (the first place
  with his time), bonus and penalty in ``detail``. Riders absent from it (DNF) have no official row here: their
  provisional row stands.
* ``classifications``: general ``itg``, points ``ipg``, mountains ``img``, young ``ijg``, teams ``etg``.

What the document cannot be is said in one line (:class:`RankingsError`, its reason one of
:mod:`peloton.ingest.reasons`): not JSON, not this shape, of another stage or race (``_bind``, or the bind the bridge
fetched it under), riders not on the start list, no stage ranking (``ite``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import numpy as np

from peloton.ingest.reasons import Reason

__all__ = ["OFFICIAL", "RANKINGS_KIND", "ATTR_BIND", "RankingsError", "Rankings", "rankings_bind", "read_rankings",
           "official_results", "official_classifications", "official_rows", "compact_rankings",
           "rankings_from_finish", "RESULT_TYPE", "CLASSIFICATION_TYPES"]

#: ``source`` of the organiser's rows (the trackers' are ``provisional``).
OFFICIAL = "official"
#: The ``kind`` attribute of a rankings message on the feed topic (ticks are ``tick``).
RANKINGS_KIND = "rankings"
#: The attribute carrying the bind the bridge fetched the document under (``rankingTypeArrival-YEAR-STAGE``).
ATTR_BIND = "bind"
#: The stage result's ranking type; the classifications' ones, by their name in ``classifications``.
RESULT_TYPE = "ite"
CLASSIFICATION_TYPES = {"itg": "general", "ipg": "points", "img": "mountains", "ijg": "young", "etg": "teams"}
#: Every type read; team rankings name a team; points rankings carry points, the others times in ms.
_TYPES = ("ite", "itg", "ipe", "ipg", "ime", "img", "ije", "ijg", "ete", "etg")
_TEAM_TYPES = ("ete", "etg")
_POINTS_TYPES = ("ipe", "ipg", "ime", "img")
_BIND = re.compile(r"^rankingType\w*-(\d{4})-(\d+)$")
#: The fields of a ranking row kept on the way (the rest, ``$rider`` pointers and names, are dropped).
_ROW_FIELDS = ("position", "bib", "team", "code", "absolute", "relative", "bonus", "penality", "points")


class RankingsError(ValueError):
    """A rankings document that cannot be used: ``reason`` (a :class:`peloton.ingest.reasons.Reason`) and one line."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Rankings:
    """A checked rankings document: per type, rows ``(key, position, absolute, relative, bonus, penalty)``
    (key: bib, or team for team types; times in ms, points for points types; None where absent), and the
    digest of the document (the same document said twice is one)."""

    stage_id: str
    year: int | None
    stage_number: int | None
    types: tuple  # ((type, (row, ...)), ...)
    digest: str

    def of(self, kind: str) -> tuple:
        return dict(self.types).get(kind, ())


def rankings_bind(year, stage_number) -> str:
    """The bind (and the REST path's last part) of a stage's rankings: ``rankingTypeArrival-2026-4``."""
    return f"rankingTypeArrival-{int(year)}-{int(stage_number)}"


def _number(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise ValueError
    return float(v)


def _check_bind(bind: str, where: str, name: str, year, stage_number) -> None:
    m = _BIND.match(str(bind))
    if not m:
        raise RankingsError(Reason.BAD_SHAPE, f"{name}: {where} {str(bind)[:60]!r} is not rankingTypeArrival-YEAR-STAGE")
    y, s = int(m.group(1)), int(m.group(2))
    if (year is not None and y != int(year)) or (stage_number is not None and s != int(stage_number)):
        raise RankingsError(Reason.WRONG_STAGE, f"{name}: rankings of stage {s} of {y}; this is stage "
                                                f"{stage_number if stage_number is not None else '?'} of "
                                                f"{year if year is not None else '?'}")


def read_rankings(text, name: str, stage_id: str, year: int | None, stage_number: int | None, start_list=None,
                  bind: str | None = None) -> Rankings:
    """A rankings document (JSON text or bytes) checked against the stage -> :class:`Rankings`, else
    :class:`RankingsError`. ``bind``: what it was fetched under (the bridge's attribute), checked as the
    document's own ``_bind`` is; ``start_list``: the stage's bibs (None: not checked)."""
    raw = text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogatepass")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RankingsError(Reason.MALFORMED_JSON, f"{name}: not JSON ({str(exc)[:80]})") from None
    if bind is not None:
        _check_bind(bind, "fetched as", name, year, stage_number)
    blocks = doc if isinstance(doc, list) else [doc]
    types: dict = {}
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str) \
                or not isinstance(block.get("rankings"), list):
            raise RankingsError(Reason.BAD_SHAPE, f"{name}: not a Race Center rankings document (a list of "
                                                  "{type, rankings: [...]} is expected)")
        for key in ("_bind", "bind"):
            if block.get(key) is not None:
                _check_bind(block[key], "its bind", name, year, stage_number)
        kind = block["type"]
        if kind not in _TYPES:
            continue  # intermediate rankings (checkpoints) and types not read here
        if kind in types:
            raise RankingsError(Reason.BAD_SHAPE, f"{name}: ranking {kind} twice")
        types[kind] = _rows(block["rankings"], kind, name)
    if not types.get(RESULT_TYPE):
        raise RankingsError(Reason.BAD_SHAPE, f"{name}: no stage ranking ({RESULT_TYPE}) in it")
    if start_list:
        known = set(int(b) for b in start_list)
        unknown = sorted({r[0] for kind, rows in types.items() if kind not in _TEAM_TYPES for r in rows} - known)
        if unknown:
            raise RankingsError(Reason.UNKNOWN_RIDER, f"{name}: bib {unknown[0]} is not on the start list"
                                + (f" ({len(unknown)} such bibs)" if len(unknown) > 1 else ""))
    return Rankings(stage_id, year, stage_number, tuple(sorted(types.items())),
                    hashlib.sha256(raw).hexdigest()[:32])


def _rows(rows: list, kind: str, name: str) -> tuple:
    out, seen = [], set()
    for row in rows:
        if not isinstance(row, dict):
            raise RankingsError(Reason.BAD_SHAPE, f"{name}: a row of ranking {kind} is not an object")
        if kind in _TEAM_TYPES:
            key = row.get("team") or row.get("code")
            if not isinstance(key, str) or not key.strip():
                raise RankingsError(Reason.BAD_SHAPE, f"{name}: a row of ranking {kind} names no team")
        else:
            key = row.get("bib")
            if type(key) is not int or key <= 0:
                raise RankingsError(Reason.BAD_SHAPE, f"{name}: a row of ranking {kind} has no bib")
        position = row.get("position")
        try:
            value = _number(row.get("points", row.get("absolute")) if kind in _POINTS_TYPES else row.get("absolute"))
            extra = [_number(row.get(k)) for k in ("relative", "bonus", "penality")]
        except ValueError:
            raise RankingsError(Reason.BAD_VALUE, f"{name}: ranking {kind}, {key!r}: a value is not a number") from None
        if type(position) is not int or position <= 0 or value is None or value < 0:
            raise RankingsError(Reason.BAD_VALUE, f"{name}: ranking {kind}, {key!r}: no usable position or value")
        if key in seen:
            raise RankingsError(Reason.BAD_SHAPE, f"{name}: {key!r} twice in ranking {kind}")
        seen.add(key)
        out.append((key, position, value, *extra))
    out.sort(key=lambda r: (r[1], str(r[0])))
    return tuple(out)


def _s(ms) -> float | None:
    return None if ms is None else round(ms / 1000.0, 3)


def official_results(r: Rankings, event_ms: int) -> list[dict]:
    """The stage result (``ite``) as ``results`` rows: places decided, credited time behind the first."""
    rows = r.of(RESULT_TYPE)
    if not rows:
        return []
    first = min(row[2] for row in rows)
    group_of: dict = {}
    for key, pos, absolute, *_ in rows:
        group_of.setdefault(absolute, pos)
    out = []
    for key, pos, absolute, relative, bonus, penalty in rows:
        behind = _s(absolute - first)
        detail = f"official: the organiser's stage result ({rankings_bind(r.year or 0, r.stage_number or 0)} " \
                 f"{RESULT_TYPE}); stage time {_clock(absolute)}"
        if bonus:
            detail += f"; bonus {bonus / 1000:g} s"
        if penalty:
            detail += f"; penalty {penalty / 1000:g} s"
        out.append({"stage_id": r.stage_id, "event_time": int(event_ms), "bib": int(key), "status": "finished",
                    "position": int(pos), "finish_time": None, "finish_uncertainty_s": None,
                    "elapsed_s": _s(absolute), "time_behind_winner_s": None, "credited_time_behind_s": behind,
                    "credited_time_min_s": behind, "credited_time_max_s": behind, "credited_time_decided": True,
                    "same_time_group": int(group_of[absolute]), "place_min": int(pos), "place_max": int(pos),
                    "order_decided": True, "last_km": None, "detail": detail, "source": OFFICIAL})
    return out


def _clock(ms: float) -> str:
    s = int(round(ms / 1000.0))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def official_classifications(r: Rankings, event_ms: int, teams: dict | None = None) -> list[dict]:
    """The general (``itg``), points (``ipg``), mountains (``img``), young (``ijg``) and teams (``etg``)
    classifications as ``classifications`` rows; ``teams`` {bib: team} names each rider's team."""
    out = []
    for kind, classification in CLASSIFICATION_TYPES.items():
        rows = r.of(kind)
        if not rows:
            continue
        points = kind in _POINTS_TYPES
        lead = rows[0][2]
        for key, pos, value, relative, bonus, _penalty in rows:
            v = value if points else value / 1000.0
            gap = (lead - value) if points else (value - lead) / 1000.0
            detail = f"official: the organiser's classification ({kind})"
            if bonus:
                detail += f"; bonus {bonus / 1000:g} s"
            out.append({"stage_id": r.stage_id, "event_time": int(event_ms), "classification": classification,
                        "bib": None if kind in _TEAM_TYPES else int(key),
                        "team": key if kind in _TEAM_TYPES else ((teams or {}).get(int(key)) or None),
                        "position": int(pos), "place_min": int(pos), "place_max": int(pos),
                        "value": round(v, 3), "value_min": round(v, 3), "value_max": round(v, 3),
                        "gap_to_leader": round(gap, 3), "decided": True, "source": OFFICIAL, "detail": detail})
    return out


def official_rows(r: Rankings, event_ms: int, teams: dict | None = None) -> dict:
    """{"results": [...], "classifications": [...]} of one checked document."""
    return {"results": official_results(r, event_ms), "classifications": official_classifications(r, event_ms, teams)}


def compact_rankings(doc) -> list:
    """The document with only what is read (the types of :data:`_TYPES`, the row fields used, the bind): the
    Race Center's rows carry pointers and names that would take a full field's document past a message's size."""
    blocks = doc if isinstance(doc, list) else [doc]
    out = []
    for block in blocks:
        if not isinstance(block, dict) or "type" not in block:
            out.append(block)  # not a ranking: left for the gate to refuse
            continue
        if block["type"] not in _TYPES:
            continue  # intermediate rankings, not read
        rows = block.get("rankings")
        kept = {k: block[k] for k in ("_bind", "bind", "type") if k in block}
        kept["rankings"] = [{k: row[k] for k in _ROW_FIELDS if k in row} if isinstance(row, dict) else row
                            for row in rows] if isinstance(rows, list) else rows
        out.append(kept)
    return out


def rankings_from_finish(year: int, stage_number: int, finish: dict, start_s: float, same_time_gap_s: float = 1.0,
                         bonus_s=(10, 6, 4), finish_points=(), teams: dict | None = None,
                         young: set | None = None) -> list:
    """A rankings document as the Race Center would publish it for a stage of true finish times ``finish``
    {bib: epoch s} started at ``start_s`` (the stand-in's, for a simulated stage): ``ite`` with the same-time
    rule (a gap under ``same_time_gap_s`` between consecutive wheels keeps the group's time) and the finish
    bonuses, ``itg`` (this stage alone, less the bonuses), ``ipg`` (``finish_points`` by place), ``ijg`` (the
    ``young`` bibs of the general), ``etg`` (each team's three best stage times; ``teams`` {bib: team})."""
    bind = rankings_bind(year, stage_number)
    bibs = np.array(sorted(finish, key=lambda b: (finish[b], b)), np.int64)
    t = np.array([finish[int(b)] for b in bibs], float)
    if not bibs.size:
        return []
    new_group = np.r_[True, np.diff(t) >= same_time_gap_s]
    head = np.maximum.accumulate(np.where(new_group, np.arange(t.size), 0))
    credited_ms = np.round((t[head] - start_s) * 1000).astype(np.int64)
    bonus_ms = np.zeros(t.size, np.int64)
    bonus_ms[:len(bonus_s)] = np.asarray(bonus_s, np.int64)[:t.size] * 1000

    def ranking(kind, keys, values, extra=None, key_name="bib"):
        order = sorted(range(len(keys)), key=lambda i: values[i])  # ties: in the order given (the crossings')
        lead = values[order[0]] if order else 0
        rows = []
        for place, i in enumerate(order, start=1):
            row = {"position": place, key_name: keys[i], "absolute": int(values[i]), "relative": int(values[i] - lead)}
            row.update((extra or {}).get(keys[i], {}))
            rows.append(row)
        return {"_bind": bind, "checkpoint": 0, "type": kind, "rankings": rows}

    keys = [int(b) for b in bibs]
    extra = {b: {"bonus": int(x), "penality": 0} for b, x in zip(keys, bonus_ms.tolist())}
    doc = [ranking("ite", keys, credited_ms.tolist(), extra)]
    general = (credited_ms - bonus_ms).tolist()
    doc.append(ranking("itg", keys, general, {b: {"bonus": int(x)} for b, x in zip(keys, bonus_ms.tolist())}))
    if finish_points:
        scored = sorted(((int(finish_points[i]), k) for i, k in enumerate(keys[:len(finish_points)])
                         if finish_points[i] > 0), key=lambda pk: (-pk[0], pk[1]))
        doc.append({"_bind": bind, "checkpoint": 0, "type": "ipg", "rankings": [
            {"position": place, "bib": k, "points": p, "absolute": p, "relative": scored[0][0] - p}
            for place, (p, k) in enumerate(scored, start=1)]})
    if young:
        idx = [i for i, k in enumerate(keys) if k in young]
        doc.append(ranking("ijg", [keys[i] for i in idx], [general[i] for i in idx]))
    if teams:
        by_team: dict = {}
        for k, c in zip(keys, credited_ms.tolist()):
            if teams.get(k):
                by_team.setdefault(teams[k], []).append(c)
        names = sorted(n for n, v in by_team.items() if len(v) >= 3)
        doc.append(ranking("etg", names, [int(sum(sorted(by_team[n])[:3])) for n in names], key_name="team"))
    return doc
