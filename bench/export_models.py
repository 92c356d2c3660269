#!/usr/bin/env python3
"""Export the paper's models (random weights) to ONNX for benchmarks and size/speed checks.

ViT-B/16, Swin-B and ResNet-101/ResNet-50 come from torchvision; DeiT-B/16 from timm when it
is importable. `ZOO` adds more torchvision architectures for bench/zoo.py (grouped and
depthwise convolutions, concatenations, channel shuffles, squeeze-excitation, windowed
attention, a segmentation head), each exported at its own opset and with a fixed or a dynamic
batch, as users' exports come. Random weights are fine for size and speed (accuracy needs trained weights,
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


# name: (constructor, opset, dynamic batch, input side)
ZOO = {
    "resnext50_32x4d": (lambda m: m.resnext50_32x4d(), 13, True, 224),
    "mobilenet_v3_small": (lambda m: m.mobilenet_v3_small(), 13, True, 224),
    "efficientnet_b0": (lambda m: m.efficientnet_b0(), 13, False, 224),
    "convnext_tiny": (lambda m: m.convnext_tiny(), 13, True, 224),
    "regnet_y_400mf": (lambda m: m.regnet_y_400mf(), 13, True, 224),
    "densenet121": (lambda m: m.densenet121(), 13, True, 224),
    "shufflenet_v2_x0_5": (lambda m: m.shufflenet_v2_x0_5(), 11, True, 224),
    "squeezenet1_1": (lambda m: m.squeezenet1_1(), 9, False, 224),
    "googlenet": (lambda m: m.googlenet(aux_logits=False, init_weights=True), 13, True, 224),
    "inception_v3": (lambda m: m.inception_v3(aux_logits=False, init_weights=True), 13, True, 299),
    "mnasnet0_5": (lambda m: m.mnasnet0_5(), 13, True, 224),
    "vgg11_bn": (lambda m: m.vgg11_bn(), 11, False, 224),
    "swin_t": (lambda m: m.swin_t(), 14, True, 224),
    "lraspp_mobilenet_v3_large": (
        lambda m: m.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None),
        13, True, 224,
    ),
}


class FirstOutput(torch.nn.Module):
    """Segmentation models return a dict; export its "out" tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)
        return y["out"] if isinstance(y, dict) else y


def build(name):
    torch.manual_seed(0)
    if name in ZOO:
        return FirstOutput(ZOO[name][0](torchvision.models))
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
        _, opset, dynamic, side = ZOO.get(name, (None, 17, True, 224))
        x = torch.randn(1, 3, side, side)
        tmp = path + ".tmp"
        axes = {"input": {0: "N"}, "logits": {0: "N"}} if dynamic else None
        torch.onnx.export(
            model, x, tmp, opset_version=opset, input_names=["input"], output_names=["logits"],
            dynamic_axes=axes, do_constant_folding=True,
        )
        os.replace(tmp, path)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
