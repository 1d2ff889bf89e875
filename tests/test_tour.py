"""``peloton tour``: a simulated two-stage tour (the Galibier twice, 12 riders) replayed stage after stage, the
standings chained through the files, scored against the simulator's exact truth; bad folders in one line."""
import gzip
import json
import os

import numpy as np
import pytest

from peloton.sim.evaluate import read_table
from peloton.sim.simulate import _course_meta, simulate_tour
from peloton.state.classifications import Standings, parse_standings
from pipelines.cli import main
from tests.conftest import DATA

COURSES, CLIMBS = str(DATA / "courses-tdf-2022-2024"), str(DATA / "climbs")
#: Two short slices over the Galibier's summit (2022 stage 11 from Valloire, stage 12 from Briançon).
SLICES = {"2022-11": (92.0, 112.0), "2022-12": (14.0, 38.0)}


def _slice(route, km_from, km_to):
    """The route between two distances from its start (metres along it, haversine)."""
    lat, lon = np.radians([p[0] for p in route]), np.radians([p[1] for p in route])
    step = 2 * 6371e3 * np.arcsin(np.sqrt(np.sin(np.diff(lat) / 2) ** 2
                                          + np.cos(lat[1:]) * np.cos(lat[:-1]) * np.sin(np.diff(lon) / 2) ** 2))
    d = np.r_[0.0, np.cumsum(step)]
    return [p for p, x in zip(route, d) if km_from * 1000 <= x <= km_to * 1000]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    sim, out = tmp_path_factory.mktemp("sim"), tmp_path_factory.mktemp("out")
    routes = {sid: _slice(_course_meta(COURSES, sid)["route"], *km) for sid, km in SLICES.items()}
    simulate_tour(list(SLICES), str(sim), COURSES, CLIMBS, riders=12, seed=3, routes=routes)
    assert main(["-q", "tour", str(sim), "--out", str(out)]) == 0
    return sim, out


def _truth(sim, date):
    with gzip.open(os.path.join(sim, f"{date}.truth.json.gz")) as fh:
        return json.load(fh)


@pytest.mark.slow
def test_the_standings_after_stage_1_are_the_standings_before_stage_2(tour):
    sim, out = tour
    assert sorted(os.listdir(out)) == ["2022-07-13", "2022-07-14"]
    after = os.path.join(out, "2022-07-13", "standings_after.csv")
    first = parse_standings(open(after).read(), after, None)
    stage2 = json.load(open(os.path.join(out, "2022-07-14", "stage.json")))
    assert Standings.from_dict(stage2["standings_before"]) == first  # the file, as the next stage read it
    rows = [r for r in read_table(os.path.join(out, "2022-07-13"), "classifications")
            if r["classification"] == "general"]
    assert {r["bib"]: (r["value_min"], r["value_max"]) for r in rows} == \
        {b: (v, first.upper("gc_s")[b]) for b, v in first.gc_s.items()}  # the rows of stage 1, ranges kept
    truth = {r["bib"] for r in _truth(sim, "2022-07-13")["classifications"] if r["classification"] == "general"}
    assert {r["bib"] for r in rows} <= truth and len(rows) >= 10  # a rider whose tracker died is unclassified
    assert os.path.exists(os.path.join(out, "2022-07-14", "standings_after.csv"))
    # both stages pass the Galibier: the simulated checkpoints put a summit (hors catégorie) and a sprint
    assert [c["checkpointSummits"][0]["code"] for c in _truth(sim, "2022-07-14")["checkpoints"]
            if c["checkpointSummits"]] == ["H"]


@pytest.mark.slow
def test_the_chained_general_classification_is_the_truth_where_decided(tour):
    """Every rider's chained general time range holds the truth (in the pipeline's frame: seconds after each
    stage's first crossing as measured), and a decided one is within a second of it."""
    from benchmarks.tour import frame_offset_s

    sim, out = tour
    frame, checked = 0.0, 0
    for date in ("2022-07-13", "2022-07-14"):
        doc = _truth(sim, date)
        frame += frame_offset_s(read_table(os.path.join(out, date), "results"), doc)
        truth = {r["bib"]: r for r in doc["classifications"] if r["classification"] == "general"}
        for r in read_table(os.path.join(out, date), "classifications"):
            if r["classification"] == "general" and r["bib"] in truth:
                t = truth[r["bib"]]["value"] + frame
                assert r["value_min"] - 1e-3 <= t <= r["value_max"] + 1e-3, (date, r["bib"], r["value_min"], t)
                assert not r["decided"] or abs(r["value"] - t) <= 1.0
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("files, says", [
    ({}, "no stage recordings"),
    ({"2026-07-07.json.gz": b"\x1f\x8bnot gzip"}, "2026-07-07.json.gz: corrupt gzip"),
    ({"2026-07-07.json": b'{"meta": {"date": "2026-07-07"}, "rest": {}, "events": []}'},
     "2026-07-07.json: the recording has no course (rest.trace): put its course beside it as "
     "2026-07-07.course.geojson"),
    ({"a.json": b'{"meta": {"date": "2026-07-07"}, "rest": {"trace": {"routePoints": [{"lat": 45, "lon": 6}, '
                b'{"lat": 45.1, "lon": 6}]}}, "events": []}', "b.json": b'{"meta": {"date": "2026-07-07"}, '
     b'"rest": {"trace": {"routePoints": [{"lat": 45, "lon": 6}, {"lat": 45.1, "lon": 6}]}}, "events": []}'},
     "are both of 2026-07-07"),
])
def test_bad_folders_are_one_error_line(tmp_path, capsys, files, says):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "x.truth.json").write_text("{}")  # a sidecar is never taken for a recording
    assert main(["tour", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("peloton: error: ") and says in err and err.count("\n") == 1, err


def test_a_missing_folder_and_a_time_trial_in_a_simulated_tour_are_one_error_line(tmp_path, capsys):
    assert main(["tour", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["simulate", "--stages", "2022-01", "--out", str(tmp_path / "sim")]) == 2
    assert "2022-01 is a time trial" in capsys.readouterr().err
