"""peloton simulate: a race on a real course (or a tour over several), a feed recording and its truth."""
from __future__ import annotations

import logging
import os
import time

from pipelines.commands.common import CliError, check_out_folder, check_output_file, number

__all__ = ["add", "run"]

log = logging.getLogger("peloton")

#: The reference data beside the project (../shared/data), for ``simulate --stages``.
_SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared", "data")


def add(sub) -> None:
    sim = sub.add_parser("simulate", help="simulate a race on a real course: a feed recording and its truth")
    sim.add_argument("--course", help="course file (GeoJSON or GPX, with elevation if possible)")
    sim.add_argument("--out", required=True, help="recording to write (*.json or *.json.gz); the truth goes "
                                                  "beside it as *.truth.json(.gz). A tour: a folder")
    sim.add_argument("--stages", help="a tour: the same riders over these courses (YEAR-NN,...: e.g. "
                                      "2022-03,2022-04), one recording per stage and the truth of every "
                                      "classification in --out DIR")
    sim.add_argument("--tour", type=number(int, low=1900, high=2100), help="a tour of YEAR's courses, with "
                                                                            "--first N --count K")
    sim.add_argument("--first", type=number(int, low=1, high=30), default=1)
    sim.add_argument("--count", type=number(int, low=1, high=30), default=3)
    sim.add_argument("--courses", default=os.path.join(_SHARED, "courses-tdf-2022-2024"),
                     help="folder of YEAR/NN/trace_YEAR_N.geojson courses (default ../shared/data/...)")
    sim.add_argument("--climbs", default=os.path.join(_SHARED, "climbs"),
                     help="folder of climbs (GPX) whose summits are categorised where a course passes them")
    sim.add_argument("--riders", type=number(int, low=2, high=5000), default=176)
    sim.add_argument("--hz", type=number(low=0.01, high=10), default=1 / 6,
                     help="feed ticks per second (default one every 6 s)")
    sim.add_argument("--seed", type=number(int, low=0, high=2**32 - 1), default=0)
    sim.add_argument("--caught", choices=("yes", "no", "random"), default="random",
                     help="whether the breakaway is caught (default: drawn from the seed; with --finale sprint, caught)")
    sim.add_argument("--finale", choices=("steady", "sprint"), default="steady",
                     help="sprint: the bunch chases the breakaway down, rides a lead-out and sprints (in a tour: on "
                          "its flat stages); steady (default): tempo to the line")
    sim.set_defaults(func=run)


def run_tour(args) -> int:
    from peloton.sim.simulate import TourSimError, simulate_tour, tour_stage_ids

    if args.course or (args.stages and args.tour):
        raise CliError("give one of --course FILE, --stages LIST or --tour YEAR")
    ids = [x.strip() for x in args.stages.split(",") if x.strip()] if args.stages else \
        tour_stage_ids(args.tour, args.first, args.count)
    check_out_folder(args.out, "--out")
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    try:
        paths = simulate_tour(ids, args.out, args.courses, args.climbs, riders=args.riders, seed=args.seed,
                              hz=args.hz, say=(lambda line: None) if args.quiet else print, finale=args.finale)
    except TourSimError as exc:
        raise CliError(str(exc)) from None
    print(f"simulated {len(paths)} stages of {args.riders} riders in {time.perf_counter() - started:.0f} s -> "
          f"{args.out} (replay them with 'peloton tour {args.out} --out OUT')")
    return 0


def run(args, _beam_args) -> int:
    if args.stages or args.tour:
        return run_tour(args)
    if not args.course:
        raise CliError("give --course FILE (one stage), or --stages LIST / --tour YEAR (a tour into --out DIR)")
    import gzip
    import json

    from peloton.ingest.recording import read_text
    from peloton.match.course import Course
    from peloton.match.stage import parse_course_text
    from peloton.sim.simulate import SimParams, recording_document, simulate_race, truth_document, truth_path

    if args.riders < 2 or args.riders > 5000:
        raise CliError("--riders must be between 2 and 5000")
    if not 0.01 <= args.hz <= 10:
        raise CliError("--hz must be between 0.01 and 10 ticks per second")
    for path in (args.out, truth_path(args.out)):  # before the minutes of simulation, not after
        check_output_file(path, "--out")
    route = parse_course_text(read_text(args.course), args.course)  # gzipped or not
    course = Course([p[0] for p in route], [p[1] for p in route],
                    [p[2] if p[2] is not None else float("nan") for p in route])
    caught = None if args.caught == "random" else args.caught == "yes"
    params = SimParams(riders=args.riders, hz=args.hz, seed=args.seed, caught=caught, finale=args.finale)
    started = time.perf_counter()
    log.info("simulating %d riders on %s (%.1f km)", args.riders, args.course, course.length_m / 1000)
    race = simulate_race(course, params)
    log.info("raced %.2f h in %.1f s; writing %s", (race.tick_t[-1] - race.tick_t[0]) / 3600,
             time.perf_counter() - started, args.out)
    name = os.path.basename(args.course).rsplit(".", 1)[0]
    for path, doc in ((args.out, recording_document(race, name)), (truth_path(args.out), truth_document(race))):
        data = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        with open(path, "wb") as fh:
            fh.write(gzip.compress(data, 6) if path.endswith(".gz") else data)
    story = ("caught at " + time.strftime("%H:%M:%S", time.gmtime(race.caught_at))) if race.caught_at else "survived"
    print(f"simulated {args.riders} riders, {race.tick_t.size:,} ticks of {1 / args.hz:g} s over "
          f"{course.length_m / 1000:.1f} km in {time.perf_counter() - started:.1f} s")
    print(f"  breakaway {race.breakaway}: {story}; stops {[b for b, _, _ in race.stops]}; "
          f"wind {race.wind_kph:.0f} km/h from {race.wind_from_deg:.0f} deg")
    print(f"  recording -> {args.out}")
    print(f"  truth     -> {truth_path(args.out)}")
    return 0
