"""Issue 27: the replay on a real Apache Flink session cluster equals the local runner's, table by table, row for row.

A JobManager and two TaskManagers (scripts/flink.sh, on free ports, its own state folder) run a slice of stage 4
through Beam's Flink job server with ``--runner FlinkRunner --flink-master localhost:PORT``; the local runner
replays the same slice; scripts/compare_tables.py compares every table. The Flink artifacts come from the cache
``./run_local.sh flink setup`` fills (.ci/run does it before the tests): without them this fails, it never skips.
``PELOTON_FLINK_MASTER=host:port`` uses a cluster already running instead of starting one.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, slice_recording, write_recording
from tests.helpers import flink_session, free_port

pytestmark = [pytest.mark.flink, pytest.mark.slow]

PELOTON = str(Path(sys.executable).parent / "peloton")


@pytest.fixture(scope="module")
def flink_master(tmp_path_factory):
    given = os.environ.get("PELOTON_FLINK_MASTER")
    if given:
        yield given
        return
    with flink_session(tmp_path_factory.mktemp("flink-state")) as master:
        yield master


def _replay(folder, out, *extra) -> str:
    """Paths relative to ``folder``, as an operator types them: the TaskManagers' workers must read and write
    them where the client means."""
    done = subprocess.run([PELOTON, "replay", "slice.json.gz", "--out", out, *extra], capture_output=True,
                          text=True, timeout=600, cwd=folder)
    assert done.returncode == 0, f"replay {' '.join(extra)} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def test_replay_on_a_flink_session_cluster_equals_the_local_runner(flink_master, tmp_path, stage4_recording):
    write_recording(tmp_path / "slice.json.gz", slice_recording(stage4_recording, 700, 1000))
    local = _replay(tmp_path, "local")
    flink = _replay(tmp_path, "flink", "--runner", "FlinkRunner", "--flink-master", flink_master)
    # the same counts in the summary (Flink's job server reports Beam's metrics), when it has them
    if "rows read" in flink:
        assert [line for line in flink.splitlines() if "rows read" in line or "matched" in line] == [
            line.replace("local", "flink")
            for line in local.splitlines() if "rows read" in line or "matched" in line]
    compared = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_tables.py"), str(tmp_path / "local"),
                               str(tmp_path / "flink")], capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    lines = compared.stdout.splitlines()
    tables = {line.split()[0] for line in lines}
    assert {"rider_state", "groups", "race_events", "predictions", "results", "dead_letter"} <= tables, lines
    assert all(line.endswith("identical") for line in lines), lines
    rider_rows = next(int(line.split()[1]) for line in lines if line.startswith("rider_state"))
    assert rider_rows > 10_000, lines


def test_flink_runner_says_in_one_line_what_is_missing(tmp_path, stage4_recording):
    recording = write_recording(tmp_path / "slice.json.gz", slice_recording(stage4_recording, 700, 710))
    silent = f"localhost:{free_port()}"
    for env, extra, says in (
            ({"PELOTON_FLINK_CACHE": str(tmp_path / "nothing")}, [], "run ./run_local.sh flink setup"),
            ({}, ["--flink-master", silent], f"no Flink cluster answers at {silent}")):
        done = subprocess.run([PELOTON, "replay", str(recording), "--out", str(tmp_path / "out"), "--runner",
                               "FlinkRunner", *extra], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("peloton: error: "), done.stderr
        assert says in done.stderr


def test_flink_runner_defaults_use_the_cache_and_never_a_download(tmp_path, monkeypatch):
    from pipelines import flink

    jar_dir = tmp_path / f"beam-flink-{flink.FLINK_VERSION}-job-server-{flink.BEAM_JAVA_VERSION}"
    jar_dir.mkdir()
    jar = jar_dir / f"beam-runners-flink-{flink.FLINK_VERSION}-job-server-{flink.BEAM_JAVA_VERSION}.jar"
    jar.write_bytes(b"")
    (tmp_path / f".ready-{flink.FLINK_RELEASE}-{flink.BEAM_JAVA_VERSION}").touch()
    monkeypatch.setenv("PELOTON_FLINK_CACHE", str(tmp_path))
    monkeypatch.setenv("FLINK_CONF_DIR", "")  # recorded, so flink_args's setdefault is undone after the test
    monkeypatch.delenv("FLINK_CONF_DIR")
    args = flink.flink_args(["--runner", "FlinkRunner"])
    assert args[args.index("--flink_job_server_jar") + 1] == str(jar)
    assert args[args.index("--flink_version") + 1] == "1.19"
    assert args[args.index("--parallelism") + 1] == "2"
    assert args[args.index("--environment_type") + 1] == "PROCESS"
    assert any(a.startswith("--environment_options=process_command=") and a.endswith("peloton-flink-worker")
               for a in args)
    assert "--job_server_jvm_properties=-Xmx1536m" in args  # embedded: the job server hosts the cluster
    assert (tmp_path / "client-conf" / "config.yaml").read_text().count("large-record-handler: true") == 1
    # what the operator gives wins, with Beam's spelling or peloton's
    args = flink.flink_args(["--runner", "FlinkRunner", "--parallelism", "1", "--environment-type", "LOOPBACK",
                             "--flink_job_server_jar", str(jar)])
    assert args.count("--parallelism") == 1 and "--environment_type" in args and "PROCESS" not in args
