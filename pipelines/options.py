"""Pipeline options: what an operator sets, as Beam ``PipelineOptions``."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

__all__ = ["ReplayOptions"]


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
