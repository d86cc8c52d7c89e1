#!/usr/bin/env bash
# What the test suite needs beyond the set-up: the astra extra (the suite runs --backend astra; its
# wheel pulls ~450 MB of CUDA libraries, too much for the demo's set-up) and headless Chromium,
# which renders report.html in one test (installed here on Debian when missing; without root or
# apt the report test says why it cannot run).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q -e ".[astra]" 2>&1 | grep -v -e "is ignored" -e "^ *$"
.venv/bin/python -c "import astra" || { echo "error: the astra extra did not install" >&2; exit 1; }
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; the report rendering test will fail" >&2
  fi
fi
exit 0
