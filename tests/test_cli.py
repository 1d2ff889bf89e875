"""The command line as an operator uses it: clear errors, a summary, real files."""
import gzip
import json
import os
import re
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_flat_csv_replays_with_an_exported_stage(tmp_path, capsys):
    assert main(["stage", "export", str(STAGE4)]) == 0
    stage_file = tmp_path / "stage.json"
    stage_file.write_text(capsys.readouterr().out)
    csv_path = STAGE4.parent / "derived" / "2026-07-07_stage04_telemetry_flat.csv.gz"
    with gzip.open(csv_path, "rt") as fh:
        lines = [next(fh) for _ in range(1)] + [line for i, line in zip(range(120_000), fh) if i >= 100_000]
    small = tmp_path / "slice.csv"
    small.write_text("".join(lines))
    out = tmp_path / "out"
    assert main(["-q", "replay", str(small), "--stage", str(stage_file), "--out", str(out)]) == 0
    assert "matched fixes" in capsys.readouterr().out
    from peloton.sim.evaluate import read_table

    rows = read_table(str(out), "rider_state")
    dead = read_table(str(out), "dead_letter")
    assert len(rows) + len(dead) == 20_000 and len(rows) > 15_000
    assert all(r["stage_id"] == "2026-07-07" for r in rows[:10])


def test_flat_csv_without_course_or_stage_is_refused(tmp_path, capsys):
    small = tmp_path / "slice.csv"
    small.write_text("TimeStamp,Bib,Latitude,Longitude,kph\n1783425798,1,43.09,2.62,40\n")
    assert main(["replay", str(small), "--out", str(tmp_path / "o")]) == 2
    assert "--stage" in _error_line(capsys)


@pytest.mark.slow
def test_simulate_writes_a_recording_and_its_truth(tmp_path, capsys):
    course = tmp_path / "line.geojson"
    course.write_text(json.dumps({"type": "LineString", "coordinates": [[6.0, 45.0, 200], [6.1, 45.0, 260],
                                                                         [6.2, 45.01, 240]]}))
    out = tmp_path / "sim.json.gz"
    assert main(["-q", "simulate", "--course", str(course), "--out", str(out), "--riders", "12",
                 "--seed", "2"]) == 0
    summary = capsys.readouterr().out
    assert "simulated 12 riders" in summary and "truth" in summary
    recording = json.loads(gzip.decompress(out.read_bytes()))
    truth = json.loads(gzip.decompress((tmp_path / "sim.truth.json.gz").read_bytes()))
    assert len(recording["events"]) == len(truth["ticks"]) > 100
    assert recording["rest"]["trace"]["routePoints"]
    # and it replays like any recording
    assert main(["-q", "replay", str(out), "--out", str(tmp_path / "o")]) == 0
    assert main(["evaluate", str(out), str(tmp_path / "o")]) == 0
    assert "adjusted Rand index" in capsys.readouterr().out


def test_simulate_rejects_nonsense(tmp_path, capsys):
    assert main(["simulate", "--course", str(tmp_path / "none.geojson"), "--out", str(tmp_path / "x.json"),
                 "--riders", "1"]) == 2
    assert "--riders" in _error_line(capsys)


@pytest.mark.slow
def test_group_gap_is_configurable(tmp_path, stage4_recording, capsys):
    from peloton.sim.evaluate import read_table

    path = write_recording(tmp_path / "slice.json.gz", slice_recording(stage4_recording, 600, 640))
    groups_per_tick = {}
    for gap in ("0.5", "5"):
        out = tmp_path / f"gap{gap}"
        assert main(["-q", "replay", str(path), "--out", str(out), "--group-gap-s", gap]) == 0
        rows = read_table(str(out), "groups")
        groups_per_tick[gap] = len(rows) / len({r["event_time"] for r in rows})
    assert groups_per_tick["0.5"] > groups_per_tick["5"]
    capsys.readouterr()
    assert main(["replay", str(path), "--out", str(tmp_path / "bad"), "--group-gap-s", "0"]) == 2
    assert "--group-gap-s" in _error_line(capsys)


class _Relay:
    """A TCP relay in front of the real Pub/Sub emulator that fails as a network does: cut (connections reset,
    new ones refused) or silent (connections accepted, nothing ever answered)."""

    def __init__(self, upstream: str):
        import socket
        import threading

        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.mode = "relay"
        self.conns = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.mode != "relay":
                continue  # silent: held open, never answered
            up = socket.create_connection(self.upstream)
            self.conns.append(up)
            for src, dst in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        import time

        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self.mode == "silent":
                time.sleep(0.05)  # bytes held for ever
            try:
                dst.sendall(data)
            except OSError:
                return

    def fail(self, how: str):
        self.mode = how
        if how == "cut":
            self.listener.close()
            for c in list(self.conns):
                c.close()

    def close(self):
        self.fail("cut")


@pytest.mark.realtime  # a wall-clock limit
@pytest.mark.parametrize("pubsub", ["up", "cut", "silent"])
def test_serve_stops_on_ctrl_c_within_2_s_whatever_pubsub_does(pubsub_emulator, stage4, tmp_path, pubsub):
    import signal
    import time
    import uuid

    tag = uuid.uuid4().hex[:8]
    prefix = f"projects/peloton-test/topics/serve-{tag}"
    assert main(["-q", "pubsub", "init", "--topic", f"projects/peloton-test/topics/serve-{tag}-in",
                 "--subscription", f"projects/peloton-test/subscriptions/serve-{tag}-in",
                 "--output-topic-prefix", prefix]) == 0
    stage_file = tmp_path / "stage.json"
    stage_file.write_text(stage4.to_json())
    relay = _Relay(pubsub_emulator)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "peloton"), "serve", "--stage", str(stage_file),
                             "--output-topic-prefix", prefix, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PUBSUB_EMULATOR_HOST": relay.host})
    try:
        assert "live page of stage" in proc.stdout.readline()  # serving, its streaming pulls open
        time.sleep(2.0)
        if pubsub != "up":
            relay.fail(pubsub)
            time.sleep(4.0)  # the client notices (cut) or waits on an answer that never comes (silent)
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        took = time.monotonic() - asked
        err = proc.stderr.read()
    finally:
        proc.kill()
        relay.close()
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert took < 2.0, f"serve took {took:.2f} s to stop after Ctrl-C with Pub/Sub {pubsub}"
    print(f"serve stopped {took:.2f} s after Ctrl-C, Pub/Sub {pubsub}")


def test_real_beam_options_pass_and_misspelled_ones_do_not():
    from pipelines.commands.common import CliError, check_beam_args

    dataflow = ["--runner=DataflowRunner", "--project=peloton-prod", "--region", "europe-west1", "--temp_location",
                "gs://bucket/tmp", "--num_workers", "3", "--max_num_workers=5", "--experiments=use_runner_v2",
                "--save_main_session", "--setup_file", "./setup.py", "--dataflow_service_options=enable_prime",
                "--streaming", "--enable_streaming_engine", "--job_name", "stage04", "--group-gap-s", "2"]
    assert check_beam_args(dataflow) == "DataflowRunner"
    assert check_beam_args(["--direct_num_workers=2", "--direct_running_mode", "multi_threading"]) == "DirectRunner"
    assert check_beam_args(["--runner", "FlinkRunner", "--flink_master", "localhost:8081"]) == "FlinkRunner"
    for bad, says in ((["--runer", "DirectRunner"], "did you mean --runner?"),
                      (["--projct=p"], "did you mean --project?"), (["--runner", "Nope"], "--runner Nope"), (["--num_workers", "many"], "--num_workers"),
                      (["stray.json"], "unexpected argument")):
        with pytest.raises(CliError, match=re.escape(says)):
            check_beam_args(bad)


def test_publish_says_so_when_pubsub_goes_away_mid_stream(pubsub_emulator, tmp_path, stage4_recording):
    import time
    import uuid

    name = f"gone-{uuid.uuid4().hex[:8]}"
    topic = f"projects/peloton-test/topics/{name}"
    assert main(["-q", "pubsub", "init", "--topic", topic, "--subscription",
                 f"projects/peloton-test/subscriptions/{name}"]) == 0
    rec = write_recording(tmp_path / "slice.json.gz", slice_recording(stage4_recording, 700, 760))
    relay = _Relay(pubsub_emulator)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "peloton"), "-q", "publish", str(rec), "--topic", topic,
                             "--speed", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PUBSUB_EMULATOR_HOST": relay.host})
    try:
        time.sleep(6.0)  # publishing through the relay (about 2 minutes of it at 5x)
        assert proc.poll() is None
        cut = time.monotonic()
        relay.fail("cut")
        proc.wait(timeout=120)
        took = time.monotonic() - cut
        err = proc.stderr.read().strip().splitlines()
    finally:
        proc.kill()
        relay.close()
    assert proc.returncode == 2 and len(err) == 1 and err[0].startswith(f"peloton: error: cannot reach Pub/Sub at "
                                                                         f"{relay.host}"), err
    assert took < 30.0, f"publish took {took:.1f} s to notice"
    print(f"publish said '{err[0]}' {took:.1f} s after Pub/Sub went away")


def test_simulate_rides_a_sprint_finale_when_asked(tmp_path, capsys):
    course = tmp_path / "flat.geojson"
    course.write_text(json.dumps({"type": "LineString", "coordinates": [[6.0, 45.0, 200], [6.25, 45.0, 200]]}))
    first = {}
    for finale in ("steady", "sprint"):
        out = tmp_path / f"{finale}.json"
        assert main(["-q", "simulate", "--course", str(course), "--out", str(out), "--riders", "12", "--seed", "1",
                     "--caught", "yes", "--finale", finale]) == 0
        truth = json.loads((tmp_path / f"{finale}.truth.json").read_text())
        first[finale] = min(truth["finish"].values())
    assert first["sprint"] < first["steady"] - 30  # the lead-out and the sprint: the line a minute earlier or so
