#!/usr/bin/env bash
# The test command: installs test dependencies if missing, then runs the whole workspace's tests.
# Tests that need ../shared (models and datasets) skip with a printed reason when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFAGENT_PY_EXTRAS=1 bash scripts/ensure-deps.sh
cargo test --workspace "$@"
