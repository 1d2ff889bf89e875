"""The replay report opened as a person would: headless Chromium (Debian's, through its chromedriver).

Screenshots are kept as artefacts in ``$PELOTON_ARTIFACTS`` (default ``tests/artifacts``).
"""
import gzip
import json
from pathlib import Path

from pipelines.cli import main
from tests.conftest import STAGE16, STAGE16_COURSE, slice_recording, write_recording
from tests.pages import ARTIFACTS, dots as _dots, errors as _errors, move_slider as _move_slider

def _replay_and_report(tmp_path, name, recording_path, course=None) -> Path:
    out = tmp_path / name
    args = ["-q", "replay", str(recording_path), "--out", str(out)] + (["--course", str(course)] if course else [])
    assert main(args) == 0
    assert main(["-q", "report", str(out)]) == 0
    return out / "report.html"


def test_the_report_of_a_road_stage_shows_the_race_moving(tmp_path, stage4_recording, browser, capsys):
    path = write_recording(tmp_path / "stage4-slice.json.gz", slice_recording(stage4_recording, 600, 900))
    report = _replay_and_report(tmp_path, "road", path)
    html = report.read_text(encoding="utf-8")
    assert "<script src=" not in html and "https://" not in html.split("const DATA")[0]  # nothing fetched
    browser.get(report.as_uri())
    assert "Stage 4" in browser.title
    assert _errors(browser) == []
    _move_slider(browser, 0.1)
    early = _dots(browser)
    _move_slider(browser, 0.9)
    late = _dots(browser)
    assert len(early) > 100 and len(late) > 100
    moved = [b for b in set(early) & set(late) if early[b] != late[b]]
    assert len(moved) > 100  # the riders rode on
    clock = browser.find_element("id", "clock").text
    assert clock.endswith("UTC") and clock != "--:--:--"
    groups = browser.find_elements("css selector", "#groups-table tr")
    assert len(groups) > 2  # a header and the groups at that moment
    teams = {r["team"] for r in json.loads((report.parent / "stage.json").read_text())["riders"] if r["team"]}
    table = browser.find_element("id", "groups-table").text
    assert any(f"({team})" in table for team in teams)  # riders by name and team
    assert browser.find_elements("css selector", "#gaps polyline")  # the gap chart
    assert browser.find_elements("css selector", "#eta polyline")  # the predicted finish
    assert "Col de Bedos" in browser.find_element("id", "climbs-table").text
    assert _errors(browser) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "report-road-stage.png"))


def test_the_report_of_a_time_trial_shows_virtual_standings(tmp_path, browser):
    with gzip.open(STAGE16, "rt", encoding="utf-8") as fh:
        recording = json.load(fh)
    path = write_recording(tmp_path / "stage16-slice.json.gz", slice_recording(recording, 900, 1300))
    report = _replay_and_report(tmp_path, "itt", path, STAGE16_COURSE)
    browser.get(report.as_uri())
    assert _errors(browser) == []
    _move_slider(browser, 1.0)
    assert browser.find_element("id", "table-title").text == "Virtual standings (time trial)"
    rows = browser.find_elements("css selector", "#groups-table tr")
    assert len(rows) > 5
    assert "no groups" in browser.find_element("id", "gaps").text
    assert len(_dots(browser)) > 5
    assert _errors(browser) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "report-time-trial.png"))
