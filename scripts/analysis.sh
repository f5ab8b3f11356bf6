#!/usr/bin/env bash
# DuckDB for the tests that read `results export` the way a researcher would
# (tests/export.rs): a venv in ~/.cache/llm-inf-bench/analysis with `duckdb` pinned from PyPI,
# made once per machine. `eval "$(scripts/analysis.sh env)"` names its python.
#   scripts/analysis.sh install | env
set -euo pipefail
ROOT=${LLMIB_CACHE:-$HOME/.cache/llm-inf-bench}/analysis
DUCKDB=2.0.1
case "${1:-install}" in
  install)
    if [ ! -f "$ROOT/.complete-$DUCKDB" ]; then
      rm -rf "$ROOT"
      python3 -m venv "$ROOT"
      "$ROOT/bin/pip" install --quiet "duckdb==$DUCKDB"
      touch "$ROOT/.complete-$DUCKDB"
    fi
    echo "duckdb $DUCKDB in $ROOT";;
  env)
    echo "export LLMIB_ANALYSIS_PY=$ROOT/bin/python";;
  *) echo "usage: $0 install | env" >&2; exit 2;;
esac
