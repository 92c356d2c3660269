#!/usr/bin/python3
"""Export torchvision ResNet-50 and ViT-B/16 (random weights) to ONNX for profile checks.

Usage: /usr/bin/python3 scripts/export_models.py CACHE_DIR [resnet50] [vit_b_16]

Needs Debian's python3-torch/python3-torchvision (torch 1.13, CPU). Files land in CACHE_DIR
(never commit them: they are 100-350 MB). Weights are random: only shapes and counts matter.
Published MACs at 224x224, batch 1: ResNet-50 4.09 G, ViT-B/16 17.56 G; check with
`profagent profile CACHE_DIR/resnet50.onnx`.
"""
import os
import sys

import torch
import torchvision


def export(name: str, out_dir: str) -> str:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    if name.startswith("vit"):
        # torch's fused attention fast path has no ONNX export
        # (aten::_native_multi_head_attention). torch >= 2 has a switch; torch 1.13 skips the
        # fast path when grad is enabled and weights require grad, so we export with grad on.
        if hasattr(torch.backends, "mha"):
            torch.backends.mha.set_fastpath_enabled(False)
        # torchvision zero-initialises the head: give it weights so outputs are not all 0.
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    path = os.path.join(out_dir, f"{name}.onnx")
    tmp = path + ".tmp"
    with torch.set_grad_enabled(name.startswith("vit")):
        torch.onnx.export(
            model,
            torch.randn(1, 3, 224, 224),
            tmp,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17 if torch.__version__ >= "2" else 16,
        )
    os.replace(tmp, path)  # atomic: a half-written model never sits at `path`
    return path


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    names = sys.argv[2:] or ["resnet50", "vit_b_16"]
    for name in names:
        print(export(name, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
