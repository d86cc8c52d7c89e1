#!/usr/bin/env bash
# System packages the test suite needs: headless Chromium renders report.html in one test.
# Installed here (Debian) when missing; without root or apt the report test says why it cannot run.
set -uo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; the report rendering test will fail" >&2
  fi
fi
exit 0
