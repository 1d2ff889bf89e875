"""The contract: the tables registry, the windowing spec and the event-time conversions, as the graphs use them."""
import datetime as dt

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from peloton.ingest import eventtime
from peloton.ingest.windowing import Windowing
from peloton.output.schemas import field_names
from peloton.output.tables import CAUSAL, LIVE, REPLAY, TABLES, drawn, table_of, written_by
from peloton.sim.publish import shift_to_now
from peloton.state.engine import EngineParams
from pipelines.live import build_live
from pipelines.pubsub import output_topic
from pipelines.replay import build_replay
from pipelines.serve import SERVED_TABLES


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_every_registered_table_has_its_schema_and_its_key_and_clustering_are_fields_of_it(table):
    names = field_names(table.name)
    assert "event_time" in names and "stage_id" in names
    assert set(table.key) <= set(names) and set(table.clustering) <= set(names)
    assert table.clustering[0] == "stage_id"
    assert output_topic("projects/p/topics/s04", table.name) == f"projects/p/topics/s04-{table.name.replace('_', '-')}"


def test_an_unknown_table_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="unknown table"):
        table_of("rider_sate")


def test_the_causal_replay_writes_what_the_live_pipeline_writes_and_the_page_serves_only_live_tables():
    assert written_by(CAUSAL) == written_by(LIVE)
    assert set(written_by(LIVE)) <= set(written_by(REPLAY))
    assert set(SERVED_TABLES) == set(drawn(LIVE)) and set(SERVED_TABLES) <= set(written_by(LIVE))
    assert "tracker_fix" not in written_by(REPLAY) and "tracker_fix" in written_by(REPLAY, on_request=True)


def test_each_graph_writes_exactly_the_tables_the_registry_gives_its_pipeline(stage4):
    replay, causal, live = (beam.Pipeline(options=PipelineOptions([], streaming=s)) for s in (False, False, True))
    assert set(build_replay(replay, stage4, "unused.json.gz", "/tmp/unused")) == set(written_by(REPLAY))
    assert set(build_replay(causal, stage4, "unused.json.gz", "/tmp/unused", causal=True,
                            write_fixes=True)) == set(written_by(CAUSAL, on_request=True))
    assert set(build_live(live, stage4, "projects/peloton-test/subscriptions/stage04",
                          out_dir="/tmp/unused")) == set(written_by(LIVE))


def test_the_windowing_spec_sets_the_settle_time_the_engine_windows_and_the_publish_shift():
    spec = Windowing(window_s=10.0, allowed_lateness_s=60.0)
    assert spec.settle_s == 70.0 and EngineParams.on(spec).window_s == 10.0
    assert spec.whole_windows(-25.0) == -30.0 and spec.nearest_windows(26.0) == 30.0
    shift = shift_to_now(1000.0, 1600.0, 1.0, 5003.0, step_s=spec.window_s)
    assert shift % 10.0 == 0 and 1000.0 + shift <= 5003.0 < 1000.0 + shift + 10.0


def test_event_time_survives_every_form_it_takes():
    t = 1783436123.4567  # a fix of stage 4, in epoch seconds
    attribute = eventtime.attribute(t)
    assert attribute == "1783436123457" and eventtime.from_attribute({"event_time": attribute}) == 1783436123.457
    assert eventtime.from_attribute({"event_time": "12"}) is None and eventtime.from_attribute({}) is None
    assert eventtime.ms_array(np.array([t]))[0] == eventtime.ms(t) == 1783436123457
    as_avro = dt.datetime.fromtimestamp(eventtime.seconds(eventtime.ms(t)), tz=dt.timezone.utc)
    assert eventtime.row_ms(as_avro) == 1783436123457 and eventtime.row_ms(None) is None
    assert eventtime.beam_timestamp(eventtime.ms(t)).micros == 1783436123457000
