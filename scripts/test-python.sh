#!/usr/bin/env bash
# The Python package end to end: builds the wheel with maturin (python/, linted by clippy with
# -D warnings while it compiles), installs it into a
# fresh virtual environment with pytest and pillow from PyPI, and runs python/tests against the
# `profagent` binary built by cargo (results must equal the CLI's --json).
#
# The wheel is built with cargo's dev profile (our code at opt-level 1, dependencies at 3, as the
# tests use) into the workspace's target folder, so it reuses what `cargo test` compiled;
# PROFAGENT_WHEEL_PROFILE=release builds the wheel users get. Set PYTHON to pick the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${PYTHON:-python3}
profile=${PROFAGENT_WHEEL_PROFILE:-dev}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bash scripts/ensure-deps.sh
"$py" -m maturin --version >/dev/null 2>&1 || \
  "$py" -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" >&2

echo "== cargo build -p profagent (the CLI the results are compared with)" >&2
cargo build -q -p profagent --bin profagent
cli="$CARGO_TARGET_DIR/debug/profagent"

echo "== maturin build --profile $profile (python/ linted by clippy on the way)" >&2
# python/ is outside the workspace, so `cargo clippy --workspace` does not lint it, and a
# separate `cargo clippy --manifest-path python/Cargo.toml` re-checks every dependency (about 10
# minutes on 2 cores). Instead clippy is the compiler of the binding crate (cargo runs
# RUSTC_WORKSPACE_WRAPPER for workspace members only) in the wheel build itself, with
# `-D warnings`: the dependencies are the ones already built.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)" \
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
"$py" -m maturin build -q --manifest-path python/Cargo.toml --profile "$profile" \
  --interpreter "$py" --out "$work/wheels"
wheel=$(ls "$work"/wheels/profagent-*.whl)

echo "== fresh venv: pip install $(basename "$wheel") pytest pillow" >&2
"$py" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "$wheel" pytest pillow

echo "== pytest python/tests" >&2
# From outside the checkout, so `import profagent` is the installed wheel, not python/profagent.
cd "$work"
PROFAGENT_CLI="$cli" PROFAGENT_ROOT="$root" PATH="$work/venv/bin:$PATH" \
  "$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests" "$@"
