"""Prism against the local runner on the live graph (issue 27): the graph of tests/test_live_pipeline.py (IngestLive +
LiveRaceState: state, watermark timers) fed by a TestStream of 30 ticks of stage 4 with duplicates, disorder and
malformed messages; prints per table the rows against the causal replay's and how many are identical.

    .venv/bin/python benchmarks/prism_live.py                           # the local runner
    LIVE_RUNNER=PrismRunner .venv/bin/python benchmarks/prism_live.py   # Prism (./run_local.sh prism setup)
"""
import gzip, json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import apache_beam.testing.test_pipeline as tp
from apache_beam.options.pipeline_options import PipelineOptions
import tests.test_live_pipeline as m
from tests.conftest import STAGE4, slice_recording
from tests.helpers import canonical_rows
from peloton.match.stage import stage_from_recording
from peloton.sim.publish import PlanParams, plan_messages

RUNNER = os.environ.get("LIVE_RUNNER", "")
if RUNNER == "PrismRunner":
    from pipelines.prism import prism_binary
    class P(tp.TestPipeline):
        def __init__(self, options=None, **kw):
            super().__init__(options=PipelineOptions(["--runner", "PrismRunner", "--prism_location",
                                                      prism_binary(), "--streaming"]), **kw)
    m.TestPipeline = P
rec = json.load(gzip.open(STAGE4, "rt"))
stage = stage_from_recording(rec); course = stage.course()
text = json.dumps(slice_recording(rec, 700, 730))
faults = os.environ.get("FAULTS", "1") == "1"
plan = plan_messages(text, stage.stage_id, PlanParams(duplicate_rate=0.1, disorder_s=30.0, malformed_rate=0.05, seed=6)
                     if faults else PlanParams(duplicate_rate=0.0, disorder_s=0.0, malformed_rate=0.0, seed=6))
first = min(int(x.attributes["event_time"]) for x in plan) / 1000
t = time.perf_counter()
out = m._run(m._stream(plan, first, lag_s=5.0), stage)
wall = time.perf_counter() - t
exp = m._causal_rows(text, stage, course)
for table in m.TABLES:
    a = canonical_rows(out[table]); b = canonical_rows(getattr(exp, table).to_rows())
    print(f"{RUNNER or 'local'} faults={faults} {table}: live {len(a)} causal {len(b)} identical {a == b} "
          f"in common {len(set(a) & set(b))}")
print(f"provisional {len(out['provisional'])} dead {len(out['dead'])} wall {wall:.1f} s")
