#!/usr/bin/env bash
# The real Pub/Sub emulator on loopback, for tests and local live runs.
#
#   scripts/pubsub_emulator.sh start [PORT]   start it (default 8085) unless it already answers; prints the
#                                             PUBSUB_EMULATOR_HOST to export
#   scripts/pubsub_emulator.sh stop           stop the one this script started
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${2:-${PUBSUB_EMULATOR_PORT:-8085}}
HOST=127.0.0.1:$PORT
STATE=${PELOTON_EMULATOR_STATE:-.pubsub-emulator}
PROJECT=${PUBSUB_PROJECT_ID:-peloton-local}  # the emulator serves any project; this one is the default

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }  # something listens there

case "${1:-}" in
  start)
    if answers; then echo "$HOST"; exit 0; fi
    command -v gcloud >/dev/null || { echo "pubsub_emulator: gcloud not found (the Google Cloud CLI provides the emulator)" >&2; exit 1; }
    mkdir -p "$STATE/data"
    # setsid: the emulator outlives this script, in its own process group so stop can end it whole
    setsid gcloud beta emulators pubsub start --host-port="$HOST" --project="$PROJECT" \
      --data-dir="$STATE/data" >"$STATE/emulator.log" 2>&1 < /dev/null &
    echo $! > "$STATE/pid"
    for _ in $(seq 1 120); do
      if answers; then echo "$HOST"; exit 0; fi
      kill -0 "$(cat "$STATE/pid")" 2>/dev/null || break  # it died: no point waiting
      sleep 0.5
    done
    echo "pubsub_emulator: no answer on $HOST; log: $STATE/emulator.log" >&2
    tail -20 "$STATE/emulator.log" >&2 || true
    exit 1
    ;;
  stop)
    if [ -f "$STATE/pid" ]; then
      kill -- -"$(cat "$STATE/pid")" 2>/dev/null || true
      rm -f "$STATE/pid"
    fi
    ;;
  *)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
