"""``--runner FlinkRunner``: Beam's Flink job server from the local cache, with defaults that run without Docker.

``scripts/flink.sh setup`` (``./run_local.sh flink setup``) fetches once what this needs: Flink 1.19.0 and
Beam's Flink 1.19 job server with its dependencies, under ``~/.cache/peloton/flink`` (``PELOTON_FLINK_CACHE``).
Nothing is downloaded at run time: the job server jar is always given to Beam (``--flink_job_server_jar``).

The Python SDK harness runs as a PROCESS environment: each Flink TaskManager starts ``peloton-flink-worker``
(:mod:`pipelines.flink_worker`, this virtualenv's Python) for the workers it needs, and reaches it over gRPC
on localhost. No Docker; the workers import the same Beam and peloton as the client, and start in its working
folder (``PELOTON_WORKDIR``), so the Avro sinks write from them where ``--out`` says, relative or not.
Not LOOPBACK: with two TaskManagers the client's worker pool mixes up their workers (see
:mod:`pipelines.flink_worker`).
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

__all__ = ["FLINK_VERSION", "BEAM_JAVA_VERSION", "FlinkError", "cache_dir", "job_server_jar", "flink_args",
           "normalize_flags"]

#: The Flink minor version of the cached job server (Beam's ``--flink_version``), and its exact release.
FLINK_VERSION = "1.19"
FLINK_RELEASE = "1.19.0"
#: Beam's Java runner version: the newest ``beam-runners-flink-1.19`` whose dependencies Maven Central serves
#: whole here (no ``beam-runners-flink-*-job-server`` jar is served; see scripts/flink.sh).
BEAM_JAVA_VERSION = "2.62.0"
#: Parallelism of a replay on Flink unless ``--parallelism`` says otherwise: the two TaskManagers' slots.
PARALLELISM = 2
#: Heap of the job server JVM: with ``--flink_master`` it only translates and submits; without, it also hosts
#: Flink's embedded cluster (a MiniCluster), so it gets more.
JOB_SERVER_HEAP = {"session": "-Xmx512m", "embedded": "-Xmx1536m"}

#: The client's environment variables its SDK workers get too (Beam's process_variables).
WORKER_VARIABLES = ("PUBSUB_EMULATOR_HOST",)

#: Beam's Flink flags also accepted with hyphens, as peloton's own flags are spelled.
_HYPHENATED = ("--flink-master", "--flink-job-server-jar", "--flink-version", "--environment-type")


class FlinkError(Exception):
    """The Flink set-up is missing or the cluster does not answer: one line for the operator."""


def cache_dir() -> str:
    return os.environ.get("PELOTON_FLINK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "peloton",
                                                                  "flink")


def job_server_jar() -> str:
    """The cached job server jar; FlinkError (run setup) when it is not there."""
    cache = cache_dir()
    jar = os.path.join(cache, f"beam-flink-{FLINK_VERSION}-job-server-{BEAM_JAVA_VERSION}",
                       f"beam-runners-flink-{FLINK_VERSION}-job-server-{BEAM_JAVA_VERSION}.jar")
    ready = os.path.join(cache, f".ready-{FLINK_RELEASE}-{BEAM_JAVA_VERSION}")
    if not (os.path.isfile(jar) and os.path.exists(ready)):
        raise FlinkError(f"Beam's Flink job server is not in the cache {cache}: run ./run_local.sh flink setup")
    return jar


def normalize_flags(beam_args: list[str]) -> list[str]:
    """``--flink-master X`` -> ``--flink_master X`` (Beam's parser knows only the underscore spelling)."""
    out = []
    for arg in beam_args:
        flag, sep, value = arg.partition("=")
        if flag in _HYPHENATED:
            arg = flag.replace("-", "_").replace("__", "--", 1) + sep + value
        out.append(arg)
    return out


def _given(beam_args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``beam_args`` (last one wins, as in argparse), else None."""
    value = None
    for i, arg in enumerate(beam_args):
        if arg == flag and i + 1 < len(beam_args):
            value = beam_args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def check_cluster(master: str, slots: int = 1, timeout_s: float = 5.0) -> dict:
    """The cluster's REST ``/overview``; FlinkError when nothing answers there or it has fewer than ``slots``
    free task slots (Flink would wait 5 minutes for them, then fail the job)."""
    try:
        overview = _rest(master, "/overview", timeout_s=timeout_s)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FlinkError(f"no Flink cluster answers at {master} ({reason}): start one with "
                         f"./run_local.sh flink start, or leave out --flink-master for Flink's embedded "
                         f"cluster") from None
    free, total = overview.get("slots-available", 0), overview.get("slots-total", 0)
    if free < slots:
        busy = f", {overview['jobs-running']} job(s) running" if overview.get("jobs-running") else ""
        raise FlinkError(f"the Flink cluster at {master} has {free} free task slot(s) of {total}{busy}; the "
                         f"replay needs {slots} (--parallelism): see its web UI")
    return overview


def worker_command() -> str:
    """``peloton-flink-worker`` of this virtualenv (beside its Python), which TaskManagers start."""
    import sys

    command = os.path.join(os.path.dirname(sys.executable), "peloton-flink-worker")
    if not os.access(command, os.X_OK):
        raise FlinkError(f"no {command}: reinstall peloton (pip install -e .) for the Flink SDK worker")
    return command


#: Flink configuration of the job server (the Flink client): the JobGraph's batch settings come from the client's
#: config, not the cluster's; without --flink-master it also configures the embedded cluster.
CLIENT_CONFIG = """\
# written by peloton (pipelines/flink.py): the Flink client's configuration, FLINK_CONF_DIR of the job server
# a GroupByKey of one key (the whole stage) pre-combines into records larger than a sort buffer: spill them
taskmanager.runtime.large-record-handler: true
# the embedded cluster: a Beam batch job runs all its operators in a slot at once
taskmanager.memory.network.min: 256mb
taskmanager.memory.network.max: 256mb
taskmanager.network.sort-shuffle.min-buffers: 64
taskmanager.memory.managed.size: 256mb
"""


def client_conf_dir() -> str:
    """The job server's FLINK_CONF_DIR (under the cache), written when missing or stale."""
    folder = os.path.join(cache_dir(), "client-conf")
    path = os.path.join(folder, "config.yaml")
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == CLIENT_CONFIG:
                return folder
    except OSError:
        pass
    os.makedirs(folder, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(CLIENT_CONFIG)
    os.replace(path + ".tmp", path)
    return folder


#: Checkpoints of ``peloton live`` on Flink: every 2 s, at least 1 s apart (the reader acknowledges Pub/Sub one
#: checkpoint late and tells checkpoints apart by that pause: transforms/read_feed.py), kept in files so that a
#: stop with a savepoint and a lost TaskManager both resume from them.
CHECKPOINT_INTERVAL_MS = 2000
CHECKPOINT_MIN_PAUSE_MS = 1000


def checkpoint_dir() -> str:
    """Where the live job's checkpoints go: ``PELOTON_FLINK_CHECKPOINTS`` (a URL every TaskManager reaches, e.g.
    ``gs://BUCKET/flink/checkpoints`` on a cluster of pods), else ``checkpoints/`` in the local cluster's state
    folder (``.flink``)."""
    durable = os.environ.get("PELOTON_FLINK_CHECKPOINTS")
    if durable:
        return durable.rstrip("/")
    state = os.environ.get("PELOTON_FLINK_STATE") or ".flink"
    return "file://" + os.path.abspath(os.path.join(state, "checkpoints"))


def streaming_args(beam_args: list[str]) -> list[str]:
    """``beam_args`` of a live (streaming) job on Flink with checkpointing on unless they say otherwise."""
    import uuid

    args = list(beam_args)
    for flag, value in (("--job_name", f"peloton-live-{uuid.uuid4().hex[:8]}"),  # found by name to stop it
                        ("--checkpointing_interval", str(CHECKPOINT_INTERVAL_MS)),
                        ("--min_pause_between_checkpoints", str(CHECKPOINT_MIN_PAUSE_MS)),
                        ("--state_backend", "filesystem"), ("--state_backend_storage_path", checkpoint_dir()),
                        ("--externalized_checkpoints_enabled", None),
                        ("--retain_externalized_checkpoints_on_cancellation", None)):
        if _given(args, flag) is None and flag not in args:
            args += [flag] if value is None else [flag, value]
    return args


def flink_args(beam_args: list[str], streaming: bool = False) -> list[str]:
    """``beam_args`` of a FlinkRunner run, with peloton's defaults for what they leave out.

    The cached job server jar (never a download), Flink 1.19, PROCESS SDK workers, parallelism 2, a
    modest job server heap; with ``--flink_master`` the cluster must answer now, not minutes later in Beam.
    ``streaming``: a live job, checkpointed (:func:`streaming_args`).
    """
    args = normalize_flags(list(beam_args))
    jar = _given(args, "--flink_job_server_jar")
    if jar is None:
        args += ["--flink_job_server_jar", job_server_jar()]
    elif not os.path.isfile(jar):
        raise FlinkError(f"--flink_job_server_jar {jar}: no such file (run ./run_local.sh flink setup for the "
                         f"cached one)")
    os.environ.setdefault("FLINK_CONF_DIR", client_conf_dir())  # inherited by the job server Beam starts
    if _given(args, "--flink_version") is None:
        args += ["--flink_version", FLINK_VERSION]
    if _given(args, "--parallelism") is None:
        args += ["--parallelism", str(PARALLELISM)]
    master = _given(args, "--flink_master")
    session = master is not None and master not in ("[auto]", "[local]")
    if session:
        check_cluster(master, max(1, int(_given(args, "--parallelism"))))
    if _given(args, "--environment_type") is None:
        # the workers start in the client's working folder, so relative paths (--out, the recording) mean the same
        # and reach the Pub/Sub emulator the client reaches (the TaskManagers were started without it)
        variables = [f"PELOTON_WORKDIR={os.getcwd()}"] + [
            f"{name}={os.environ[name]}" for name in WORKER_VARIABLES if os.environ.get(name)]
        args += ["--environment_type", "PROCESS", f"--environment_options=process_command={worker_command()}",
                 f"--environment_options=process_variables={','.join(variables)}"]
    if streaming:
        args = streaming_args(args)
    if _given(args, "--job_server_jvm_properties") is None and _given(args, "--job_server_jvm_property") is None:
        args.append(f"--job_server_jvm_properties={JOB_SERVER_HEAP['session' if session else 'embedded']}")
    return args


def _rest(master: str, path: str, method: str = "GET", body: dict | None = None, timeout_s: float = 10.0) -> dict:
    url = (master if "://" in master else f"http://{master}").rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310 - an operator's own address
        text = resp.read()
    return json.loads(text) if text else {}


def running_job(master: str, name: str) -> str | None:
    """The id of the job called ``name`` (Beam's ``--job_name``) running on the cluster, else None."""
    jobs = _rest(master, "/jobs/overview").get("jobs", [])
    ids = [j["jid"] for j in jobs if j.get("name") == name and j.get("state") in ("RUNNING", "RESTARTING",
                                                                                  "CREATED", "INITIALIZING")]
    return ids[0] if ids else None


def stop_with_savepoint(master: str, job_id: str, directory: str, timeout_s: float = 120.0) -> str:
    """Stop the job with a savepoint in ``directory`` (no drain: windows and state are kept, to resume from);
    the savepoint's path. FlinkError when Flink cannot take it."""
    import time

    deadline = time.monotonic() + timeout_s
    trigger, why = None, "?"
    while time.monotonic() < deadline:
        if trigger is None:
            trigger = _rest(master, f"/jobs/{job_id}/stop", "POST", {"targetDirectory": directory, "drain": False})
        status = _rest(master, f"/jobs/{job_id}/savepoints/{trigger['request-id']}")
        if status.get("status", {}).get("id") == "COMPLETED":
            operation = status.get("operation", {})
            if "location" in operation:
                return operation["location"]
            why = str(operation.get("failure-cause", {}).get("stack-trace", "?")).splitlines()[0]
            if "is not being executed at the moment" not in why:  # else a task (re)starting: try again
                break
            trigger = None
            time.sleep(1.0)
            continue
        time.sleep(0.5)
    raise FlinkError(f"Flink could not stop job {job_id} with a savepoint within {timeout_s:.0f} s: {why}")


def cancel_job(master: str, job_id: str) -> None:
    _rest(master, f"/jobs/{job_id}?mode=cancel", "PATCH")


def savepoint_dir() -> str:
    """Where ``peloton live`` on Flink puts the savepoint it stops with: ``PELOTON_FLINK_SAVEPOINTS``, else
    ``savepoints/`` beside the checkpoints."""
    durable = os.environ.get("PELOTON_FLINK_SAVEPOINTS")
    if durable:
        return durable.rstrip("/")
    folder = checkpoint_dir()
    return (folder[:-len("checkpoints")] if folder.endswith("checkpoints") else folder + "/../") + "savepoints"
