"""``--runner PrismRunner``: Beam's Prism runner from the binary built at setup, never a download.

``scripts/prism.sh setup`` (``./run_local.sh prism setup``) builds Prism once from the Go module proxy, the
release of the installed Beam, into ``~/.cache/peloton/prism/prism-vX.Y.Z`` (``PELOTON_PRISM_CACHE``). Beam
itself would download a prebuilt binary from its GitHub releases at every run; the CLI always hands it the
cached one (``--prism_location``), and stops with one line when it is not built.
"""
from __future__ import annotations

import os

__all__ = ["PrismError", "cache_dir", "prism_binary", "prism_args", "refuse_live"]


class PrismError(Exception):
    """The Prism binary is not built, or ``--prism_location`` names none: one line for the operator."""


def cache_dir() -> str:
    return os.environ.get("PELOTON_PRISM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "peloton",
                                                                  "prism")


def prism_binary() -> str:
    """The cached binary of the installed Beam's release; PrismError (run setup) when it is not there."""
    from apache_beam.version import __version__

    path = os.path.join(cache_dir(), f"prism-v{__version__}")
    if not os.access(path, os.X_OK):
        raise PrismError(f"Beam's Prism runner v{__version__} is not built in {cache_dir()}: run "
                         f"./run_local.sh prism setup")
    return path


def prism_args(beam_args: list[str]) -> list[str]:
    """``beam_args`` of a PrismRunner run with the cached binary, unless ``--prism_location`` names a local one
    (a URL would be downloaded at run time: refused)."""
    from pipelines.flink import _given

    args = list(beam_args)
    given = _given(args, "--prism_location")
    if given is None:
        return args + ["--prism_location", prism_binary()]
    if not os.path.isfile(given):
        raise PrismError(f"--prism_location {given}: no such file (leave it out for the binary "
                         f"./run_local.sh prism setup builds)")
    return args


def refuse_live(beam_args: list[str]) -> None:
    """``peloton live --runner PrismRunner``: one line, before anything starts. Prism (2.77) implements no
    Pub/Sub read (``beam:transform:pubsub_read:v1``: "unsupported feature"), and on the live graph fed by a
    TestStream it lost final rows in some runs (BENCHMARKS.md, "Prism (issue 27)")."""
    from pipelines.flink import _given

    if (_given(list(beam_args), "--runner") or "").split(".")[-1] == "PrismRunner":
        raise PrismError("peloton live does not run on Prism: it cannot read Pub/Sub "
                         "(beam:transform:pubsub_read:v1 is not implemented in Prism); leave out --runner for "
                         "the local runner, or use Dataflow")
