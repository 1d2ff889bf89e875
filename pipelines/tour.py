"""``peloton tour DIR --out OUT``: every stage recording of a folder replayed in date order, the classifications
chained from stage to stage.

The folder's convention, per recording ``STEM.json.gz`` (or ``STEM.json``; ``STEM`` is usually the date):

* ``STEM.course.geojson`` (or ``.gpx``): the course of a recording without one (a time trial);
* ``STEM.rankings.json``: the official standings *after* that stage (the Race Center's rankings document,
  ``/api/rankingTypeArrival-YEAR-STAGE``). Where it is, the next stage starts from it; else from this
  stage's own classifications (ranges kept where an order was undecided);
* ``STEM.truth.json(.gz)``: a simulated stage's truth (``peloton simulate --stages``), not read here.

Output: ``OUT/DATE/<table>/*.avro`` per stage, and ``OUT/DATE/standings_after.csv`` (the ``--standings-before``
CSV), which is what the next stage reads: ``peloton replay REC --standings-before OUT/PREV/standings_after.csv``
re-runs any stage alone.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass

__all__ = ["TourStage", "find_stages", "run_tour", "SIDECAR"]

#: Files beside a recording that are not recordings themselves.
SIDECAR = re.compile(r"\.(truth|rankings|course)\.[^/]*$")
RECORDING = re.compile(r"\.json(\.gz)?$")


class TourError(ValueError):
    """A folder that cannot be replayed as a tour: one line that says why."""


@dataclass
class TourStage:
    recording: str
    stage: object  # peloton.match.stage.Stage
    rankings: str | None  # the official standings after this stage, if beside it

    @property
    def stem(self) -> str:
        return RECORDING.sub("", self.recording)


def _sidecar(stem: str, *suffixes: str) -> str | None:
    return next((stem + s for s in suffixes if os.path.isfile(stem + s)), None)


def find_stages(folder: str) -> list[TourStage]:
    """The folder's stage recordings with their specs, in date order (then stage number); every recording is
    read and its course checked here, before minutes of replay."""
    from peloton.ingest.recording import RecordingError
    from peloton.match.stage import StageError, resolve_stage

    if not os.path.isdir(folder):
        raise TourError(f"{folder} is not a folder")
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                   if RECORDING.search(n) and not SIDECAR.search(n) and os.path.isfile(os.path.join(folder, n)))
    if not paths:
        raise TourError(f"{folder}: no stage recordings (*.json.gz, *.json) in it")
    stages = []
    for path in paths:
        stem = RECORDING.sub("", path)
        course = _sidecar(stem, ".course.geojson", ".course.json", ".course.gpx")
        try:
            stage = resolve_stage(path, course)
            stage.course()
        except StageError as exc:
            hint = (f": put its course beside it as {os.path.basename(stem)}.course.geojson (or .gpx)"
                    if "no course" in str(exc) else "")
            raise TourError(f"{path}: {str(exc).split('; pass --course')[0]}{hint}") from None
        except (RecordingError, ValueError) as exc:
            raise TourError(f"{path}: {' '.join(str(exc).split())}") from None
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", stage.date):
            raise TourError(f"{path}: no stage date (meta.date YYYY-MM-DD): the stages cannot be put in order")
        stages.append(TourStage(path, stage, _sidecar(stem, ".rankings.json")))
    stages.sort(key=lambda s: (s.stage.date, s.stage.number or 0))
    for a, b in zip(stages, stages[1:]):
        if a.stage.date == b.stage.date:
            raise TourError(f"{a.recording} and {b.recording} are both of {a.stage.date}")
    return stages


def standings_after(ts: TourStage, out_dir: str):
    """The standings after a stage: the official ones beside its recording, else its own classifications."""
    from peloton.ingest.recording import read_text
    from peloton.sim.evaluate import read_table
    from peloton.state.classifications import parse_standings, standings_from_rows

    stage = ts.stage
    if ts.rankings:
        return parse_standings(read_text(ts.rankings), ts.rankings, stage.start_list(), stage.year,
                               None if stage.number is None else stage.number + 1)
    rows = read_table(out_dir, "classifications")
    if not any(r["classification"] == "general" for r in rows):
        raise TourError(f"{ts.recording}: nobody finished in the replay: the standings after "
                        f"{stage.date} are not known, the tour stops here")
    return standings_from_rows(rows, os.path.join(out_dir, "classifications"))


def leader(out_dir: str, stage) -> str:
    """The yellow jersey after the stage, or the riders who may hold it."""
    from peloton.sim.evaluate import read_table

    names = {int(r["bib"]): str(r.get("name") or "").split(" ")[-1].upper() for r in stage.riders}
    first = [r["bib"] for r in read_table(out_dir, "classifications")
             if r["classification"] == "general" and r["place_min"] == 1]
    if len(first) == 1:
        return f"leader {first[0]} {names.get(first[0], '')}".rstrip()
    return f"leader undecided between {', '.join(str(b) for b in sorted(first)[:5])}" + (
        f" and {len(first) - 5} more" if len(first) > 5 else "")


def run_tour(folder: str, out: str, beam_args: list[str], race_params, causal: bool = False,
             say=print) -> list[str]:
    """Replay every stage of ``folder`` into ``out``, chaining the standings; returns the standings files."""
    from peloton.ingest.recording import read_text
    from peloton.state.classifications import parse_standings, standings_csv
    from pipelines.replay import run_replay

    stages = find_stages(folder)
    written, before = [], None
    for i, ts in enumerate(stages, start=1):
        started = time.perf_counter()
        out_dir = os.path.join(out, ts.stage.date)
        os.makedirs(out_dir, exist_ok=True)
        stage = ts.stage
        if before is not None:  # the file the stage before wrote, read as --standings-before reads it
            standings = parse_standings(read_text(before), before, None)
            standings = standings.only(stage.start_list()) if stage.start_list() else standings
            stage = dataclasses.replace(stage, standings_before=standings.to_dict())
        run_replay(stage, ts.recording, out_dir, beam_args, race_params, causal=causal)
        path = os.path.join(out_dir, "standings_after.csv")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(standings_csv(standings_after(ts, out_dir)))
        written.append(path)
        before = path
        say(f"stage {i}/{len(stages)} {stage.date} {stage.name or stage.stage_id}: replayed in "
            f"{time.perf_counter() - started:.0f} s, {leader(out_dir, stage)}"
            + (" (standings after: official, " + os.path.basename(ts.rankings) + ")" if ts.rankings else ""))
    return written
