"""Pipeline options: what an operator sets, as Beam ``PipelineOptions``."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from peloton.state.groups import GroupParams

__all__ = ["ReplayOptions", "with_local_runner"]


class ReplayOptions(PipelineOptions):
    """Options of a replay of an archived stage."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--recording", help="official feed recording (*.json[.gz]) or flat CSV")
        parser.add_argument("--out", help="output folder: one sub-folder of Avro files per table")
        parser.add_argument("--course", default=None,
                            help="course file (GeoJSON LineString/MultiLineString or GPX) when the "
                                 "recording has no trace")
        parser.add_argument("--stage", default=None, help="stage file (JSON, from 'peloton stage export')")
        parser.add_argument("--write_fixes", "--write-fixes", dest="write_fixes", action="store_true",
                            default=False, help="also write the parsed fixes (table tracker_fix)")
        parser.add_argument("--group_gap_s", "--group-gap-s", dest="group_gap_s", type=float,
                            default=GroupParams.threshold_s,
                            help="a time gap of this many seconds starts a new group (1 s: the UCI rule)")
        parser.add_argument("--group_hysteresis_s", "--group-hysteresis-s", dest="group_hysteresis_s", type=float,
                            default=GroupParams.hysteresis_s,
                            help="riders who were together stay together up to gap + this")


def with_local_runner(beam_args: list[str], streaming: bool) -> list[str]:
    """``beam_args`` with the local runner named when no ``--runner`` is given.

    Beam's DirectRunner first tries its Prism runner, downloading the binary at every run (Beam 2.77), and falls
    back when it cannot: a batch replay to the FnApiRunner, a streaming pipeline to the BundleBasedDirectRunner
    (whose Pub/Sub read ``transforms/read_feed.py`` replaces). Named, those run at once: no run reaches for a
    download, and none moves silently to a runner this project has not measured where the download would work.
    """
    if any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        return list(beam_args)
    return list(beam_args) + ["--runner", "BundleBasedDirectRunner" if streaming else "FnApiRunner"]
