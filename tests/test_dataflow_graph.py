"""The live and replay graphs as the managed runner gets them: built with DataflowRunner options, not submitted.

Turning a graph into its runner proto pickles every DoFn (what a worker
receives), so a DoFn holding something unpicklable fails here; labels must
be unique and the same on every build, or a running job cannot be updated.
"""
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import pytest

from pipelines.live import build_live
from pipelines.replay import build_replay
from transforms.live import FeedSecurity

pytestmark = [pytest.mark.slow]

DATAFLOW = ["--runner=DataflowRunner", "--project=peloton-prod", "--region=europe-west1",
            "--temp_location=gs://peloton-prod-dataflow/tmp", "--staging_location=gs://peloton-prod-dataflow/staging",
            "--enable_streaming_engine", "--dry_run=True"]  # dry run: Beam skips its online bucket checks


def _labels(build, streaming):
    pipeline = beam.Pipeline(options=PipelineOptions(DATAFLOW + (["--streaming"] if streaming else [])))
    build(pipeline)
    proto = pipeline.to_runner_api()
    return [t.unique_name for t in proto.components.transforms.values()]


def _live(stage):
    return lambda p: build_live(p, stage, "projects/peloton-prod/subscriptions/stage04", out_dir="gs://peloton-race/live",
                                topic_prefix="projects/peloton-prod/topics/stage04", bigquery_dataset="peloton-prod:race",
                                bigquery_method="STREAMING_INSERTS", id_label="message_id",
                                security=FeedSecurity(authenticate=True))


def test_the_live_graph_builds_and_pickles_for_dataflow_with_stable_unique_labels(stage4):
    labels = _labels(_live(stage4), streaming=True)
    assert len(labels) == len(set(labels)) > 40
    assert labels == _labels(_live(stage4), streaming=True)
    assert any("ReadPubSub" in name for name in labels) and any("BigQuery" in name for name in labels)


def test_the_replay_graph_builds_and_pickles_for_dataflow(stage4):
    def build(causal):
        return lambda p: build_replay(p, stage4, "gs://peloton-race/recordings/2026-07-07.json.gz",
                                      "gs://peloton-race/replays/2026-07-07", bigquery_dataset="peloton-prod:race",
                                      causal=causal, write_fixes=causal)
    labels = _labels(build(False), streaming=False)
    assert len(labels) == len(set(labels)) > 20 and any("BigQuery_rider_state" in name for name in labels)
    assert labels == _labels(build(False), streaming=False)
    # the causal replay with the parsed fixes: every type hint between its steps checked as it is built
    labels = _labels(build(True), streaming=False)
    assert any("BigQuery_tracker_fix" in name for name in labels) and any("FixColumns" in name for name in labels)
