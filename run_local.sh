#!/usr/bin/env bash
# peloton, locally. Creates its own virtualenv (.venv) on first use.
#
#   ./run_local.sh            replay the shipped stage 4 recording, print a summary and the accuracy
#   ./run_local.sh test       run the whole test suite
#   ./run_local.sh bench      run the benchmarks (see BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")"

VENV=${PELOTON_VENV:-.venv}
PYTHON=${PYTHON:-python3}
DATA=${PELOTON_DATA:-../shared/data}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtualenv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
  fi
  # reinstall when the package definition changed
  if [ ! -f "$VENV/.installed" ] || [ setup.py -nt "$VENV/.installed" ]; then
    echo "installing peloton and its dependencies into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
    touch "$VENV/.installed"
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
    echo "tables: $out/{rider_state,groups,race_events,virtual_standings,dead_letter}/*.avro"
    ;;
  test)
    setup
    exec "$VENV/bin/python" -m pytest tests "$@"
    ;;
  bench)
    setup
    exec "$VENV/bin/python" benchmarks/run_all.py "$@"
    ;;
  *)
    echo "usage: $0 [replay|test|bench] [args...]" >&2
    exit 2
    ;;
esac
