#!/usr/bin/env bash
# peloton, locally. Creates its own virtualenv (.venv) on first use.
#
#   ./run_local.sh            replay the shipped stage 4 recording, print a summary and the accuracy,
#                             write its HTML report and print its path
#   ./run_local.sh test       run the fast test suite (a few minutes): every test not marked slow, emulator, browser
#                             or realtime
#   ./run_local.sh test-all   run the whole suite, as CI does (installs Debian's chromium for the page tests when
#                             root): all but the realtime tests on PELOTON_TEST_WORKERS (default 4) pytest-xdist
#                             workers, then the realtime ones two at a time
#   ./run_local.sh lock       upgrade constraints.txt to the newest versions setup.py allows, if the whole suite
#                             passes on them; says what changed
#   ./run_local.sh live [MIN] rehearse a live stage: the Pub/Sub emulator, 'peloton live', and MIN minutes
#                             (default 3) of stage 4 published at real speed; tables in out/live04
#   ./run_local.sh bench      run the benchmarks (see BENCHMARKS.md)
#   ./run_local.sh flink setup|start|stop|status
#                             a local Flink session cluster (JobManager + 2 TaskManagers, web UI on
#                             localhost:8081) for 'peloton replay --runner FlinkRunner'; setup fetches Flink and
#                             Beam's Flink job server once into ~/.cache/peloton/flink (README, "Flink")
#   ./run_local.sh prism setup|path
#                             build Beam's Prism runner once from the Go module proxy into ~/.cache/peloton/prism,
#                             for '--runner PrismRunner' (README, "Prism"); path prints the binary
set -euo pipefail
cd "$(dirname "$0")"

VENV=${PELOTON_VENV:-.venv}
PYTHON=${PYTHON:-python3}
DATA=${PELOTON_DATA:-../shared/data}

install() {  # install(VENV, pip args...): quiet, its log kept in VENV/install.log and shown only if it fails
  local venv=$1; shift
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check "$@" >"$venv/install.log" 2>&1; then
    cat "$venv/install.log" >&2
    echo "run_local.sh: installing into $venv failed (log above, and in $venv/install.log)" >&2
    exit 1
  fi
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtualenv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
  fi
  # exactly the versions the project is tested with (constraints.txt); again when the package or the lock changed
  if [ ! -f "$VENV/.installed" ] || [ setup.py -nt "$VENV/.installed" ] || [ constraints.txt -nt "$VENV/.installed" ]; then
    echo "installing peloton and its locked dependencies (constraints.txt) into $VENV" >&2
    install "$VENV" --upgrade pip
    install "$VENV" -c constraints.txt -e ".[test]"
    touch "$VENV/.installed"
  fi
}

lock() {
  # the newest versions setup.py allows, in a venv of their own; the lock changes only if the whole suite passes
  local venv="$VENV-lock" new
  new=$(mktemp)
  rm -rf "$venv"
  echo "resolving the newest versions setup.py allows, in $venv" >&2
  "$PYTHON" -m venv "$venv"
  install "$venv" --upgrade pip
  install "$venv" -e ".[test]"
  { sed -n '1,2p' constraints.txt; "$venv/bin/python" -m pip freeze --exclude-editable | LC_ALL=C sort -f; } > "$new"
  "$venv/bin/python" - constraints.txt "$new" <<'PY'
import sys
def pins(path):
    return dict(line.strip().split("==", 1) for line in open(path) if "==" in line and not line.startswith("#"))
old, new = pins(sys.argv[1]), pins(sys.argv[2])
changed = [f"  {n}: {old.get(n, '-')} -> {new.get(n, '-')}" for n in sorted(set(old) | set(new), key=str.lower)
           if old.get(n) != new.get(n)]
print(f"{len(changed)} of {len(new)} locked packages would change" + (":" if changed else ""))
print("\n".join(changed))
PY
  if cmp -s "$new" constraints.txt; then
    echo "constraints.txt is up to date"; rm -f "$new"; rm -rf "$venv"; return 0
  fi
  echo "running the whole suite on the new versions" >&2
  if PELOTON_VENV="$venv" "$0" test-all --no-install "$@"; then
    mv "$new" constraints.txt
    rm -rf "$venv"
    echo "the suite passed: constraints.txt updated (commit it; ./run_local.sh reinstalls from it)"
  else
    rm -f "$new"
    echo "run_local.sh lock: the suite failed on the new versions: constraints.txt unchanged ($venv kept to look into)" >&2
    return 1
  fi
}

browser() {
  # the page tests drive Debian's chromium through its chromedriver: no browser download at run time
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver (Debian packages) for the page tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "the page tests need chromium and chromium-driver: sudo apt-get install chromium chromium-driver" >&2
  fi
}

cmd=${1:-replay}
[ $# -gt 0 ] && shift
case "$cmd" in
  replay)
    setup
    recording="$DATA/racecenter-2026/2026-07-07.json.gz"
    out=${OUT:-out/stage04}
    rm -rf "$out"
    "$VENV/bin/peloton" replay "$recording" --out "$out" "$@"
    echo
    echo "accuracy against the official feed (kmToFinish, secToFirstRider):"
    "$VENV/bin/peloton" evaluate "$recording" "$out"
    echo
    echo "tables: $out/{rider_state,groups,race_events,virtual_standings,predictions,climb_efforts,results,classifications,dead_letter}/*.avro"
    "$VENV/bin/peloton" report "$out"
    echo "open the report: $out/report.html"
    ;;
  test)
    setup
    exec "$VENV/bin/python" -m pytest tests -m "not (slow or emulator or browser or realtime)" -n 2 "$@"
    ;;
  test-all)
    if [ "${1:-}" = "--no-install" ]; then shift; else setup; fi
    browser
    # first everything but the wall-clock tests, overlapped; then those, so that no deadline of theirs (the
    # emulator's answer, a stop within 2 s, a feed at real speed) waits behind a CPU-bound test. They mostly wait
    # on the wall clock (a live stage at real speed uses ~15 % of a core), so they overlap six at a time, one test
    # to a worker at a time and the longest first, one to a worker (tests/conftest.py orders them)
    status=0
    "$VENV/bin/python" -m pytest tests -n "${PELOTON_TEST_WORKERS:-4}" -m "not realtime" "$@" || status=$?
    "$VENV/bin/python" -m pytest tests -n "${PELOTON_REALTIME_WORKERS:-6}" --maxschedchunk 1 -m realtime "$@" \
      || status=$((status ? status : $?))
    exit "$status"
    ;;
  lock)
    lock "$@"
    ;;
  live)
    minutes=${1:-3}
    if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$((10#$minutes))" -lt 1 ]; then
      echo "run_local.sh: error: MINUTES must be a whole number of minutes, 1 or more (got '$minutes'):" \
        "./run_local.sh live [MINUTES] [peloton live options]" >&2
      exit 2
    fi
    minutes=$((10#$minutes))
    [ $# -gt 0 ] && shift
    setup
    recording="$DATA/racecenter-2026/2026-07-07.json.gz"
    out=${OUT:-out/live04}
    rm -rf "$out"
    mkdir -p "$out"
    started_here=""
    if [ -z "${PUBSUB_EMULATOR_HOST:-}" ]; then
      PUBSUB_EMULATOR_HOST=$(scripts/pubsub_emulator.sh start)
      export PUBSUB_EMULATOR_HOST
      started_here=1
    fi
    P=projects/peloton-local
    live_pid=""
    cleanup() {
      [ -n "$live_pid" ] && kill "$live_pid" 2>/dev/null || true
      [ -n "$started_here" ] && scripts/pubsub_emulator.sh stop || true
    }
    trap cleanup EXIT
    run=$(date +%s)
    "$VENV/bin/peloton" -q pubsub init --topic "$P/topics/stage04-$run" --subscription "$P/subscriptions/stage04-$run" \
      --output-topic-prefix "$P/topics/stage04-$run-out"
    "$VENV/bin/peloton" stage export "$recording" > "$out/stage.json"
    echo "watch it: $VENV/bin/peloton serve --stage $out/stage.json --output-topic-prefix $P/topics/stage04-$run-out" \
      "(PUBSUB_EMULATOR_HOST=$PUBSUB_EMULATOR_HOST), then open http://127.0.0.1:8080/" >&2
    # lateness 30 s: final rows 36 s after their tick; the run ends a minute after the last tick
    "$VENV/bin/peloton" live --subscription "$P/subscriptions/stage04-$run" --stage "$out/stage.json" \
      --out "$out" --output-topic-prefix "$P/topics/stage04-$run-out" --allowed-lateness-s 30 --avro-flush-s 20 \
      --duration-s $((minutes * 60 + 75)) "$@" &
    live_pid=$!
    sleep 10
    # an hour into the stage, event times moved to now, with the faults of a real feed
    "$VENV/bin/peloton" publish "$recording" --topic "$P/topics/stage04-$run" --speed 1 --shift-to-now \
      --start-s 3600 --duration-s $((minutes * 60)) --duplicate-rate 0.05 --disorder-s 10 --malformed-rate 0.01
    wait "$live_pid" || true
    live_pid=""
    echo
    echo "tables: $out/{rider_state,groups,predictions,race_events,results,virtual_standings,climb_efforts,dead_letter}/*.avro (final rows, a file every 20 s)"
    echo "topics: $P/topics/stage04-$run-out-{rider-state,groups,predictions,race-events,results,virtual-standings,climb-efforts,dead-letter}" \
      "(rider-state, groups, predictions: provisional and final rows; the others final only)"
    ;;
  bench)
    setup
    exec "$VENV/bin/python" benchmarks/run_all.py "$@"
    ;;
  flink)
    sub=${1:-}
    [ $# -gt 0 ] && shift
    case "$sub" in
      setup|start) setup; PELOTON_VENV=$VENV exec scripts/flink.sh "$sub" "$@" ;;
      stop|status|jar) exec scripts/flink.sh "$sub" "$@" ;;
      *) echo "usage: $0 flink setup|start [PORT [RPC_PORT]]|stop|status" >&2; exit 2 ;;
    esac
    ;;
  prism)
    sub=${1:-}
    [ $# -gt 0 ] && shift
    case "$sub" in
      setup|path) setup; PELOTON_VENV=$VENV exec scripts/prism.sh "$sub" "$@" ;;
      *) echo "usage: $0 prism setup|path" >&2; exit 2 ;;
    esac
    ;;
  *)
    echo "usage: $0 [replay|test|test-all|live|bench|lock|flink|prism] [args...]" >&2
    exit 2
    ;;
esac
