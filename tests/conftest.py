"""Shared fixtures: the reference data lives beside the project, in ../shared/data."""
from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PELOTON_DATA", ROOT.parent / "shared" / "data"))
STAGE4 = DATA / "racecenter-2026" / "2026-07-07.json.gz"
STAGE16 = DATA / "racecenter-2026" / "2026-07-21.json.gz"
STAGE16_COURSE = DATA / "racecenter-2026" / "derived" / "2026-07-21_stage16_ITT_course_from_rider17_DERIVED.geojson"
COURSES = DATA / "courses-tdf-2022-2024"


#: The wall-clock tests that run longest, by module and name: the seconds each took in CI (2026-12-07); the others
#: take a few seconds.
LONG_REALTIME = {
    "test_hostile_emulator.py::test_attacks_through_the_emulator_lose_double_and_corrupt_nothing": 275,
    "test_racecenter_emulator.py::test_the_race_center_stream_bridged_through_the_emulator_gives_the_causal_"
    "replay_rows": 221,
    "test_live_operator.py::test_killed_restarted_and_stopped_live_pipeline_archives_exactly_the_causal_replay": 214,
    "test_live_emulator.py::test_a_stage_published_through_the_emulator_gives_the_causal_replay_rows": 157,
    "test_flink_live.py::test_operator_afternoon_on_flink_equals_the_causal_replay": 190,
    "test_official_emulator.py::test_the_official_result_arrives_after_the_finish_and_supersedes_the_provisional_"
    "rows": 97,
    "test_cli_errors.py::test_every_subcommand_refuses_bad_input_in_one_line": 84,
    # not long, but not among the shortest either: never the one queued behind a long one
    "test_serve.py::test_the_live_page_follows_the_feed_and_says_when_it_stalls": 33,
    "test_publish.py::test_shift_to_now_at_10x_into_the_emulator_is_never_in_the_future": 17}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """The markers a test's fixtures imply: the fast suite deselects them without each test saying so."""
    for item in items:
        if "pubsub_emulator" in item.fixturenames:
            item.add_marker(pytest.mark.emulator)
        if "browser" in item.fixturenames:
            item.add_marker(pytest.mark.browser)


def pytest_configure(config):
    config.pluginmanager.register(_RealtimeOrder(), "peloton-realtime-order")


class _RealtimeOrder:
    @pytest.hookimpl(trylast=True)  # after -m has deselected
    def pytest_collection_modifyitems(self, config, items):
        """A run of only wall-clock tests over xdist workers: the longest apart (:func:`_longest_apart`)."""
        workers = getattr(config, "workerinput", {}).get("workercount")
        if workers and items and all(item.get_closest_marker("realtime") for item in items):
            items[:] = _longest_apart(items, int(workers))


def _longest_apart(items: list, workers: int) -> list:
    """xdist hands each worker two tests to start with (the 2k-th and the next) and then one whenever it has one
    left: the minute-long tests go first, one to a worker, each followed by the shortest test, so that no two of
    them queue behind each other (they did: 275 s + 214 s on one worker, a 472 s phase)."""
    def seconds(item):
        return LONG_REALTIME.get(f"{Path(str(item.fspath)).name}::{item.originalname}", 0)

    longest = sorted(items, key=seconds, reverse=True)
    heads = [item for item in longest[:workers] if seconds(item) >= 60]
    rest = [item for item in longest if item not in heads]
    order = []
    for head in heads:
        order += [head, rest.pop()] if rest else [head]
    return order + rest


def pytest_sessionstart(session):
    if not STAGE4.exists():
        raise pytest.UsageError(f"reference data not found at {DATA} (set PELOTON_DATA)")


@pytest.fixture(scope="session")
def stage4_recording() -> dict:
    with gzip.open(STAGE4, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def stage4(stage4_recording):
    from peloton.match.stage import stage_from_recording

    return stage_from_recording(stage4_recording)


@pytest.fixture(scope="session")
def stage4_course(stage4):
    return stage4.course()


@pytest.fixture(scope="session")
def stage16_recording() -> dict:
    with gzip.open(STAGE16, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def stage16(stage16_recording):
    from peloton.match.stage import parse_course_text, stage_from_recording

    return stage_from_recording(stage16_recording, parse_course_text(STAGE16_COURSE.read_text(), str(STAGE16_COURSE)))


@pytest.fixture(scope="session")
def stage16_course(stage16):
    return stage16.course()


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder built by ``build(folder)`` once for the whole run, whichever pytest-xdist worker asks first.

    The others wait for it and share it (read only): a module-scoped replay of a whole stage is otherwise made
    again by every worker that runs one of the module's tests.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def slice_recording(recording: dict, start: int, stop: int) -> dict:
    """A smaller recording: the same rest (course, riders), ticks start..stop."""
    return {**recording, "events": recording["events"][start:stop]}


def write_recording(path: Path, recording: dict, gz: bool = True) -> Path:
    data = json.dumps(recording).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture(scope="session")
def pubsub_emulator():
    """The real Pub/Sub emulator: the one PUBSUB_EMULATOR_HOST names (.ci/run starts it), else one started here."""
    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if host:
        yield host
        return
    # a free port and a state folder of our own: never another session's emulator, and stop ends only ours
    from tests.helpers import free_port

    port = free_port()
    state = tempfile.mkdtemp(prefix="peloton-emulator-")
    env = {**os.environ, "PELOTON_EMULATOR_STATE": state}
    script = str(ROOT / "scripts" / "pubsub_emulator.sh")
    done = subprocess.run([script, "start", str(port)], capture_output=True, text=True, timeout=120, env=env)
    if done.returncode:
        raise RuntimeError(f"the Pub/Sub emulator did not start: {done.stderr}")
    host = done.stdout.strip()
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        subprocess.run([script, "stop"], timeout=60, env=env)
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def browser():
    """Headless chromium (Debian's), a fresh one per test: a live page left open must not leak its
    reconnection errors into the next test's console."""
    from tests.pages import open_browser

    driver = open_browser()
    yield driver
    driver.quit()
