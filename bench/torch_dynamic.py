#!/usr/bin/python3
"""PyTorch baseline (b) for the quantization tables: `torch.quantization.quantize_dynamic` on
the Linear layers, measured in PyTorch itself (not ONNX Runtime), as the paper does.

For one model built exactly as `bench/export_models.py` builds it (same seed, random weights):
fp32 and dynamic-int8 latency at batch 1 (median of interleaved rounds, fixed threads), size as
the bytes of the saved state_dict, and output fidelity of the quantized model against fp32 on
the given input tensor (cosine, top-1 agreement). Prints one JSON object on stdout.

Usage: PYTHONPATH=/work/cache/pylib /usr/bin/python3 bench/torch_dynamic.py NAME INPUTS.npy THREADS
Needs Debian's python3-torch python3-torchvision (torch 1.13); timm for deit_b_16.
"""
import io
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_models import build, reinit_heads  # noqa: E402  (same weights as the ONNX export)

ROUNDS = 3
RUNS_PER_ROUND = 1
# Debian's torch 1.13 (oneDNN engine, no fbgemm) runs fp32 ViT-B/16 at ~14 s per image on one
# core here: fidelity uses the first few images only.
FIDELITY_IMAGES = 4


def state_dict_bytes(model):
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def main():
    name, inputs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    model = build(name).eval()
    reinit_heads(model)
    quantized = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    x = torch.from_numpy(np.load(inputs)[:FIDELITY_IMAGES])
    with torch.no_grad():
        reference = model(x).numpy()
        output = quantized(x).numpy()
        one = x[:1]
        for m in (model, quantized):
            m(one)
        times = {"fp32": [], "int8": []}
        for _ in range(ROUNDS):
            for label, m in (("fp32", model), ("int8", quantized)):
                start = time.perf_counter()
                for _ in range(RUNS_PER_ROUND):
                    m(one)
                times[label].append((time.perf_counter() - start) / RUNS_PER_ROUND * 1000)
    cosine = np.sum(reference * output, 1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(output, axis=1))
    print(json.dumps({
        "torch": torch.__version__,
        "threads": threads,
        "fp32_ms": float(np.median(times["fp32"])),
        "int8_ms": float(np.median(times["int8"])),
        "fp32_bytes": state_dict_bytes(model),
        "int8_bytes": state_dict_bytes(quantized),
        "cosine": float(np.mean(cosine)),
        "agreement": float(np.mean(reference.argmax(1) == output.argmax(1))),
        "images": int(x.shape[0]),
    }))


if __name__ == "__main__":
    main()
