"""The command line as an operator uses it: clear errors, a summary, real files."""
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.conftest import STAGE4, STAGE16, slice_recording, write_recording


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("peloton: error:"), err
    return err[0]


def test_missing_recording(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.json.gz"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in _error_line(capsys)


def test_unreadable_json(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"meta": {"date": "2026-07-07"}, "events": [')
    assert main(["replay", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unreadable JSON" in _error_line(capsys)


def test_unknown_format(tmp_path, capsys):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a feed")
    assert main(["replay", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "error" in _error_line(capsys)


def test_course_file_without_a_line(tmp_path, capsys):
    course = tmp_path / "course.geojson"
    course.write_text(json.dumps({"type": "Point", "coordinates": [6.6, 46.4]}))
    assert main(["replay", str(STAGE16), "--course", str(course), "--out", str(tmp_path / "o")]) == 2
    assert "LineString" in _error_line(capsys)


def test_time_trial_without_course_says_what_to_pass(tmp_path, capsys):
    assert main(["replay", str(STAGE16), "--out", str(tmp_path / "o")]) == 2
    assert "--course" in _error_line(capsys)


def test_stage_export_round_trips(tmp_path, capsys):
    assert main(["stage", "export", str(STAGE4)]) == 0
    stage = json.loads(capsys.readouterr().out)
    assert stage["stage_id"] == "2026-07-07" and len(stage["route"]) > 1000 and stage["length_km"] == 181.87
    assert not any("kmToFinish" in json.dumps(a) for a in stage["anchors"])


def test_console_script_replays_a_slice_and_prints_a_summary(tmp_path, stage4_recording):
    rec = write_recording(tmp_path / "slice.json.gz", slice_recording(stage4_recording, 700, 730))
    out = tmp_path / "out"
    bindir = Path(sys.executable).parent
    proc = subprocess.run([str(bindir / "peloton"), "replay", str(rec), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "matched fixes" in proc.stdout and "rows read" in proc.stdout
    assert "reading" in proc.stderr  # progress lines
    assert list((out / "rider_state").glob("*.avro")) and list((out / "dead_letter").glob("*.avro"))
    ev = subprocess.run([str(bindir / "peloton"), "evaluate", str(rec), str(out), "--json"],
                        capture_output=True, text=True, timeout=300)
    report = json.loads(ev.stdout)
    assert report["km_to_finish_error_m"]["on_course"]["median"] < 10
