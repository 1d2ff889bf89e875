"""Every subcommand against bad input, as a newcomer types it: one ``peloton: error:`` line, exit 2, no traceback.

The commands run as the installed ``peloton`` entry point (a subprocess, as an operator runs them), against the
real Pub/Sub emulator where they talk to Pub/Sub. A second group points them at a Pub/Sub that is not there,
or at Google Cloud without credentials: one line, exit 2, within 10 s.
"""
from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.conftest import DATA, STAGE4, STAGE16, slice_recording, write_recording
from tests.helpers import free_port

PELOTON = str(Path(sys.executable).parent / "peloton")
PROJECT = "peloton-test"
GPX = DATA / "route-tdf2025-stage06" / "TDF2025_Stage06_BAYEUX_VIRE_NORMANDIE.gpx"


def _run(argv: list[str], env: dict | None = None, timeout: float = 120.0):
    started = time.monotonic()
    proc = subprocess.run([PELOTON, *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc, time.monotonic() - started


def _problems(proc, expect: str) -> list[str]:
    """What is wrong with a refusal: anything but exit 2 and one error line saying ``expect``."""
    lines = proc.stderr.strip().splitlines()
    problems = []
    if proc.returncode != 2:
        problems.append(f"exit {proc.returncode}")
    if "Traceback" in proc.stderr:
        problems.append("a traceback")
    if len(lines) != 1 or not lines[0].startswith("peloton: error:"):
        problems.append(f"{len(lines)} stderr lines: {lines[:3]} ... {lines[-2:]}")
    elif expect.lower() not in lines[0].lower():
        problems.append(f"{lines[0]!r} does not say {expect!r}")
    return problems


@pytest.fixture(scope="module")
def files(tmp_path_factory, stage4_recording, pubsub_emulator):
    """Real inputs to get wrong: a recording slice, its stage file and tables, a truncated table, topics."""
    root = tmp_path_factory.mktemp("bad-inputs")
    rec = write_recording(root / "slice.json.gz", slice_recording(stage4_recording, 700, 710))
    tables = root / "tables"
    assert main(["-q", "replay", str(rec), "--out", str(tables)]) == 0
    truncated = root / "truncated"
    for folder in tables.iterdir():  # every table file cut short, the stage file intact
        if folder.is_dir():
            (truncated / folder.name).mkdir(parents=True)
            for f in folder.glob("*.avro"):
                (truncated / folder.name / f.name).write_bytes(f.read_bytes()[:3000])
    shutil.copy(tables / "stage.json", truncated / "stage.json")
    (root / "empty").mkdir()
    (root / "a-file.txt").write_text("not a folder\n")
    (root / "garbage.gpx.gz").write_bytes(gzip.compress(b"\x00\xff\xfe binary, not a course"))
    tag = uuid.uuid4().hex[:8]
    topic, sub = f"projects/{PROJECT}/topics/bad-{tag}", f"projects/{PROJECT}/subscriptions/bad-{tag}"
    prefix = f"projects/{PROJECT}/topics/bad-{tag}-out"
    assert main(["-q", "pubsub", "init", "--topic", topic, "--subscription", sub, "--output-topic-prefix",
                 prefix]) == 0
    return {"rec": rec, "stage": tables / "stage.json", "tables": tables, "truncated": truncated,
            "empty": root / "empty", "file": root / "a-file.txt", "missing": root / "missing.json",
            "new": root / "new-out", "garbage_gz": root / "garbage.gpx.gz", "gpx": GPX, "stage16": STAGE16,
            "topic": topic, "sub": sub, "prefix": prefix, "nosub": f"projects/{PROJECT}/subscriptions/none-{tag}",
            "notopic": f"projects/{PROJECT}/topics/none-{tag}"}


# (bad input, what the error line must say); {name} is a path or name from the ``files`` fixture
BAD_INPUTS = [
    ("", "required: command"),
    ("nope", "invalid choice"),
    ("--bogus replay {rec} --out {new}", "unknown option --bogus"),
    # replay
    ("replay", "required: recording, --out"),
    ("replay {missing} --out {new}", "no such file"),
    ("replay {rec} --out {file}", "is a file"),
    ("replay {rec} --out {new} --runner Nope", "--runner Nope"),
    ("replay {rec} --out {new} --runer DirectRunner", "did you mean --runner"),
    ("replay {rec} --out {new} --num-workrs=3", "unknown option --num-workrs=3"),
    ("replay {rec} --out {new} stray.json", "unexpected argument 'stray.json'"),
    ("replay {rec} --out {new} --num_workers abc", "--num_workers"),
    ("replay {rec} --out {new} --group-gap-s nan", "--group-gap-s"),
    ("replay {rec} --out {new} --bigquery-dataset nodots", "PROJECT:DATASET"),
    ("replay {rec} --out {new} --stage {rec}", "not a stage file"),
    ("replay {stage16} --out {new}", "--course"),
    ("replay {rec} --out {new} --course {gpx} --stage {stage}", "not both"),
    ("replay {garbage_gz} --out {new}", "not UTF-8"),
    # with a stage file the recording is not needed for the stage: still refused before the pipeline runs
    ("replay {missing} --out {new} --stage {stage}", "no such file"),
    ("replay {garbage_gz} --out {new} --stage {stage}", "not UTF-8"),
    ("replay {stage} --out {new} --stage {stage}", "not an official feed recording"),
    # live
    ("live --stage {stage} --out {new}", "required: --subscription"),
    ("live --subscription feed --stage {stage} --out {new}", "--subscription must look like"),
    ("live --subscription projects/p/subscriptions/feed --stage {stage} --out {new}", "PROJECT: 6-63"),
    ("live --subscription {sub} --stage {missing} --out {new}", "no such file"),
    ("live --subscription {sub} --stage {stage}", "nothing to write"),
    ("live --subscription {sub} --stage {stage} --out {file}", "is a file"),
    ("live --subscription {sub} --stage {stage} --out {new} --allowed-lateness-s nan", "finite"),
    ("live --subscription {sub} --stage {stage} --out {new} --early-after-s 0", "--early-after-s"),
    ("live --subscription {sub} --stage {stage} --out {new} --early-after-messages 0", "--early-after-messages"),
    ("live --subscription {sub} --stage {stage} --out {new} --avro-flsh-s 3", "unknown option --avro-flsh-s"),
    ("live --subscription {sub} --stage {stage} --out {new} --runner Nope", "--runner Nope"),
    # Flink's own options are added after Beam's check, never refused as unknown (they were, once): what is said
    # is the cluster (or the missing cache)
    ("live --subscription {sub} --stage {stage} --out {new} --runner FlinkRunner --flink-master localhost:1",
     "Flink"),
    ("live --subscription {sub} --stage {stage} --out {new} --authenticate maybe", "expected true or false"),
    ("live --subscription {nosub} --stage {stage} --out {new}", "no subscription"),
    ("live --subscription {sub} --stage {stage} --output-topic-prefix {notopic}", "no topic"),
    # evaluate
    ("evaluate {rec}", "required: dir"),
    ("evaluate {missing} {tables}", "no such file"),
    ("evaluate {rec} {missing}", "nothing to evaluate"),
    ("evaluate {rec} {empty}", "nothing to evaluate"),
    ("evaluate {stage16} {tables}", "another stage"),
    ("evaluate {rec} {truncated}", "truncated"),
    # simulate
    ("simulate --course {gpx} --out {new}.json --seed -5", "--seed"),
    ("simulate --course {gpx} --out {new}.json --riders 1", "--riders"),
    ("simulate --course {gpx} --out {new}.json --hz 0", "--hz"),
    ("simulate --course {gpx} --out {new}.json --caught maybe", "--caught"),
    ("simulate --course {gpx} --out {new}.json --finale bunch", "--finale"),
    ("simulate --course {missing} --out {new}.json", "no such file"),
    ("simulate --course {garbage_gz} --out {new}.json", "not UTF-8"),
    ("simulate --course {stage} --out {new}.json", "LineString"),
    ("simulate --course {gpx} --out {missing}/x.json", "no folder"),
    ("simulate --course {gpx} --out {empty}", "is a folder"),
    # pubsub init
    ("pubsub", "required: pubsub_command"),
    ("pubsub init --topic feed --subscription {sub}", "--topic must look like"),
    ("pubsub init --topic {topic} --subscription {sub} --output-topic-prefix out", "--output-topic-prefix"),
    # publish
    ("publish {rec}", "required: --topic"),
    ("publish {rec} --topic {topic} --speed -1", "--speed"),
    ("publish {rec} --topic {topic} --speed inf", "--speed"),
    ("publish {rec} --topic {topic} --duplicate-rate 2", "--duplicate-rate"),
    ("publish {rec} --topic {topic} --disorder-s -3", "--disorder-s"),
    ("publish {rec} --topic {topic} --start-s 99999", "nothing to publish"),
    ("publish {rec} --topic {topic} --sign-key-id k1", "no feed keys"),
    ("publish {rec} --topic {topic} --runner DirectRunner", "unrecognized arguments"),
    ("publish {stage} --topic {topic}", "not an official feed recording"),
    ("publish {rec} --topic {notopic} --speed 0", "no topic"),
    # report
    ("report {missing}", "not a folder of tables"),
    ("report {empty}", "no stage file"),
    ("report {truncated}", "truncated"),
    ("report {tables} --out {empty}", "is a folder"),
    ("report {tables} --out {missing}/report.html", "no folder"),
    ("report {tables} --stage {rec}", "not a stage file"),
    # serve
    ("serve --stage {stage} --output-topic-prefix {prefix} --port 99999", "--port"),
    ("serve --stage {stage} --output-topic-prefix {prefix} --port http", "--port"),
    ("serve --stage {stage} --output-topic-prefix {prefix} --duration-s -2", "--duration-s"),
    ("serve --stage {missing} --output-topic-prefix {prefix}", "no such file"),
    ("serve --stage {stage} --output-topic-prefix out", "--output-topic-prefix must look like"),
    ("serve --stage {stage} --output-topic-prefix {notopic}", "no topic"),
    ("serve --stage {stage} --output-topic-prefix {prefix} --host 256.1.1.1", "cannot listen"),
    # stage export
    ("stage", "required: stage_command"),
    ("stage export {missing}", "no such file"),
    ("stage export {stage}", "not an official feed recording"),
    ("serve --stage {file} --output-topic-prefix {prefix}", "not a stage file"),
    ("report {tables} --stage {rec}", "unknown key 'events'"),
    # racecenter serve, bridge, record: numbers checked like everyone else's, before any socket is opened
    ("racecenter serve {rec} --port 70000", "--port"),
    ("racecenter serve {rec} --port -1", "--port"),
    ("racecenter serve {rec} --speed nan", "--speed"),
    ("racecenter serve {rec} --keepalive-s 0", "--keepalive-s"),
    ("racecenter serve {rec} --start-s 99999", "nothing to serve"),
    ("bridge --source http://127.0.0.1:1 --topic {topic} --progress-s -1", "--progress-s"),
    ("bridge --source http://127.0.0.1:1 --topic {topic} --buffer 0", "--buffer"),
    ("record --source http://127.0.0.1:1 --out {empty}", "is a folder"),
    ("record --source http://127.0.0.1:1 --out {new}.json.gz --date 2026-13-40", "not a day of the calendar"),
    ("record --source http://127.0.0.1:1 --out {new}.json.gz --write-every-s 0", "--write-every-s"),
    ("stage fetch --source http://127.0.0.1:1 --date 2026-02-30", "not a day of the calendar"),
]


@pytest.mark.slow
@pytest.mark.realtime  # the emulator must answer within the CLI's 4.5 s: not beside a CPU-bound test
def test_every_subcommand_refuses_bad_input_in_one_line(files):
    env = {"PELOTON_FEED_KEYS": ""}

    def refuse(case):
        template, expect = case
        argv = [word.format(**files) for word in template.split()]
        proc, _ = _run(argv, env)
        return template, _problems(proc, expect)

    with ThreadPoolExecutor(3) as pool:  # ~70 commands; the machine is shared
        outcomes = list(pool.map(refuse, BAD_INPUTS))
    failed = [f"peloton {template}: {'; '.join(p)}" for template, p in outcomes if p]
    assert not failed, f"{len(failed)} of {len(BAD_INPUTS)} bad inputs not refused in one line:\n" + "\n".join(failed)


def test_the_run_script_refuses_a_bad_minute_count():
    script = Path(__file__).resolve().parent.parent / "run_local.sh"
    for bad in ("abc", "0", "-3", "1.5"):
        proc = subprocess.run([str(script), "live", bad], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PELOTON_VENV": str(Path(sys.executable).parent.parent)})
        assert proc.returncode == 2, (bad, proc.stderr)
        assert proc.stderr.strip().splitlines()[-1].startswith("run_local.sh: error: MINUTES"), proc.stderr


# ------------------------------------------------------------------ Pub/Sub unreachable, or no credentials
class _SilentPort:
    """A port that accepts connections and never answers (a hung proxy, a firewall that swallows)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def silent_port():
    port = _SilentPort()
    yield port.host
    port.close()


def _closed_port() -> str:
    return f"127.0.0.1:{free_port()}"  # a port that was free a moment ago: connections are refused


PUBSUB_COMMANDS = {
    "pubsub init": "pubsub init --topic {topic} --subscription {sub}",
    "publish": "publish {rec} --topic {topic}",
    "serve": "serve --stage {stage} --output-topic-prefix {prefix} --port 0",
    "live": "live --subscription {sub} --stage {stage} --out {new}",
}


@pytest.mark.slow
@pytest.mark.realtime  # a wall-clock limit
@pytest.mark.parametrize("where", ["refused", "silent", "no credentials"])
@pytest.mark.parametrize("command", sorted(PUBSUB_COMMANDS))
def test_pubsub_out_of_reach_is_one_line_within_10_s(files, silent_port, command, where, tmp_path):
    if where == "no credentials":  # Google Cloud itself, with a key file that is not there
        env = {"PUBSUB_EMULATOR_HOST": "", "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-key.json"),
               "CLOUDSDK_CONFIG": str(tmp_path)}
        expect = "no Google Cloud credentials (set PUBSUB_EMULATOR_HOST for the emulator"
    else:
        host = _closed_port() if where == "refused" else silent_port
        env, expect = {"PUBSUB_EMULATOR_HOST": host}, f"cannot reach Pub/Sub at {host}"
    argv = [word.format(**files) for word in PUBSUB_COMMANDS[command].split()]
    proc, took = _run(argv, env, timeout=60)
    assert not _problems(proc, expect), (_problems(proc, expect), proc.stderr[-2000:])
    assert took < 10.0, f"peloton {command} took {took:.1f} s to say {proc.stderr.strip()!r}"


# ------------------------------------------------------------------ runners from the local caches (issue 27)
def test_a_runner_whose_cache_is_missing_is_one_line_before_any_work(tmp_path):
    """--runner PrismRunner and FlinkRunner take their binary or jar from the cache setup fills (never a download):
    without it, or asked for one that is not there, one line at once; live refuses Prism (no Pub/Sub read)."""
    empty = {"PELOTON_PRISM_CACHE": str(tmp_path / "no-prism"), "PELOTON_FLINK_CACHE": str(tmp_path / "no-flink")}
    rec, out = str(STAGE4), str(tmp_path / "out")
    cases = [
        (["replay", rec, "--out", out, "--runner", "PrismRunner"], "./run_local.sh prism setup"),
        (["replay", rec, "--out", out, "--runner=PrismRunner", "--prism_location", str(tmp_path / "nope")],
         "no such file"),
        (["tour", str(tmp_path), "--out", out, "--runner", "PrismRunner"], "./run_local.sh prism setup"),
        # tour takes Flink's flags as replay does (hyphenated too), and its cache
        (["tour", str(tmp_path), "--out", out, "--runner", "FlinkRunner", "--flink-master", "localhost:1"],
         "./run_local.sh flink setup"),
        (["live", "--subscription", "projects/p/subscriptions/s", "--stage", rec, "--out", out,
          "--runner", "PrismRunner"], "does not run on Prism"),
    ]
    for argv, expect in cases:
        proc, _ = _run(argv, empty, timeout=120)
        assert not _problems(proc, expect), (argv, _problems(proc, expect))
    assert not os.path.exists(out)
