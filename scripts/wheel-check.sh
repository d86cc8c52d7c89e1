#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it with no extras into a fresh virtualenv
# (the CPU torch wheel first, as scripts/setup.sh does), check that the built-in models' weights
# are inside it, and denoise a small generated .npy with a built-in model, from the command line
# and from Python. pip's cache is reused, so a second run downloads nothing.
# Needs .venv with `build` (the dev extra). Usage: scripts/wheel-check.sh   (called by .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lowdose-wheel.XXXXXX")
START=$SECONDS
trap 'rm -rf "$WORK"; echo "wheel-check: $((SECONDS - START)) s in all, the clean-up included"' EXIT
step() { echo "wheel-check: $1 ($((SECONDS - START)) s)"; }

# 1. the wheel, built from a copy so the working tree gets no build/ or egg-info litter
mkdir "$WORK/src-copy"
cp -r pyproject.toml README.md src "$WORK/src-copy/"
find "$WORK/src-copy" \( -name __pycache__ -o -name "*.egg-info" \) -prune -exec rm -rf {} +
.venv/bin/python -m build --wheel --outdir "$WORK/dist" "$WORK/src-copy" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/lowdose-*.whl)
step "built $(basename "$WHEEL")"

# 2. every package-data file of the source tree (built-in models, experiment YAMLs) is in the wheel
.venv/bin/python - "$WHEEL" "$REPO/src" <<'EOF'
import sys, tomllib, zipfile
from pathlib import Path
wheel, src = sys.argv[1], Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
globs = tomllib.loads(Path(src.parent, "pyproject.toml").read_text())
globs = globs["tool"]["setuptools"]["package-data"]["lowdose"]
wanted = sorted(str(p.relative_to(src)) for g in globs for p in (src / "lowdose").glob(g))
missing = [name for name in wanted if name not in names]
weights = [name for name in wanted if name.endswith(".safetensors")]
assert weights, "no built-in weights found in the source tree"
assert not missing, f"package data missing from the wheel: {missing}"
print(f"wheel-check: {len(wanted)} package-data files in the wheel, {len(weights)} weights")
EOF

# 3. a fresh virtualenv: the CPU torch wheel (from local disk), then the wheel with no extras
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
# bytecode compiled at install: --no-compile was no faster in all (each later import compiles)
PIP=("$V/python" -m pip install -q)
"${PIP[@]}" "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} 2>&1 \
  | grep -v "is ignored" || true
"$V/python" -m pip show -q torch || { echo "wheel-check: torch did not install" >&2; exit 1; }
step "torch installed"
"${PIP[@]}" "$WHEEL" 2>&1 | grep -v "is ignored" || true
"$V/lowdose" --help >/dev/null
step "wheel installed"
for extra in onnx onnxruntime pyarrow bm3d; do
  if "$V/python" -c "import $extra" 2>/dev/null; then
    echo "wheel-check: $extra is installed without its extra" >&2; exit 1
  fi
done

# 4. denoise a generated CT slice in HU (a water disc in air) with a built-in model
cd "$WORK"  # away from the source tree: only the installed package can be imported
"$V/python" -c "
import numpy as np
yy, xx = np.mgrid[:96, :96]
hu = np.where((yy - 48) ** 2 + (xx - 48) ** 2 < 40**2, 0.0, -1000.0)
np.save('slice.npy', (hu + np.random.default_rng(0).normal(0, 20, hu.shape)).astype(np.float32))
"
"$V/lowdose" denoise slice.npy --model builtin:ct-sinogram --out denoised >denoise.log 2>&1 \
  || { cat denoise.log; exit 1; }
"$V/python" -c "
import numpy as np, lowdose
out = np.load('denoised/slice.npy')
assert out.shape == (96, 96) and np.isfinite(out).all(), (out.shape, out.dtype)
again = lowdose.denoise(np.load('slice.npy'), model='builtin:ct-sinogram', device='auto')
assert np.allclose(again, out, atol=1e-3), float(np.abs(again - out).max())
print('wheel-check: lowdose denoise and lowdose.denoise agree; output finite,', out.dtype)
"
step "denoised"

# 5. without the onnx extra, the ONNX export stops with one line naming it
if "$V/lowdose" export --model builtin:ct-awgn --format onnx --out m.onnx >export.log 2>&1; then
  echo "wheel-check: export --format onnx ran without the onnx extra" >&2; exit 1
fi
grep -q "pip install 'lowdose\[onnx\]'" export.log || { cat export.log; exit 1; }
step "passed"
