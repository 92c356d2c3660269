#!/usr/bin/env bash
# Full-size accuracy of the shared models pruned at 10 % uniform L1 with `profagent prune`
# (plain, and with bias correction from 256 calibration images), measured with onnxruntime.
# usage: crates/profagent-prune/scripts/full_accuracy.sh [PROFAGENT_BINARY] [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shared="$here/../../../../shared"
bin="${1:-target/release/profagent}"
out="${2:-/tmp/profagent-prune-full}"
mkdir -p "$out"
for m in resnet20_cifar10 resnet18_cifar10 vit_tiny_cifar10; do
  "$bin" prune "$shared/models/$m.onnx" -o "$out/${m}_p10.onnx" --ratio 0.1 > /dev/null
  "$bin" prune "$shared/models/$m.onnx" -o "$out/${m}_p10_r8.onnx" --ratio 0.1 --round-to 8 > /dev/null
  "$bin" prune "$shared/models/$m.onnx" -o "$out/${m}_p10_bc.onnx" --ratio 0.1 \
    --calib "$shared/data/cifar10-test" --preprocess cifar10 --calib-samples 256 > /dev/null
  python3 "$here/top1.py" cifar10 "$shared/models/$m.onnx" "$out/${m}_p10.onnx" "$out/${m}_p10_r8.onnx" "$out/${m}_p10_bc.onnx"
done
m=mobilenet_v2_imagenet
"$bin" prune "$shared/models/$m.onnx" -o "$out/${m}_p10.onnx" --ratio 0.1 > /dev/null
"$bin" prune "$shared/models/$m.onnx" -o "$out/${m}_p10_bc.onnx" --ratio 0.1 \
  --calib "$shared/data/imagenet-val-1300" --preprocess imagenet --calib-samples 256 > /dev/null
python3 "$here/top1.py" imagenet "$shared/models/$m.onnx" "$out/${m}_p10.onnx" "$out/${m}_p10_bc.onnx"
