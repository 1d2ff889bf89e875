"""The official result: the organiser's rankings document -> official results and classifications rows, and the
gate's verdict on a bad one (malformed, another stage, riders not on the start list)."""
import gzip
import json
import time
from pathlib import Path

import pytest

from peloton.ingest.gate import Gate
from peloton.ingest.official import (OFFICIAL, RankingsError, compact_rankings, official_rows, rankings_bind,
                              rankings_from_finish, read_rankings)
from peloton.ingest.reasons import Reason
from peloton.output.table import Columns

def simulated_stage(tmp_path, start_s=1_783_504_800.0):
    """A 6 km road stage of 24 riders (three teams, some young), started at ``start_s``, as stage 5 of 2026:
    (recording path, recording, truth), the truth beside the recording (the stand-in builds its result from it)."""
    from peloton.sim.simulate import SimParams, make_roster, recording_document, simulate_race, truth_document, truth_path
    from tests.helpers import line_course

    course = line_course([[0, 0], [6000, 0]], finish_km=6.0)
    roster = make_roster(24, 3, 2026)
    race = simulate_race(course, SimParams(riders=24, seed=3, breakaway_size=2, stops=0, wind_kph=0.0,
                                           late_tracker_share=0.0, start_epoch=start_s), roster=roster)
    from peloton.ingest.racecenter import race_date

    date = race_date(start_s)  # the day in Paris (the bridge's rule), whatever the season and the hour
    doc = recording_document(race, "Stage 5 - Simville", date=date, stage_info={"stage": 5, "type": "PLN"},
                             roster=roster)
    path = tmp_path / "stage5.json.gz"
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    truth = truth_document(race)
    Path(truth_path(str(path))).write_bytes(gzip.compress(json.dumps(truth).encode()))
    return path, doc, truth


BIND = "rankingTypeArrival-2026-4"
START_LIST = [1, 2, 3, 4, 5, 11, 12]
DOC = [
    {"_bind": BIND, "checkpoint": 0, "type": "ite", "rankings": [
        {"position": 1, "bib": 11, "absolute": 15_000_000, "relative": 0, "bonus": 10_000, "penality": 0,
         "$rider": "allCompetitors-2026:abc"},
        {"position": 2, "bib": 1, "absolute": 15_000_000, "relative": 0, "bonus": 6_000},
        {"position": 3, "bib": 2, "absolute": 15_157_000, "relative": 157_000, "bonus": 0, "penality": 20_000}]},
    {"_bind": BIND, "type": "itg", "rankings": [
        {"position": 1, "bib": 1, "absolute": 40_000_000, "relative": 0},
        {"position": 2, "bib": 11, "absolute": 40_012_000, "relative": 12_000},
        {"position": 3, "bib": 2, "absolute": 40_300_000, "relative": 300_000}]},
    {"_bind": BIND, "type": "ipg", "rankings": [{"position": 1, "bib": 2, "points": 70, "absolute": 70},
                                                 {"position": 2, "bib": 11, "points": 50, "absolute": 50}]},
    {"_bind": BIND, "type": "ijg", "rankings": [{"position": 1, "bib": 11, "absolute": 40_012_000}]},
    {"_bind": BIND, "type": "etg", "rankings": [{"position": 1, "team": "TEAM A", "absolute": 120_000_000}]},
    {"_bind": BIND, "type": "ipe", "rankings": [{"position": 1, "bib": 11, "points": 20}]},
    {"_bind": BIND, "checkpoint": 3, "type": "icg", "rankings": [{"position": 1, "bib": 3}]},  # intermediate: skipped
]


def _read(doc=DOC, **kw):
    return read_rankings(json.dumps(doc), "rk.json", "2026-07-07", 2026, 4, kw.pop("start_list", START_LIST), **kw)


def test_the_rankings_document_becomes_official_results_and_classifications():
    out = official_rows(_read(), 1_783_000_000_000, {11: "TEAM A", 1: "TEAM B"})
    res = {r["bib"]: r for r in out["results"]}
    assert [r["bib"] for r in out["results"]] == [11, 1, 2]
    assert all(r["source"] == OFFICIAL and r["order_decided"] and r["position"] == r["place_min"] == r["place_max"]
               and r["status"] == "finished" and r["credited_time_decided"] for r in out["results"])
    assert res[1]["credited_time_behind_s"] == 0 and res[1]["same_time_group"] == 1 and res[1]["position"] == 2
    assert res[2]["credited_time_behind_s"] == 157 and res[2]["same_time_group"] == 3 and res[2]["elapsed_s"] == 15157
    assert "bonus 10 s" in res[11]["detail"] and "penalty 20 s" in res[2]["detail"]
    by = {(r["classification"], r["bib"] or r["team"]): r for r in out["classifications"]}
    assert {c for c, _ in by} == {"general", "points", "young", "teams"}
    assert by[("general", 11)]["value"] == 40012 and by[("general", 11)]["gap_to_leader"] == 12
    assert by[("general", 11)]["team"] == "TEAM A" and by[("general", 2)]["team"] is None
    assert by[("points", 11)]["value"] == 50 and by[("points", 11)]["gap_to_leader"] == 20
    assert by[("teams", "TEAM A")]["bib"] is None and by[("teams", "TEAM A")]["value"] == 120000
    assert all(r["decided"] and r["source"] == OFFICIAL for r in out["classifications"])
    # the rows fit their tables' schemas
    assert len(Columns.from_rows("results", out["results"])) == 3
    assert len(Columns.from_rows("classifications", out["classifications"])) == len(out["classifications"])


def test_the_same_document_has_the_same_digest_and_compacts_to_what_is_read():
    a, b = _read(), _read()
    assert a.digest == b.digest and a == b
    small = compact_rankings(DOC)
    assert [blk["type"] for blk in small] == ["ite", "itg", "ipg", "ijg", "etg", "ipe"]
    assert "$rider" not in json.dumps(small)
    assert official_rows(read_rankings(json.dumps(small), "x", "2026-07-07", 2026, 4, START_LIST), 0) == official_rows(a, 0)


@pytest.mark.parametrize("text, reason, message", [
    ("{not json", Reason.MALFORMED_JSON, "not JSON"),
    (json.dumps({"rankings": []}), Reason.BAD_SHAPE, "not a Race Center rankings document"),
    (json.dumps([{"type": "itg", "rankings": []}]), Reason.BAD_SHAPE, "no stage ranking (ite)"),
    (json.dumps([{"type": "ite", "rankings": [{"bib": 1, "position": 1, "absolute": "x"}]}]), Reason.BAD_VALUE,
     "not a number"),
    (json.dumps([{"type": "ite", "rankings": [{"bib": 1, "position": 1, "absolute": 1}] * 2}]), Reason.BAD_SHAPE,
     "twice"),
    (json.dumps(DOC).replace("2026-4", "2026-5"), Reason.WRONG_STAGE, "rankings of stage 5 of 2026; this is stage 4"),
    (json.dumps(DOC).replace("2026-4", "2025-4"), Reason.WRONG_STAGE, "of 2025"),
    (json.dumps(DOC).replace('"bib": 2,', '"bib": 99,').replace('"bib": 1,', '"bib": 98,'), Reason.UNKNOWN_RIDER,
     "bib 98 is not on the start list (2 such bibs)"),
])
def test_a_bad_rankings_document_is_refused_with_its_reason_in_one_line(text, reason, message):
    with pytest.raises(RankingsError) as err:
        read_rankings(text, "rk.json", "2026-07-07", 2026, 4, START_LIST)
    assert err.value.reason == reason and message in str(err.value) and "\n" not in str(err.value)


def test_the_gate_routes_a_rankings_message_and_dead_letters_a_bad_one():
    gate = Gate.of("2026-07-07", START_LIST, year=2026, stage_number=4)
    attrs = {"kind": "rankings", "event_time": "1783000000000", "bind": BIND}
    assert Gate.is_rankings(attrs) and not Gate.is_rankings({"kind": "tick"})
    (doc, t), dead = gate.rankings(json.dumps(DOC).encode(), attrs)
    assert dead == [] and t == 1783000000 and len(doc.of("ite")) == 3
    # fetched under another stage's bind: refused even though the document says nothing of its stage
    bare = json.dumps([{k: v for k, v in blk.items() if k != "_bind"} for blk in DOC]).encode()
    none, dead = gate.rankings(bare, {**attrs, "bind": rankings_bind(2026, 5)})
    assert none is None and [d["reason"] for d in dead] == [Reason.WRONG_STAGE]
    assert dead[0]["event_time"] == 1783000000000 and dead[0]["raw"].startswith("[")
    none, dead = gate.rankings(b"[1, 2", attrs)
    assert none is None and dead[0]["reason"] == Reason.MALFORMED_JSON
    none, dead = gate.rankings(json.dumps(DOC).encode(), {"kind": "rankings", "bind": BIND})
    assert none is None and dead[0]["reason"] == Reason.BAD_ATTRIBUTE


def test_a_document_built_from_true_finishes_reads_back_as_the_same_result():
    start = 1_783_400_000.0
    finish = {11: start + 3600.0, 1: start + 3600.4, 2: start + 3700.0, 3: start + 3700.9, 4: start + 3702.5}
    doc = rankings_from_finish(2026, 4, finish, start, 1.0, finish_points=(50, 30, 20),
                               teams={11: "A", 1: "A", 2: "A", 3: "B"}, young={2, 4})
    out = official_rows(read_rankings(json.dumps(doc), "truth", "s", 2026, 4, START_LIST), 0)
    res = {r["bib"]: r for r in out["results"]}
    assert [r["bib"] for r in out["results"]] == [11, 1, 2, 3, 4]
    assert res[1]["credited_time_behind_s"] == 0 and res[3]["credited_time_behind_s"] == 100  # same-time groups
    assert res[4]["credited_time_behind_s"] == 102.5 and res[4]["same_time_group"] == 5
    gc = {r["bib"]: r for r in out["classifications"] if r["classification"] == "general"}
    assert gc[11]["value"] == 3590 and gc[1]["value"] == 3594 and gc[2]["value"] == 3696  # less the bonuses
    pts = {r["bib"]: r["value"] for r in out["classifications"] if r["classification"] == "points"}
    assert pts == {11: 50, 1: 30, 2: 20}
    assert [r["bib"] for r in out["classifications"] if r["classification"] == "young"] == [2, 4]
    assert [r["team"] for r in out["classifications"] if r["classification"] == "teams"] == ["A"]


def test_the_live_ingest_turns_a_rankings_message_into_official_rows_once_and_a_bad_one_into_a_dead_letter():
    import apache_beam as beam
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.testing.util import assert_that, equal_to
    from apache_beam.transforms.window import TimestampedValue

    from peloton.match.stage import Stage
    from transforms.live import DEAD_LETTER, RANKINGS, IngestLive, LiveParams
    from transforms.official import OfficialRows

    stage = Stage(stage_id="2026-07-07", name="Stage 4 - Foix", date="2026-07-07",
                  riders=[{"bib": b, "team": "TEAM A" if b == 11 else ""} for b in START_LIST])
    attrs = {"kind": "rankings", "event_time": "1783000000000", "bind": BIND}
    good = PubsubMessage(json.dumps(DOC).encode(), attrs)
    other = PubsubMessage(json.dumps(DOC).replace("2026-4", "2026-3").encode(), attrs)
    stream = TestStream()
    for m in (good, other, good):  # the good one twice: Pub/Sub delivers at least once
        stream = stream.add_elements([TimestampedValue(m, 1783000000)])
    stream = stream.advance_watermark_to_infinity()
    p = TestPipeline(options=StandardOptions(streaming=True))
    ingest = p | stream | IngestLive(stage.stage_id, LiveParams(), start_list=stage.start_list(), year=2026,
                                     stage_number=4)
    official = ingest[RANKINGS] | OfficialRows(stage)
    rows = {t: official[t] | f"Rows_{t}" >> beam.FlatMap(lambda c: [(r["source"], r["bib"], r.get("team"))
                                                                     for r in c.to_rows()])
            for t in ("results", "classifications")}
    assert_that(rows["results"], equal_to([("official", 11, None), ("official", 1, None), ("official", 2, None)]),
                label="OneOfficialResult")
    assert_that(rows["classifications"], equal_to([("official", b, t) for b, t in (
        (1, None), (11, "TEAM A"), (2, None), (2, None), (11, "TEAM A"), (11, "TEAM A"), (None, "TEAM A"))]),
        label="Classified")
    dead = ingest[DEAD_LETTER] | beam.FlatMap(lambda c: [r["reason"] for r in c.to_rows()])
    assert_that(dead, equal_to([Reason.WRONG_STAGE]), label="OneDeadLetter")
    p.run().wait_until_finish()


def test_a_reader_takes_the_official_row_over_the_provisional_one():
    from peloton.report.page import official_first

    prov = [{"bib": 1, "status": "finished", "source": "provisional"}, {"bib": 2, "status": "finished",
             "source": "provisional"}, {"bib": 3, "status": "DNF", "source": "provisional"}]
    assert official_first("results", prov) == prov
    off = [{"bib": 2, "status": "finished", "source": "official"}]
    assert official_first("results", prov + off) == off + [prov[2]]  # bib 1: not in the official result
    rows = [{"classification": "general", "bib": 1, "source": "provisional"},
            {"classification": "points", "bib": 1, "source": "provisional"},
            {"classification": "general", "bib": 1, "source": "official"}]
    assert official_first("classifications", rows) == [rows[2], rows[1]]


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_shows_the_official_result_once_it_is_in(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from pipelines.bridge import rankings_from_truth
    from pipelines.cli import main
    from tests.pages import DESK, PHONE, errors, open_browser, screenshot, sideways_overflow, to_the_end

    path, doc, truth = simulated_stage(tmp_path)
    (tmp_path / "rk.json").write_text(json.dumps(rankings_from_truth(truth, doc)))
    pages = {}
    for name, extra in (("provisional", []), ("official", ["--rankings", str(tmp_path / "rk.json")])):
        out = tmp_path / name
        assert main(["-q", "replay", str(path), "--out", str(out), *extra]) == 0
        assert main(["-q", "report", str(out)]) == 0
        pages[name] = out / "report.html"
    winner = min(truth["finish"], key=lambda b: truth["finish"][b])
    from peloton.match.stage import Stage
    from peloton.report.page import read_tables, report_data
    flags = {n: report_data(Stage.from_json((p.parent / "stage.json").read_text()), read_tables(str(p.parent)))["result"]
             for n, p in pages.items()}
    assert flags["provisional"]["provisional"] and not flags["provisional"]["official"]
    assert flags["official"]["official"] and flags["official"]["winner"] == int(winner)
    for name, page in pages.items():
        for size in (DESK, PHONE):
            driver = open_browser(size)
            try:
                driver.get(page.as_uri())
                to_the_end(driver)
                result = driver.find_element("id", "result").text
                standings = driver.find_element("id", "standings-title").text
                assert driver.find_element("id", "standings-source").text == name, standings
                if name == "official":  # (the simulated winner's crossing is extrapolated past the last tick: the
                    # provisional result waits for a time the page never reaches; its flag is checked below)
                    assert driver.find_element("id", "result-source").text == name, result  # the organiser names the winner the trackers could not
                    assert "Winner: " in result and f"R{winner}" in result and "official: the organiser" in result
                assert errors(driver) == [] and sideways_overflow(driver) <= 0
                driver.find_element("tag name", "h1").click()
                ActionChains(driver).send_keys(Keys.HOME).perform()  # mid-race: the official result not given away
                assert "press End to see the result" in driver.find_element("id", "result").text
                ActionChains(driver).send_keys(Keys.END).perform()
                driver.execute_script("document.getElementById('result').scrollIntoView()")
                screenshot(driver, f"report-result-{name}-{'desk' if size == DESK else 'phone'}")
            finally:
                driver.quit()


def test_the_stand_in_serves_the_result_after_the_finish_and_stage_fetch_saves_it(tmp_path, capsys):
    import urllib.request

    from peloton.sim.racecenter import RaceCenterServer
    from pipelines.bridge import rankings_from_truth
    from pipelines.cli import main

    path, doc, truth = simulated_stage(tmp_path)
    rankings = rankings_from_truth(truth, doc)
    server = RaceCenterServer(doc, speed=0, rankings=rankings, rankings_delay_s=0.5).start()
    url = f"{server.url}/api/rankingTypeArrival-2026-5"
    try:
        assert server.rest_document("/api/rankingTypeArrival-2026-5") is None  # the race has not run yet
        out = tmp_path / "rk.json"
        assert main(["-q", "stage", "fetch", "--source", server.url, "--date", doc["meta"]["date"],
                     "--rankings", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "the official result is not out yet" in err, err
        with urllib.request.urlopen(f"{server.url}/live-stream", timeout=5) as stream:
            stream.read(100)  # the clock starts with the first client; at speed 0 the stage is over at once
        deadline = time.time() + 10
        while server.rest_document("/api/rankingTypeArrival-2026-5") is None and time.time() < deadline:
            time.sleep(0.1)
        assert json.loads(urllib.request.urlopen(url, timeout=5).read()) == rankings
        assert main(["-q", "stage", "fetch", "--source", server.url, "--date", doc["meta"]["date"],
                     "--rankings", str(out)]) == 0
        capsys.readouterr()
    finally:
        server.stop()
    saved = read_rankings(out.read_text(), "rk.json", "x", 2026, 5, [int(b) for b in truth["finish"]])
    assert len(saved.of("ite")) == len(truth["finish"])


@pytest.mark.parametrize("doc, message", [
    ([{"_bind": "rankingTypeArrival-2026-6", "type": "ite", "rankings": [{"bib": 1, "position": 1, "absolute": 5}]}],
     "rankings of stage 6 of 2026; this is stage 5 of 2026"),
    ([{"type": "ite", "rankings": [{"bib": 999, "position": 1, "absolute": 5}]}], "bib 999 is not on the start list"),
    ("{oops", "not JSON"),
])
def test_replay_refuses_a_bad_rankings_file_in_one_line(tmp_path, capsys, doc, message):
    from pipelines.cli import main

    path, _doc, _truth = simulated_stage(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    assert main(["-q", "replay", str(path), "--out", str(tmp_path / "out"), "--rankings", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("peloton: error: ") and err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "out" / "results").exists()  # refused at launch: nothing run, nothing written
