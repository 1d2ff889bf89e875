"""CPU of the live ingest alone (IngestLive: gate, late split, dedup, tick windows) over a TestStream of stage 4.

    .venv/bin/python benchmarks/live_ingest.py [TICKS] [--per-fix]   # default 300 ticks (~53,500 fixes)

``--per-fix``: one message per rider fix (``peloton publish --per-fix``), ~180 a tick, instead of one per tick.

Run it from another tree's folder (PYTHONPATH is not needed: the working folder comes first) to compare two
versions; alternate them, the machine is noisy.
"""
import gzip, json, os, resource, sys, time
sys.path.insert(0, os.getcwd())
import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.io.gcp.pubsub import PubsubMessage
from tests.conftest import STAGE4, slice_recording
from peloton.match.stage import stage_from_recording
from peloton.sim.publish import PlanParams, plan_messages
from transforms.live import IngestLive, LiveParams, FeedSecurity
import transforms.live as L
args = sys.argv[1:]
PER_FIX = "--per-fix" in args
args = [a for a in args if a != "--per-fix"]
if len(args) > 1 or (args and not args[0].isdigit()):
    sys.exit("usage: live_ingest.py [TICKS] [--per-fix]")
N = int(args[0]) if args else 300
rec = json.load(gzip.open(STAGE4, "rt"))
stage = stage_from_recording(rec)
text = json.dumps(slice_recording(rec, 600, 600 + N))
plan = plan_messages(text, stage.stage_id, PlanParams(duplicate_rate=0.0, disorder_s=0.0, malformed_rate=0.0, seed=1, per_fix=PER_FIX))
msgs = [TimestampedValue(PubsubMessage(m.data, m.attributes), int(m.attributes["event_time"]) / 1000) for m in plan]
stream = TestStream()
STEP = 10 * (180 if PER_FIX else 1)  # ten ticks' messages per bundle and watermark step
for i in range(0, len(msgs), STEP):
    stream = stream.add_elements(msgs[i:i + STEP]).advance_watermark_to(msgs[min(i + STEP - 1, len(msgs) - 1)].timestamp)
stream = stream.advance_watermark_to_infinity()
def count(kv, path):
    with open(path, "a") as fh:
        fh.write(f"{len(kv[1])}\n")
def dead(cols, path):
    with open(path, "a") as fh:
        fh.write(f"{len(cols)}\n")
PATH = f"/tmp/ingest_count_{os.getpid()}"
c0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
with TestPipeline(options=StandardOptions(streaming=True)) as p:
    out = p | stream | IngestLive(stage.stage_id, LiveParams(), FeedSecurity(check_clock=False), stage.start_list())
    out["ticks"] | beam.Map(count, PATH)
    out["dead_letter"] | "D" >> beam.Map(dead, PATH + ".dead")
c1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
COUNT = [int(x) for x in open(PATH)] if os.path.exists(PATH) else []
DEAD = sum(int(x) for x in open(PATH + ".dead")) if os.path.exists(PATH + ".dead") else 0
print(f"{L.__file__}{' per fix' if PER_FIX else ''}: {len(msgs)} messages, {sum(COUNT)} fixes in {len(COUNT)} panes, {DEAD} dead: CPU {cpu:.1f} s, wall {time.perf_counter()-t0:.1f} s")
for leftover in (PATH, PATH + ".dead"):
    if os.path.exists(leftover):
        os.remove(leftover)
