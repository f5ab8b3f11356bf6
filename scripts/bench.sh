#!/usr/bin/env bash
# Client ceiling, timing truth and pacer lag, as recorded in BENCHMARKS.md.
# Server pinned to core 0, client to core 1 (needs 2 cores). Loopback only.
#   scripts/bench.sh [ceiling|truth|pacer|memory|longrun|tui|hostile|streams|readers|tables|apis|pooling|all]
# The exact-length ceiling against an older commit: scripts/ab.sh COMMIT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/llm-inf-bench
cargo build --release --quiet
OUT=$(mktemp -d)
PORT=18555
trap 'kill $SIM 2>/dev/null || true; rm -rf "$OUT"' EXIT

serve() { # profile [more serve-sim flags]
  kill ${SIM:-} 2>/dev/null || true; sleep 0.3
  local profile=$1; shift
  taskset -c 0 $BIN serve-sim --profile "$profile" --port $PORT --model m --startup-delay 0s "$@" >/dev/null 2>&1 &
  SIM=$!
  for _ in $(seq 50); do curl -fs localhost:$PORT/health >/dev/null 2>&1 && return; sleep 0.1; done
}

exp() { # name workload-yaml
  cat > "$OUT/$1.yaml" <<YAML
name: $1
model: { id: m }
infrastructure: { provider: existing, base_url: "http://127.0.0.1:$PORT" }
output: { dir: $OUT/results, detail: full }
workload:
$2
YAML
  echo "$OUT/$1.yaml"
}

run() { # yaml -> prints "wall user sys maxrss_kb" then the result path on the last line
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" taskset -c 1 $BIN run "$1" --client-cores 1 --json --yes >/dev/null 2>"$OUT/err" || { cat "$OUT/err"; exit 1; }
  cat "$OUT/time"; ls -t "$OUT"/results/*.json | head -1
}

ceiling() {
  serve instant
  echo "concurrency req/s out_tok/s ttft_p50_ms ttft_p99_ms cpu_s(user+sys) cpu_us_per_event reads_per_req maxrss_MiB"
  for c in 64 256 1024; do
    for rep in 1 2 3; do
      y=$(exp "c$c" "  concurrency: $c
  requests: 20000
  dataset: { kind: random, input_len: 16, output_len: 128 }
  ignore_eos: true")
      mapfile -t r < <(run "$y")
      python3 - "${r[1]}" $c ${r[0]} <<'PY'
import json, sys
f, c, wall, user, sys_, rss = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:7])
d = json.load(open(f)); s = d["summary"]
events = s["total_output_tokens"] + 2 * s["completed"]   # tokens + usage + [DONE]
print(c, round(s["request_throughput"]), round(s["output_throughput"]), round(s["median_ttft_ms"], 2),
      round(s["p99_ttft_ms"], 2), round(user + sys_, 2), round((user + sys_) * 1e6 / events, 3),
      round(d["client"]["reads_per_request"], 1), round(rss / 1024))
PY
      rm -f "$OUT"/results/*.json
    done
  done
}

apis() {
  # The ceiling per API (c=256, the ceiling experiment): chat, responses and messages
  # interleaved, 3 each. Messages cannot ask for ignore_eos: the simulator never ends early.
  serve instant --never-eos
  echo "api concurrency req/s out_tok/s ttft_p50_ms cpu_s(user+sys) cpu_us_per_token maxrss_MiB"
  for rep in 1 2 3; do
    for api in chat responses messages; do
      eos="ignore_eos: true"
      [ "$api" = messages ] && eos="ignore_eos: false"
      y=$(exp "$api" "  api: $api
  concurrency: 256
  requests: 20000
  dataset: { kind: random, input_len: 16, output_len: 128 }
  $eos")
      mapfile -t r < <(run "$y")
      python3 - "${r[1]}" $api ${r[0]} <<'PY'
import json, sys
f, api, wall, user, sys_, rss = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:7])
d = json.load(open(f)); s = d["summary"]
print(api, 256, round(s["request_throughput"]), round(s["output_throughput"]), round(s["median_ttft_ms"], 2),
      round(user + sys_, 2), round((user + sys_) * 1e6 / s["total_output_tokens"], 3), round(rss / 1024))
PY
      rm -f "$OUT"/results/*.json
    done
  done
}

pooling() {
  # The pooling APIs' ceiling (c=256, instant simulator): embeddings of 1 and of 16 texts per
  # request (each answer 256 floats per text, ~5.5 KB), rerank of 16 documents; 3 each,
  # interleaved. CPU per request and per text, and peak RSS.
  serve instant
  echo "api texts_per_req concurrency req/s texts/s e2el_p50_ms cpu_s(user+sys) cpu_us_per_req cpu_us_per_text maxrss_MiB"
  for rep in 1 2 3; do
    for c in "embeddings 1" "embeddings 16" "rerank 16"; do
      set -- $c
      y=$(exp "$1-$2" "  api: $1
  inputs_per_request: $2
  concurrency: 256
  requests: 20000
  dataset: { kind: random, input_len: 16, output_len: 1 }")
      mapfile -t r < <(run "$y")
      python3 - "${r[1]}" $1 $2 ${r[0]} <<'PY'
import json, sys
f, api, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
wall, user, sys_, rss = map(float, sys.argv[4:8])
d = json.load(open(f)); s = d["summary"]
cpu = user + sys_
print(api, k, 256, round(s["request_throughput"]), round(s["input_item_throughput"]), round(s["median_e2el_ms"], 2),
      round(cpu, 2), round(cpu * 1e6 / s["completed"], 2), round(cpu * 1e6 / s["total_inputs"], 3), round(rss / 1024))
PY
      rm -f "$OUT"/results/*.json
    done
  done
}

truth() {
  # Closed loop at 64 and 256 (every wave leaves and returns together: the worst case), and an
  # open loop at 376 req/s, which keeps ~256 streams open (each lasts 50 + 63·10 ms) unsynchronized.
  for load in "concurrency: 64" "concurrency: 256" "pattern: rate
  rate: 376
  arrival: poisson
  max_concurrency: 1024"; do
    truth_of "$load" 5120 256 64
  done
}

truth_of() { # load-yaml requests warmup output_len: client TTFT/ITL against the server's truth
  local load=$1
  serve fixed-50ms-10ms
  c=$(echo "$load" | tr '\n' ' ' | tr -s ' ')
  y=$(exp "truth" "  $load
  requests: $2
  warmup_requests: $3
  dataset: { kind: random, input_len: 16, output_len: $4 }
  ignore_eos: true")
  mapfile -t r < <(run "$y")
  curl -fs localhost:$PORT/sim/timings > "$OUT/truth.json"
  python3 - "${r[1]}" "$OUT/truth.json" "$c" "${r[0]}" <<'PY'
import json, sys, math
def pct(xs, p):
    xs = sorted(xs); r = p / 100 * (len(xs) - 1); lo, hi = math.floor(r), math.ceil(r)
    return xs[lo] + (xs[hi] - xs[lo]) * (r - lo)
d = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
wall, user, sys_, rss = map(float, sys.argv[4].split())
# The sim's truth also holds the pre-flight and warm-up requests: use the last N. It runs from
# the kernel's receive time of the request at the server's socket to the hand-off of each chunk.
n = len(d["requests"])
ttft_c = [r["ttft_ms"] for r in d["requests"] if r["ttft_ms"] is not None]
itl_c = [g for r in d["requests"] for g in (r.get("itl_ms") or [])]
ttft_t = t["ttft_ms"][-n:]; itl_t = t["itl_ms"][-len(itl_c):]
print(f"{sys.argv[3]}: {n} requests, {len(itl_c)} ITL gaps, {d['summary']['request_throughput']:.0f} req/s, peak RSS {rss / 1024:.0f} MiB")
for name, c, tr in (("TTFT", ttft_c, ttft_t), ("ITL", itl_c, itl_t)):
    print(f"  {name} client p50/p99 {pct(c,50):.3f}/{pct(c,99):.3f} ms, server truth p50/p99 {pct(tr,50):.3f}/{pct(tr,99):.3f} ms,"
          f" error p50/p99 {pct(c,50)-pct(tr,50):+.3f}/{pct(c,99)-pct(tr,99):+.3f} ms")
h = t.get("handler_delay_ms", [])[-n:]
if h:
    print(f"  server socket -> handler p50/p99/max {pct(h,50):.3f}/{pct(h,99):.3f}/{max(h):.3f} ms (inside the truth's TTFT)")
PY
  rm -f "$OUT"/results/*.json
}

streams() {
  # 16 384 streams from one client process (one core): the instant simulator for req/s and
  # peak RSS, then the fixed-timing one for the TTFT and ITL error against the server's truth.
  serve instant
  echo "concurrency requests wall_s req/s peak_rss_MiB peak_in_flight"
  y=$(exp "s16k" "  concurrency: 16384
  requests: 65536
  dataset: { kind: random, input_len: 16, output_len: 16 }
  ignore_eos: true")
  sed -i 's/detail: full/detail: summary/' "$y"
  mapfile -t r < <(run "$y")
  python3 - "${r[1]}" ${r[0]} <<'PY'
import json, sys
f, wall, user, sys_, rss = sys.argv[1], *map(float, sys.argv[2:6])
d = json.load(open(f)); s = d["summary"]
print(16384, s["completed"], round(wall, 1), round(s["request_throughput"]), round(rss / 1024), d["client"].get("peak_in_flight"))
PY
  rm -f "$OUT"/results/*
  truth_of "concurrency: 16384" 32768 16384 4
}

readers() {
  # `compare` and `report` of two results of 1 000 000 requests each (8-token answers,
  # `detail: summary`: 100 000 records inline, the rest in a side file): wall time, peak RSS.
  serve instant
  for k in a b; do
    y=$(exp "r$k" "  concurrency: 256
  requests: 1000000
  dataset: { kind: random, input_len: 16, output_len: 8 }
  ignore_eos: true")
    sed -i 's/detail: full/detail: summary/' "$y"
    run "$y" >/dev/null
  done
  ls -la "$OUT"/results/
  mapfile -t files < <(ls "$OUT"/results/r*.json | grep -v requests)
  # READERS_ALSO: other binaries (an older build) to time on the same files.
  for b in $BIN ${READERS_ALSO:-}; do
    for cmd in compare report; do
      /usr/bin/time -f "%e %M" -o "$OUT/time" "$b" $cmd "${files[@]}" >/dev/null 2>"$OUT/err" || true
      read -r wall rss < "$OUT/time"
      echo "$b $cmd of two 1 M-request files: ${wall} s, peak RSS $((rss / 1024)) MiB"
    done
  done
  rm -f "$OUT"/results/*
}

tables() {
  # One result of 1 000 000 requests (8-token answers, `detail: summary`: 100 000 records
  # inline, the rest in the JSON Lines side file), exported per request as CSV and as Parquet:
  # size, wall time and peak RSS of each (the read of the records is in both).
  serve instant
  y=$(exp "t" "  concurrency: 256
  requests: 1000000
  dataset: { kind: random, input_len: 16, output_len: 8 }
  ignore_eos: true")
  sed -i 's/detail: full/detail: summary/' "$y"
  run "$y" >/dev/null
  f=$(ls "$OUT"/results/t-*.json | grep -v requests | head -1)
  echo "result file $(stat -c %s "$f") bytes; side file (JSON Lines) $(stat -c %s "${f%.json}.requests.jsonl") bytes"
  for fmt in csv parquet; do
    for rep in 1 2 3; do
      LLM_INF_BENCH_LOG=debug /usr/bin/time -f "%e %M" -o "$OUT/time" taskset -c 1 $BIN results export --format $fmt --requests "$f" -o "$OUT/requests.$fmt" 2>"$OUT/err" || { cat "$OUT/err"; exit 1; }
      read -r wall rss < "$OUT/time"
      split=$(grep -o 'read_s=[0-9.e-]* write_s=[0-9.e-]*' "$OUT/err" | head -1 || true)
      echo "export --format $fmt --requests (1 M rows): $(stat -c %s "$OUT/requests.$fmt") bytes, ${wall} s ($split), peak RSS $((rss / 1024)) MiB"
    done
  done
  rm -f "$OUT"/results/* "$OUT"/requests.*
}

pacer() {
  serve instant
  y=$(exp rate1000 "  pattern: rate
  rate: 1000
  arrival: poisson
  requests: 10000
  dataset: { kind: random, input_len: 16, output_len: 128 }
  ignore_eos: true")
  mapfile -t r < <(run "$y")
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); l=d['client']['pacer_lag_ms']; print('rate 1000/s: achieved %.1f req/s, pacer lag p50 %.3f p99 %.3f max %.3f ms' % (d['summary']['request_throughput'], l['p50'], l['p99'], l['max']))" "${r[1]}"
}

memory() {
  # Per open stream: RSS with 1024 streams held open by the fixed profile minus RSS with 1.
  serve fixed-50ms-10ms
  for c in 1 1024; do
    y=$(exp "mem$c" "  concurrency: $c
  requests: $((c * 2))
  dataset: { kind: random, input_len: 16, output_len: 64 }
  ignore_eos: true")
    mapfile -t r < <(run "$y")
    echo "concurrency $c: maxrss $(echo ${r[0]} | awk '{print $4}') KiB"
  done
}

longrun() {
  # Peak RSS against the request count: concurrency 256, 1 024-token random prompts, 16-token
  # answers, the instant simulator, `output.detail: summary`. Records past 100 000 go to the
  # result's side file; the figure to watch is that RSS stops growing with the count.
  serve instant
  echo "requests wall_s req/s maxrss_MiB side_file_records"
  for n in 20000 200000 1000000; do
    y=$(exp "long$n" "  concurrency: 256
  requests: $n
  dataset: { kind: random, input_len: 1024, output_len: 16 }
  ignore_eos: true")
    sed -i 's/detail: full/detail: summary/' "$y"
    mapfile -t r < <(run "$y")
    python3 - "${r[1]}" $n ${r[0]} <<'PY'
import json, sys
f, n, wall, user, sys_, rss = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:7])
d = json.load(open(f)); s = d["summary"]
print(n, round(wall, 1), round(s["request_throughput"]), round(rss / 1024), d.get("requests_in_file", 0))
PY
    rm -f "$OUT"/results/*
  done
}

tui() {
  # Concurrency 256 with the live view drawing (under a pseudo-terminal from util-linux
  # `script`, 100x30) against the same run with --no-tui; the view's thread shares the
  # client's core.
  serve instant
  y=$(exp tui "  concurrency: 256
  requests: 20000
  dataset: { kind: random, input_len: 16, output_len: 128 }
  ignore_eos: true")
  for rep in 1 2 3; do
    for mode in off on; do
      if [ $mode = off ]; then
        taskset -c 1 $BIN run "$y" --client-cores 1 --yes --no-tui >/dev/null 2>"$OUT/err" || { cat "$OUT/err"; exit 1; }
      else
        TERM=xterm script -q -e -c "stty cols 100 rows 30; taskset -c 1 $BIN run $y --client-cores 1 --yes" /dev/null </dev/null >"$OUT/pty" || { tail -c 2000 "$OUT/pty"; exit 1; }
      fi
      f=$(ls -t "$OUT"/results/*.json | head -1)
      python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print('tui %-3s req/s %.0f  output tok/s %.0f' % (sys.argv[2], s['request_throughput'], s['output_throughput']))" "$f" $mode
      rm -f "$OUT"/results/*.json
    done
  done
}

hostile() {
  # 256 streams of each hostile answer at once (the simulator's --hostile on every measured
  # request; the pre-flight is spared): the client's peak RSS, and what every request became.
  # The runs fail (nothing succeeds), so `run` is not used: exit 1 is the expected outcome.
  for h in flood "flood timeout" huge-event html gzip; do
    local kind=${h%% *} out_len=128 timeout=""
    if [ "$h" = "flood timeout" ]; then out_len=9000000; timeout="  request_timeout: 2s"; fi
    serve instant --hostile "$kind" --spare-first 1 --max-model-len 4000000000
    y=$(exp "hostile" "  concurrency: 256
  requests: 512
$timeout
  dataset: { kind: random, input_len: 16, output_len: $out_len }")
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" taskset -c 1 $BIN run "$y" --client-cores 1 --json --yes >/dev/null 2>"$OUT/err" || true
    f=$(ls -t "$OUT"/results/*.json | head -1)
    python3 - "$f" "$h" $(tail -1 "$OUT/time") <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); wall, rss = float(sys.argv[3]), int(sys.argv[6])
print(f"{sys.argv[2]:>13}: {len(d['requests'])} requests, errors {d['errors']['by_kind']}, wall {wall:.1f} s, peak RSS {rss // 1024} MiB")
PY
    rm -f "$OUT"/results/*.json
  done
}

case "${1:-all}" in
  ceiling) ceiling ;; truth) truth ;; pacer) pacer ;; memory) memory ;; longrun) longrun ;; tui) tui ;; hostile) hostile ;;
  streams) streams ;; readers) readers ;; tables) tables ;; apis) apis ;; pooling) pooling ;;
  truth-at) truth_of "concurrency: ${2:?streams}" $(( ${2} * 4 )) "$2" "${3:-16}" ;;
  all) ceiling; truth; pacer; memory; longrun; tui; hostile; streams; readers; tables ;;
  *) echo "usage: $0 [ceiling|truth|pacer|memory|longrun|tui|hostile|streams|readers|tables|apis|pooling|all]"; exit 2 ;;
esac
