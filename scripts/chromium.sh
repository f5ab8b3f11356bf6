#!/usr/bin/env bash
# Headless Chromium for tests/html_report.rs: Debian's `chromium` package, installed with
# apt-get when missing. `eval "$(scripts/chromium.sh env)"` names the browser.
#   scripts/chromium.sh install | env
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
case "${1:-install}" in
  install)
    if ! command -v chromium >/dev/null; then
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    fi
    chromium --version 2>/dev/null;;
  env)
    echo "export LLMIB_CHROMIUM=$(command -v chromium)";;
  *) echo "usage: $0 install | env" >&2; exit 2;;
esac
