#!/usr/bin/env bash
# Beam's Prism runner, built once from the Go module proxy, for 'peloton ... --runner PrismRunner' (issue 27).
#
#   scripts/prism.sh setup   build the prism binary of the installed Beam's version once into the cache
#                            (idempotent; the only step that downloads: Go modules, ~2 min on 2 cores)
#   scripts/prism.sh path    print the cached binary (exit 1, one line, when it is not built)
#
# Beam (Python) would otherwise download a prebuilt prism from its GitHub releases at every run of
# --runner PrismRunner (and DirectRunner); the CLI always hands it this binary (--prism_location) instead.
# Cache: $PELOTON_PRISM_CACHE (default ~/.cache/peloton/prism), one binary per Beam version: prism-vX.Y.Z.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${PELOTON_PRISM_CACHE:-$HOME/.cache/peloton/prism}
VENV=${PELOTON_VENV:-.venv}
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] && PYTHON=$VENV/bin/python

say() { echo "prism: $*" >&2; }

# the Beam version the project runs (constraints.txt pins it; Prism must be the same release as the SDK)
version() { "$PYTHON" -c 'import apache_beam; print("v" + apache_beam.__version__)'; }

binary() { echo "$CACHE/prism-$(version)"; }

setup() {
  local bin tmp
  bin=$(binary)
  if [ -x "$bin" ]; then return; fi
  command -v go >/dev/null || { say "go not found: Prism is built from the Go module proxy (Beam 2.77 needs Go 1.26 or later)"; exit 1; }
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.setup-XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  say "building Beam's Prism runner $(version) from the Go module proxy into $bin (once; ~2 min)"
  if ! GOBIN="$tmp" GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" \
      go install "github.com/apache/beam/sdks/v2/go/cmd/prism@$(version)" >"$tmp/go.log" 2>&1; then
    cat "$tmp/go.log" >&2
    say "building prism failed (log above)"
    exit 1
  fi
  mv "$tmp/prism" "$bin"
  say "built $bin ($(du -h "$bin" | cut -f1))"
}

case "${1:-}" in
  setup) setup ;;
  path)
    bin=$(binary)
    [ -x "$bin" ] || { say "not built: run ./run_local.sh prism setup"; exit 1; }
    echo "$bin"
    ;;
  *)
    echo "usage: $0 setup | path" >&2
    exit 2
    ;;
esac
