#!/usr/bin/env bash
# Installs what ProfAgent needs at run time and for its tests, if missing:
# the ONNX Runtime shared library (shipped in the pinned `onnxruntime` wheel) and the Python
# packages the fixture/benchmark scripts use. Idempotent; safe to run on every start.
set -euo pipefail
ORT_VERSION="1.32.0"
py=${PYTHON:-python3}
if ! "$py" -c "import onnxruntime, sys; sys.exit(0 if onnxruntime.__version__ == '$ORT_VERSION' else 1)" 2>/dev/null; then
  echo "installing onnxruntime==$ORT_VERSION (provides libonnxruntime.so for the ort crate)" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "onnxruntime==$ORT_VERSION" >&2
fi
if [ "${PROFAGENT_PY_EXTRAS:-0}" = "1" ]; then
  "$py" -c "import onnx, numpy, PIL" 2>/dev/null || \
    "$py" -m pip install --quiet --disable-pip-version-check onnx numpy pillow >&2
fi
