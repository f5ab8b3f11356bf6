#!/usr/bin/env bash
# Interleaved A/B of the client ceiling: one instant simulator on core 0 (0 ms TTFT and ITL,
# 128-token answers), OLD and NEW alternated on core 1 (`--client-cores 1`), because
# day-to-day variance here is larger than most changes. Two cases, c = 256, 20 000 requests:
#   plain: chat, random 16-token prompts (calibrated lengths)
#   exact: completions, prompts of exactly 32 tokens by `model.tokenizer` — what users run
#          when they want exact lengths; the case where prompt making costs the most
# req/s is the server's own count of finished requests (its /metrics) over the client's
# window, beside the client's figure.
#   scripts/ab.sh [--reps N] OLD [OLDER…] [.]
# Each: a binary, or a commit (built once, release, in a worktree under /tmp); `.` (the
# default last one) is this checkout's release build. All are alternated, N rounds (6).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d)
PORT=18655
REPS=6
if [ "${1:-}" = --reps ]; then REPS=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: scripts/ab.sh [--reps N] OLD [OLDER…] [.]"; exit 2; }

binary() { # commit-or-path -> path of a release binary
  if [ -x "$1" ]; then echo "$1"; return; fi
  local sha
  sha=$(git rev-parse --short "$1")
  local wt=/tmp/llmib-ab-wt-$sha tgt=/tmp/llmib-ab-target-$sha
  [ -d "$wt" ] || git worktree add -f "$wt" "$sha" >/dev/null 2>&1
  (cd "$wt" && CARGO_TARGET_DIR=$tgt cargo build --release --quiet) >&2
  echo "$tgt/release/llm-inf-bench"
}

cargo build --release --quiet
ARGS=("$@")
[ "${ARGS[-1]}" = . ] || ARGS+=(.)
BINS=()
for a in "${ARGS[@]}"; do
  if [ "$a" = . ]; then BINS+=(target/release/llm-inf-bench); else BINS+=("$(binary "$a")"); fi
done
NEW=target/release/llm-inf-bench

# The model's tokenizer: the tiny model the real-vLLM tests serve, when this machine has it;
# else a word-level tokenizer over the prompt words (every word one token, BOS added).
TOK=${LLMIB_CACHE_DIR:-$HOME/.cache/llm-inf-bench}/real-vllm/tiny-llama/chat/tokenizer.json
if [ ! -f "$TOK" ]; then
  TOK=$OUT/tokenizer.json
  python3 - "$TOK" <<'PY'
import json, re, sys
words = re.findall(r'^\s+"([a-z]+)",$', open("src/workload/dataset.rs").read(), re.M)
vocab = {"[UNK]": 0, "<s>": 1}
for w in words:
    vocab.setdefault(w, len(vocab))
json.dump({"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
  "pre_tokenizer": {"type": "Whitespace"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}}, open(sys.argv[1], "w"))
PY
fi

taskset -c 0 "$NEW" serve-sim --profile instant --port $PORT --model m --startup-delay 0s >/dev/null 2>&1 &
SIM=$!
trap 'kill $SIM; rm -rf "$OUT"' EXIT
for _ in $(seq 50); do curl -fs localhost:$PORT/health >/dev/null 2>&1 && break; sleep 0.1; done

exp() { # name api input_len tokenizer-line
  cat > "$OUT/$1.yaml" <<YAML
name: $1
model: { id: m $4 }
infrastructure: { provider: existing, base_url: "http://127.0.0.1:$PORT" }
output: { dir: $OUT/results, detail: full }
workload:
  api: $2
  concurrency: 256
  requests: 20000
  dataset: { kind: random, input_len: $3, output_len: 128 }
  ignore_eos: true
YAML
}
exp plain chat 16 ""
exp exact completions 32 ", tokenizer: $TOK"

served() { curl -fs localhost:$PORT/metrics | awk '/^vllm:request_success_total/ {s += $2} END {print s + 0}'; }

echo "case which server_req/s client_req/s client_cpu_s peak_rss_MiB"
for case in exact plain; do
  for rep in $(seq "$REPS"); do
    for i in "${!BINS[@]}"; do
      B=${BINS[$i]} which=${ARGS[$i]}
      rm -rf "$OUT/results"
      before=$(served)
      /usr/bin/time -f "%U %S %M" -o "$OUT/t" taskset -c 1 "$B" run "$OUT/$case.yaml" --client-cores 1 --json --yes >/dev/null 2>"$OUT/err" || { cat "$OUT/err"; exit 1; }
      after=$(served)
      f=$(ls "$OUT"/results/*.json | head -1)
      python3 - "$f" "$case" "$which" "$OUT/t" "$before" "$after" <<'PY'
import json, sys
f, case, which, t, before, after = sys.argv[1:]
d = json.load(open(f)); s = d["summary"]
u, sy, m = open(t).read().split()
server = (float(after) - float(before) - 1) / s["duration_s"]  # less the pre-flight request
print(case, which, round(server), round(s["request_throughput"]), round(float(u) + float(sy), 2), int(m) // 1024)
PY
    done
  done
done
