#!/usr/bin/env bash
# Create .venv (if missing) and install lowdose with the CPU PyTorch wheel FIRST, so that pip never
# pulls a multi-GB CUDA build. GPU users: install your own torch build into .venv before running this.
# Override the torch source with TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
    2>&1 | grep -v "is ignored" || true
fi
# dev: test tools plus the onnx and parquet extras the suite runs; docs: the API site (scripts/docs-check.sh)
.venv/bin/python -m pip install -q -e ".[dev,bm3d,docs]" 2>&1 | grep -v -e "is ignored" -e "^ *$" || true
.venv/bin/python -c "import lowdose, torch; print('lowdose', lowdose.__version__, '| torch', torch.__version__)"
