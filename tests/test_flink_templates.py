"""The Kubernetes manifests of the Flink runbook (templates/flink/) agree with what the project runs.

They cannot be applied here (no cluster); what can drift is checked: the Flink and Beam versions, the worker
pool's port, the artifacts' path on the client's and the TaskManagers' side.
"""
import re
from pathlib import Path

import apache_beam
import yaml

from pipelines import flink
from pipelines.cli import build_parser
from pipelines.commands.common import check_beam_args

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "flink"


def _docs(name: str) -> dict:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((TEMPLATES / name).read_text())}


def _containers(pod_template: dict) -> dict:
    return {c["name"]: c for c in pod_template["spec"]["containers"]}


def _mounts(container: dict) -> dict:
    return {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}


def test_the_cluster_is_the_flink_of_the_cached_job_server():
    spec = _docs("session.yaml")["FlinkDeployment"]["spec"]
    assert spec["flinkVersion"] == "v" + flink.FLINK_VERSION.replace(".", "_")
    assert spec["image"].startswith(f"flink:{flink.FLINK_RELEASE}-")
    conf = spec["flinkConfiguration"]
    assert conf["taskmanager.numberOfTaskSlots"] == "1" and int(conf["parallelism.default"]) == flink.PARALLELISM
    for key in ("state.checkpoints.dir", "state.savepoints.dir", "high-availability.storageDir"):
        assert conf[key].startswith("gs://"), key  # outlives the pods
    plugin = _containers(spec["podTemplate"])["flink-main-container"]["env"][0]["value"]
    assert plugin == f"flink-gs-fs-hadoop-{flink.FLINK_RELEASE}.jar"


def test_the_worker_image_is_the_locked_beam_and_python():
    dockerfile = (TEMPLATES / "Dockerfile").read_text()
    python, beam = re.search(r"^FROM apache/beam_python(\d+\.\d+)_sdk:(\S+)$", dockerfile, re.M).groups()
    assert beam == apache_beam.__version__
    assert python == "3.11"
    session = _docs("session.yaml")["FlinkDeployment"]["spec"]
    job = _docs("live-job.yaml")["Job"]["spec"]["template"]
    tags = {_containers(session["taskManager"]["podTemplate"])["beam-worker-pool"]["image"],
            _containers(job)["peloton"]["image"]}
    assert len(tags) == 1 and tags.pop().endswith(":" + beam)  # client and workers: one image


def test_the_client_reaches_the_worker_pool_and_shares_the_artifacts_with_the_taskmanagers():
    session = _docs("session.yaml")["FlinkDeployment"]["spec"]
    pool = _containers(session["taskManager"]["podTemplate"])["beam-worker-pool"]
    assert pool["args"] == ["--worker_pool"]
    port = {p["name"]: p["containerPort"] for p in pool["ports"]}["worker-pool"]
    docs = _docs("live-job.yaml")
    client = _containers(docs["Job"]["spec"]["template"])["peloton"]
    args = dict(a.split("=", 1) for a in client["args"] if a.startswith("--") and "=" in a)
    assert args["--environment_type"] == "EXTERNAL" and args["--environment_config"] == f"localhost:{port}"
    assert args["--flink-master"] == f"{_docs('session.yaml')['FlinkDeployment']['metadata']['name']}-rest:8081"
    staged = args["--artifacts_dir"]
    taskmanager = _containers(session["podTemplate"])["flink-main-container"]
    assert _mounts(client)["beam-artifacts"] == staged == _mounts(taskmanager)["beam-artifacts"]
    # Flink's own container comes first in the TaskManagers' template: merged by position or by name, it keeps
    # the common template's mounts
    assert list(_containers(session["taskManager"]["podTemplate"]))[0] == "flink-main-container"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in session["podTemplate"]["spec"]["volumes"]
              + docs["Job"]["spec"]["template"]["spec"]["volumes"]}
    assert claims == {docs["PersistentVolumeClaim"]["metadata"]["name"]}
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_client_job_is_a_command_line_peloton_takes():
    client = _containers(_docs("live-job.yaml")["Job"]["spec"]["template"])["peloton"]
    assert client["command"] == ["peloton"]
    args, beam_args = build_parser().parse_known_args(client["args"])
    assert args.command == "live"
    assert check_beam_args(flink.normalize_flags(beam_args)) == "FlinkRunner"  # every Beam option one it knows


def test_the_client_keeps_the_jobs_checkpoints_and_savepoints_where_the_cluster_does():
    conf = _docs("session.yaml")["FlinkDeployment"]["spec"]["flinkConfiguration"]
    client = _containers(_docs("live-job.yaml")["Job"]["spec"]["template"])["peloton"]
    env = {e["name"]: e.get("value") for e in client["env"]}
    assert env["PELOTON_FLINK_CHECKPOINTS"] == conf["state.checkpoints.dir"]
    assert env["PELOTON_FLINK_SAVEPOINTS"] == conf["state.savepoints.dir"]
