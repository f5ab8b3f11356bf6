#!/usr/bin/env bash
# Stoplight Prism serving RunPod's own OpenAPI document, for tests/runpod_contract.rs.
#   scripts/prism.sh start   # installs (once, from npm, pinned), starts a mock and a dynamic mock
#   scripts/prism.sh stop
#   scripts/prism.sh env     # prints the LLMIB_PRISM_* variables to export
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=5.14.2
# Installed once per machine outside the checkout (as the real vLLM is): a fresh clone does not
# ask npm again.
CACHE=${LLMIB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-inf-bench}
DIR=${LLMIB_PRISM_DIR:-$CACHE/prism-$VERSION}
SPEC=${LLMIB_RUNPOD_SPEC:-../shared/reference/runpod-v2-openapi.json}
MOCK=4010
DYNAMIC=4011
BIN=$DIR/node_modules/.bin/prism

# npm once stalled for 12 minutes on one idle registry connection: each attempt is bounded,
# tried three times, into a scratch directory moved into place only when whole.
install() {
  [ -x "$BIN" ] && return 0
  mkdir -p "$(dirname "$DIR")"
  local tmp="$DIR.partial" ok=""
  for attempt in 1 2 3; do
    rm -rf "$tmp"; mkdir -p "$tmp"
    if (cd "$tmp" && timeout 300 npm install --silent --no-audit --no-fund --fetch-timeout=60000 \
        --fetch-retries=3 -E "@stoplight/prism-cli@$VERSION"); then ok=1; break; fi
    echo "npm install of Prism failed (attempt $attempt of 3)"
  done
  [ -n "$ok" ] || { echo "could not install Prism $VERSION from npm"; return 1; }
  rm -rf "$DIR"; mv "$tmp" "$DIR"
}

wait_up() { # port
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$1/v2/pods" && return 0
    sleep 0.2
  done
  echo "prism on port $1 did not come up:"; tail -20 "$DIR/prism-$1.log"; return 1
}

case "${1:-}" in
  start)
    install
    [ -f "$SPEC" ] || { echo "no RunPod document at $SPEC"; exit 1; }
    for mode in "$MOCK" "$DYNAMIC"; do
      extra=""; [ "$mode" = "$DYNAMIC" ] && extra="-d"
      setsid "$BIN" mock -h 127.0.0.1 -p "$mode" $extra "$SPEC" >"$DIR/prism-$mode.log" 2>&1 </dev/null &
      echo $! > "$DIR/prism-$mode.pid"
    done
    wait_up "$MOCK" && wait_up "$DYNAMIC"
    echo "prism mock on :$MOCK, dynamic mock on :$DYNAMIC (logs in $DIR)" ;;
  stop)
    for mode in "$MOCK" "$DYNAMIC"; do
      [ -f "$DIR/prism-$mode.pid" ] && { kill "$(cat "$DIR/prism-$mode.pid")" 2>/dev/null || true; rm -f "$DIR/prism-$mode.pid"; }
    done ;;
  env)
    echo "export LLMIB_PRISM_URL=http://127.0.0.1:$MOCK/v2"
    echo "export LLMIB_PRISM_DYNAMIC_URL=http://127.0.0.1:$DYNAMIC/v2"
    echo "export LLMIB_PRISM_BIN=$(cd "$(dirname "$BIN")" && pwd)/prism" ;;
  *) echo "usage: $0 start | stop | env"; exit 2 ;;
esac
