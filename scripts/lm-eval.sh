#!/usr/bin/env bash
# lm-eval (EleutherAI's harness) for the tests that run it against the simulator
# (tests/evals.rs): a venv in ~/.cache/llm-inf-bench/lm-eval with `lm_eval[api]` pinned from
# PyPI (~800 MB, no torch), made once per machine. `eval "$(scripts/lm-eval.sh env)"` names
# its program. The version is the one src/evals/lm_eval.rs (PINNED) was written against.
#   scripts/lm-eval.sh install | env
set -euo pipefail
VERSION=0.4.13
ROOT=${LLMIB_CACHE:-$HOME/.cache/llm-inf-bench}/lm-eval
VENV=$ROOT/venv-$VERSION
case "${1:-install}" in
  install)
    if [ ! -f "$VENV/.complete" ]; then
      echo "installing lm_eval[api]==$VERSION into $VENV (once per machine)" >&2
      rm -rf "$VENV"
      mkdir -p "$ROOT"
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check "lm_eval[api]==$VERSION"
      touch "$VENV/.complete"
    fi
    echo "lm_eval $VERSION in $VENV";;
  env)
    echo "export LLMIB_LM_EVAL=$VENV/bin/lm_eval";;
  *) echo "usage: $0 install | env" >&2; exit 2;;
esac
