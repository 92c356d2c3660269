#!/usr/bin/env bash
# The quick start: compress the bundled CIFAR-10 ResNet-20 with the built-in planner on
# ONNX Runtime to at most 0.5 MB (from 1.1 MB), keeping top-1 within 1 point, and write the run
# (model, report.html, every plan and evaluation) to runs/quickstart. 40 of the 300 images
# calibrate, 130 are the loop's feedback (the fewest on which a round that changes no
# prediction passes a 1-point bound at 90 %), 130 are held out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo build --release -q -p profagent
./target/release/profagent profile examples/resnet20_cifar10.onnx --top 8
./target/release/profagent compress examples/resnet20_cifar10.onnx \
  --data examples/cifar10-sample --preprocess cifar10 \
  --out runs/quickstart --max-acc-drop 1.0 --target-memory 0.5 --rounds 3 \
  --calib-samples 40 --feedback-samples 130 "$@"
