#!/usr/bin/env bash
# Interleaved A/B of the c=256 client ceiling (the experiment of `scripts/bench.sh ceiling`):
# one instant simulator on core 0, OLD and NEW alternated six times on core 1, because
# day-to-day variance here is larger than most changes. Build OLD in a worktree, e.g.
#   git worktree add /tmp/oldwt <commit> && (cd /tmp/oldwt && CARGO_TARGET_DIR=/tmp/oldtarget cargo build --release)
#   scripts/ab.sh /tmp/oldtarget/release/llm-inf-bench
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d)
NEW=${2:-target/release/llm-inf-bench}
OLD=${1:?usage: scripts/ab.sh OLD_BINARY [NEW_BINARY]}
PORT=18655
taskset -c 0 $NEW serve-sim --profile instant --port $PORT --model m --startup-delay 0s >/dev/null 2>&1 &
SIM=$!
trap 'kill $SIM; rm -rf "$OUT"' EXIT
sleep 1
cat > "$OUT/c256.yaml" <<YAML
name: c256
model: { id: m }
infrastructure: { provider: existing, base_url: "http://127.0.0.1:$PORT" }
output: { dir: $OUT/results, detail: full }
workload:
  concurrency: 256
  requests: 20000
  dataset: { kind: random, input_len: 16, output_len: 128 }
  ignore_eos: true
YAML
for rep in 1 2 3 4 5 6; do
  for which in old new; do
    B=$OLD; [ $which = new ] && B=$NEW
    rm -rf "$OUT/results"
    /usr/bin/time -f "%U %S %M" -o "$OUT/t" taskset -c 1 $B run "$OUT/c256.yaml" --client-cores 1 --json --yes >/dev/null 2>"$OUT/err" || { cat "$OUT/err"; exit 1; }
    f=$(ls "$OUT"/results/*.json | head -1)
    python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; u,sy,m=open(sys.argv[3]).read().split(); print(sys.argv[2], round(s['request_throughput']), round(s['output_throughput']), 'cpu', round(float(u)+float(sy),2), 'rss', int(m)//1024)" "$f" $which "$OUT/t"
  done
done
