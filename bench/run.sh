#!/usr/bin/env bash
# Regenerates docs/benchmarks.md: `bench/run.sh fast` (trained CIFAR models only, under 10
# minutes on 2 cores) or `bench/run.sh full` (adds the paper's models: ViT-B/16, DeiT-B/16,
# Swin-B, ResNet-101, exported with random weights; about 40 minutes).
#
# Environment: PYTHON (default python3, needs onnxruntime onnx numpy pillow),
# CARGO_TARGET_DIR (where the release CLI is built), BENCH_MODELS_DIR (exported paper models,
# default /work/cache/models; exported on demand with Debian's /usr/bin/python3 + torch),
# BENCH_PAPER_MODELS (comma list), BENCH_SECTIONS (quant,prune,paper,speed), BENCH_THREADS (1).
set -euo pipefail
mode="${1:-fast}"
case "$mode" in fast|full) ;; *) echo "usage: bench/run.sh fast|full" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -p profagent >&2
if [ "$mode" = full ]; then
  models="${BENCH_MODELS_DIR:-/work/cache/models}"
  PYTHONPATH="${BENCH_TORCH_PYTHONPATH:-/work/cache/pylib}" /usr/bin/python3 bench/export_models.py "$models" >&2 \
    || echo "warning: model export failed; missing paper models are reported as such" >&2
fi
exec "$python" bench/run.py --mode "$mode" --profagent "$target/release/profagent" \
  --threads "${BENCH_THREADS:-1}" --out "$root/docs/benchmarks.md"
