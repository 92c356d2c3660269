#!/usr/bin/env python3
"""Export the paper's models (random weights) to ONNX for benchmarks and size/speed checks.

ViT-B/16, Swin-B and ResNet-101/ResNet-50 come from torchvision; DeiT-B/16 from timm when it
is importable. Random weights are fine for size and speed (accuracy needs trained weights,
which cannot be downloaded here). Classification heads that torchvision initialises to zero
are re-initialised so outputs are not all zero.

Usage: /usr/bin/python3 bench/export_models.py OUT_DIR [name ...]
Needs Debian's python3-torch python3-torchvision (CPU torch 1.13); timm optional
(pip install --no-deps --target DIR timm huggingface_hub safetensors pyyaml; PYTHONPATH=DIR).
"""
import os
import sys

import torch
import torchvision


def reinit_heads(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and float(m.weight.abs().sum()) == 0.0:
            torch.nn.init.normal_(m.weight, std=0.02)


def build(name):
    torch.manual_seed(0)
    if name == "vit_b_16":
        return torchvision.models.vit_b_16(weights=None)
    if name == "swin_b":
        return torchvision.models.swin_b(weights=None)
    if name == "resnet101":
        return torchvision.models.resnet101(weights=None)
    if name == "resnet50":
        return torchvision.models.resnet50(weights=None)
    if name == "deit_b_16":
        import timm  # optional

        return timm.create_model("deit_base_patch16_224", pretrained=False)
    raise SystemExit(f"unknown model {name}")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    names = sys.argv[2:] or ["vit_b_16", "deit_b_16", "swin_b", "resnet101", "resnet50"]
    os.makedirs(out, exist_ok=True)
    for name in names:
        path = os.path.join(out, f"{name}.onnx")
        if os.path.exists(path):
            print(f"{path} exists, skipping")
            continue
        try:
            model = build(name).eval()
        except ImportError as e:
            print(f"skipping {name}: {e}")
            continue
        reinit_heads(model)
        if hasattr(torch.backends, "mha"):
            # torch >= 2: the fused attention fast path has no ONNX export.
            torch.backends.mha.set_fastpath_enabled(False)
        x = torch.randn(1, 3, 224, 224)
        tmp = path + ".tmp"
        torch.onnx.export(
            model, x, tmp, opset_version=17, input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True,
        )
        os.replace(tmp, path)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
