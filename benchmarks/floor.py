"""The speed floor: read, parse, map-match and derive race state with the kernels alone, no Beam.

    python benchmarks/floor.py RECORDING [--course FILE]

Same work as ``peloton replay`` (race state, predictions, climb efforts)
minus the pipeline and the sinks: what a replay could cost at best in this
process.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from peloton.ingest.feed import concat_batches, parse_message  # noqa: E402
from peloton.ingest.recording import iter_messages, read_local  # noqa: E402
from peloton.match.matching import match_fixes  # noqa: E402
from peloton.match.stage import resolve_stage  # noqa: E402
from peloton.predict.model import StageModel, forecast_race  # noqa: E402
from peloton.state.climbs import climb_efforts  # noqa: E402
from peloton.state.race import derive_race_state  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recording")
    ap.add_argument("--course")
    args = ap.parse_args()
    started = time.perf_counter()
    stage = resolve_stage(args.recording, args.course)
    course = stage.course()
    batches, letters = [], 0
    for kind, payload in iter_messages(read_local(args.recording)):
        fixes, dead = parse_message(stage.stage_id, kind, payload)
        batches.append(fixes)
        letters += len(dead)
    matched, rejected, dupes = match_fixes(concat_batches(batches, stage.stage_id), course)
    race = derive_race_state(matched, course.finish_km, stage.is_time_trial)
    f = matched.fixes
    model = StageModel.of_stage(stage, course)
    forecast = forecast_race(stage.stage_id, race.groups.to_rows(), model,
                             (f.t, f.bib, matched.km_to_finish, matched.speed_kph))
    on_course = np.isin(matched.quality, ("good", "off_route", "finished", "neutral"))
    efforts = climb_efforts(stage.stage_id, f.bib, f.t, matched.km, on_course, model.profile)
    print(f"floor: {len(matched)} matched, {letters + sum(len(b) for b, _, _ in rejected)} rejected, "
          f"{dupes} duplicates, {len(race.groups)} group rows, {len(race.events)} events, "
          f"{len(forecast.predictions)} predictions, {len(efforts)} climb efforts "
          f"in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
