#!/usr/bin/env bash
# The quick start: compress the bundled CIFAR-10 ResNet-20 with the built-in planner on
# ONNX Runtime to at most 0.5 MB (from 1.1 MB), keeping top-1 within 1 point, and write the run
# (model, report.html, every plan and evaluation) to runs/quickstart. 100 of the 1,000 images
# of examples/cifar10-1000 calibrate, 450 are the loop's feedback and 450 are held out: int8
# changes about 1 % of ResNet-20's predictions (both ways), and on fewer images the loop's
# paired test cannot tell that from a drop beyond 1 point (on 130 it asked for about 500).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
cargo build --release -q -p profagent
./target/release/profagent profile examples/resnet20_cifar10.onnx --top 8
./target/release/profagent compress examples/resnet20_cifar10.onnx \
  --data examples/cifar10-1000 --preprocess cifar10 \
  --out runs/quickstart --max-acc-drop 1.0 --target-memory 0.5 --rounds 3 \
  --calib-samples 100 --feedback-samples 450 "$@"
