#!/usr/bin/env bash
# The fuzz targets (fuzz/, cargo fuzz) for a bounded time each: the HTTP/1.1 response reader,
# the SSE splitter and event classifier (which must agree with serde_json), the Prometheus
# parser, the experiment loader, the JSONL prompt loader and compare's result-file reader.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [cargo fuzz build flags]
# The toolchain is the machine's stable one: RUSTC_BOOTSTRAP=1 lets cargo fuzz use its
# nightly-only flags. New inputs go to a scratch directory; the committed corpora are read only
# (merge what is worth keeping with `cargo fuzz cmin`). A crash, hang (> 10 s) or OOM (> 2 GiB)
# fails the script, with the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
shift || true
FLAGS=${*:---dev --sanitizer none}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
# shellcheck disable=SC2086
cargo fuzz build $FLAGS
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
for t in http_response sse prometheus experiment jsonl result_file; do
  mkdir -p "$SCRATCH/$t"
  echo "== fuzz $t for ${SECS}s"
  status=0
  # shellcheck disable=SC2086
  cargo fuzz run $FLAGS "$t" "$SCRATCH/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$SCRATCH/$t.log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|SUMMARY)|panicked|disagree" "$SCRATCH/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$SCRATCH/$t.log"
    echo "fuzz target $t failed: its input is in fuzz/artifacts/$t/"
    exit 1
  fi
done
