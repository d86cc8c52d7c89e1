#!/usr/bin/env bash
# The API reference site (mkdocs.yml: docs/*.md and the numpydoc docstrings of src/ through
# mkdocstrings), built with --strict into a temporary folder, so a broken link, a missing page or
# a docstring mkdocstrings cannot read fails CI. Needs the docs extra in .venv (scripts/setup.sh
# installs it). Usage: scripts/docs-check.sh [SITE_DIR]   (default: a temporary folder, removed;
# site/ is git-ignored for a local build to browse)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/mkdocs ]]; then
  echo "docs-check: mkdocs is missing; run scripts/setup.sh (it installs the docs extra)" >&2
  exit 1
fi
START=$SECONDS
if [[ $# -ge 1 ]]; then
  SITE=$1
else
  SITE=$(mktemp -d "${TMPDIR:-/tmp}/lowdose-site.XXXXXX")
  trap 'rm -rf "$SITE"' EXIT
fi
# not --quiet: mkdocs 1.6 then stops counting warnings, and --strict lets them pass
LOG=$(mktemp "${TMPDIR:-/tmp}/lowdose-docs-log.XXXXXX")
if ! .venv/bin/mkdocs build --strict --site-dir "$SITE" >"$LOG" 2>&1 || grep -q WARNING "$LOG"; then
  grep -v "^INFO" "$LOG" >&2
  rm -f "$LOG"
  exit 1
fi
rm -f "$LOG"
test -s "$SITE/api/index.html"
grep -q "lowdose.pipeline.library.denoise" "$SITE/api/index.html" \
  || { echo "docs-check: the API page lacks lowdose.denoise" >&2; exit 1; }
echo "docs-check: site built with --strict in $((SECONDS - START)) s"
