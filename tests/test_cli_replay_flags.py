"""Every documented ``peloton replay`` flag combination runs through the CLI on a short slice.

A graph that cannot be built (a type check a new Beam release tightens, a table the registry forgets) fails
here, not in a user's hands: Beam 2.78 refused ``--causal --write-fixes`` and nothing caught it.
``--bigquery-dataset`` needs a Google Cloud project to run: its graphs are built in ``test_dataflow_graph.py``.
"""
import collections
import itertools
import re

import pytest

from peloton.output.tables import CAUSAL, REPLAY, written_by
from peloton.sim.evaluate import read_table
from pipelines.cli import main
from tests.conftest import STAGE16_COURSE, slice_recording, write_recording

pytestmark = [pytest.mark.slow]

ROAD = list(itertools.product((False, True), (False, True), ("recording", "stage_file")))
TT = list(itertools.product((False, True), (False, True)))


@pytest.fixture(scope="module")
def road_slice(tmp_path_factory, stage4_recording):
    folder = tmp_path_factory.mktemp("road")
    return write_recording(folder / "slice.json.gz", slice_recording(stage4_recording, 700, 720))


@pytest.fixture(scope="module")
def stage_file(tmp_path_factory, stage4):
    path = tmp_path_factory.mktemp("stage") / "stage.json"
    path.write_text(stage4.to_json())
    return path


@pytest.fixture(scope="module")
def tt_slice(tmp_path_factory, stage16_recording):
    folder = tmp_path_factory.mktemp("tt")
    return write_recording(folder / "slice.json.gz", slice_recording(stage16_recording, 300, 320))


def _keys(rows):
    return collections.Counter((r["bib"], r["event_time"]) for r in rows)


def _check_tables(out, causal: bool, write_fixes: bool, recording, summary: str) -> None:
    tables = written_by(CAUSAL if causal else REPLAY, on_request=write_fixes)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(tables)
    state = read_table(str(out), "rider_state")
    assert state, "no rider_state rows from a slice with riders on the road"
    if write_fixes:
        # the fixes written are the fixes the other tables were built from: each one is a rider_state row, was
        # rejected after parsing (by the matcher or the engine) with its reason, or repeats one of those
        fixes = read_table(str(out), "tracker_fix")
        after_parse = [r for r in read_table(str(out), "dead_letter") if r["source"] != str(recording)]
        assert set(_keys(fixes)) == set(_keys(state) + _keys(after_parse))
        duplicates = int(re.search(r"duplicates removed:\s+([\d,]+)", summary).group(1).replace(",", ""))
        assert len(fixes) == len(state) + len(after_parse) + duplicates


@pytest.mark.parametrize("causal,write_fixes,stage", ROAD, ids=[
    f"{'causal' if c else 'hindsight'}-{'fixes' if w else 'nofixes'}-{s}" for c, w, s in ROAD])
def test_road_stage_flags(tmp_path, road_slice, stage_file, causal, write_fixes, stage, capsys):
    out = tmp_path / "out"
    argv = ["replay", str(road_slice), "--out", str(out)]
    argv += ["--causal"] if causal else []
    argv += ["--write-fixes"] if write_fixes else []
    argv += ["--stage", str(stage_file)] if stage == "stage_file" else []
    # the group options and -q, each on in half of the runs
    argv += ["--group-gap-s", "1.5", "--group-hysteresis-s", "0.5"] if causal != write_fixes else []
    argv = (["-q"] if write_fixes else []) + argv
    assert main(argv) == 0, capsys.readouterr().err
    summary = capsys.readouterr().out
    assert "matched fixes" in summary
    _check_tables(out, causal, write_fixes, road_slice, summary)


@pytest.mark.parametrize("causal,write_fixes", TT, ids=[
    f"{'causal' if c else 'hindsight'}-{'fixes' if w else 'nofixes'}" for c, w in TT])
def test_time_trial_flags_with_a_course_file(tmp_path, tt_slice, causal, write_fixes, capsys):
    out = tmp_path / "out"
    argv = ["-q", "replay", str(tt_slice), "--course", str(STAGE16_COURSE), "--out", str(out)]
    argv += ["--causal"] if causal else []
    argv += ["--write-fixes"] if write_fixes else []
    assert main(argv) == 0, capsys.readouterr().err
    _check_tables(out, causal, write_fixes, tt_slice, capsys.readouterr().out)
