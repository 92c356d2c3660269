#!/usr/bin/env bash
# The test command: installs test dependencies if missing, then runs the whole workspace's tests.
# Tests that need ../shared (models and datasets) are reported as ignored, with the reason, when
# it is absent (cfg(shared_present), set by tools/build/shared_present.rs), so they run where it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFAGENT_PY_EXTRAS=1 bash scripts/ensure-deps.sh
cargo test --workspace "$@"
