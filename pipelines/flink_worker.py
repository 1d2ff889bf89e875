"""The Python SDK harness as a PROCESS environment: what Beam's container ``boot`` does, without the container.

A Flink TaskManager starts ``peloton-flink-worker --id=ID --provision_endpoint=... --control_endpoint=...
--logging_endpoint=... --artifact_endpoint=...`` (Beam's ``environment_type=PROCESS``) for each worker it
needs. This asks the provision service for the pipeline options, as ``boot`` does, and runs Beam's
``sdk_worker_main`` in this virtualenv: no Docker, no artifact staging (the virtualenv has Beam and peloton).

Why not LOOPBACK with two TaskManagers: the client's worker pool keys workers by id, and each TaskManager
numbers its workers from ``1-1``, so one TaskManager's ``StopWorker`` ends the other's worker (Beam 2.77,
``worker_pool_main``); the second task then waits for a worker that never comes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="peloton-flink-worker")
    for flag in ("--id", "--provision_endpoint", "--control_endpoint", "--logging_endpoint", "--artifact_endpoint",
                 "--status_endpoint", "--semi_persist_dir"):
        parser.add_argument(flag, default="")
    args, _unknown = parser.parse_known_args(argv)
    if os.environ.get("PELOTON_WORKDIR"):  # the client's working folder: relative paths mean what they meant there
        os.chdir(os.environ["PELOTON_WORKDIR"])

    import grpc
    from google.protobuf import json_format, text_format

    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc, endpoints_pb2

    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)], timeout=60).info

    def descriptor(url):
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    env = os.environ
    env["WORKER_ID"] = args.id
    env["PIPELINE_OPTIONS"] = json_format.MessageToJson(info.pipeline_options)
    env["CONTROL_API_SERVICE_DESCRIPTOR"] = descriptor(args.control_endpoint or info.control_endpoint.url)
    env["LOGGING_API_SERVICE_DESCRIPTOR"] = descriptor(args.logging_endpoint or info.logging_endpoint.url)
    if args.status_endpoint:
        env["STATUS_API_SERVICE_DESCRIPTOR"] = descriptor(args.status_endpoint)
    env["RUNNER_CAPABILITIES"] = " ".join(info.runner_capabilities)
    env["SEMI_PERSISTENT_DIRECTORY"] = args.semi_persist_dir or tempfile.mkdtemp(prefix="peloton-sdk-worker-")

    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
