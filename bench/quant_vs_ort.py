#!/usr/bin/env python3
"""Benchmark: `profagent quantize` against onnxruntime.quantization on the same models.

Guards against regressions in what the quantizer is for: smaller files, faster ONNX Runtime
inference, accuracy kept, and a quantize step faster than the Python tool. For each case it
reports, in one run and on one machine: tool wall time (process start included), output file
size, ONNX Runtime latency at batch 1 and 32 (median of interleaved rounds), top-1 on the
CIFAR-10 test images not used for calibration, and agreement with the float model.

    python3 bench/quant_vs_ort.py --profagent target/release/profagent [--cases vit_tiny,resnet18,vit_b16]

`--profagent example:PATH` runs the library example `quantize_file` instead of the CLI.
Calibration for static mode: every 20th test image (500); scoring: the other 9 500.
"""
import argparse, os, subprocess, sys, tempfile, time

import numpy as np
import onnxruntime as ort
from PIL import Image

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
MEAN = np.array([0.4914, 0.4822, 0.4465]) * 255
STD = np.array([0.2470, 0.2435, 0.2616]) * 255
THREADS = 2


def cifar(limit=None):
    root = os.path.join(SHARED, "data", "cifar10-test")
    xs, ys = [], []
    for ci, c in enumerate(sorted(os.listdir(root))):
        for f in sorted(os.listdir(os.path.join(root, c))):
            xs.append(np.asarray(Image.open(os.path.join(root, c, f)).convert("RGB"), dtype=np.float32))
            ys.append(ci)
    x = ((np.stack(xs) - MEAN) / STD).astype(np.float32).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.array(ys)


def session(path):
    o = ort.SessionOptions()
    o.intra_op_num_threads = THREADS
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def latency(paths, shape, rounds=7, runs=5):
    """Median ms per run for each model, rounds interleaved so load noise hits all alike."""
    sessions = [session(p) for p in paths]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times = [[] for _ in paths]
    for s in sessions:
        s.run(None, {s.get_inputs()[0].name: x})
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            t = time.perf_counter()
            for _ in range(runs):
                s.run(None, {s.get_inputs()[0].name: x})
            times[i].append((time.perf_counter() - t) / runs * 1000)
    return [float(np.median(t)) for t in times]


def logits(path, x):
    s = session(path)
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 250]})[0] for i in range(0, len(x), 250)])


def ours(tool, model, out, mode, calib=None):
    if tool.startswith("example:"):
        cmd = [tool[len("example:"):], model, out, mode] + ([calib, "500", "0"] if calib else [])
    else:
        cmd = [tool, "quantize", model, "-o", out, "--mode", mode]
        if calib:
            cmd += ["--calib", calib, "--calib-count", "500"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def theirs(model, out, mode, calib=None):
    code = {
        "dynamic": "from onnxruntime.quantization import quantize_dynamic as q; q(sys.argv[1], sys.argv[2])",
        "static": ("import numpy as np\nfrom onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat\n"
                   "class R(CalibrationDataReader):\n  def __init__(s):\n    x=np.load(sys.argv[3]); s.it=iter([{'input':x[i:i+50]} for i in range(0,len(x),50)])\n"
                   "  def get_next(s): return next(s.it,None)\n"
                   "quantize_static(sys.argv[1], sys.argv[2], R(), quant_format=QuantFormat.QDQ, per_channel=True)"),
    }[mode]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys\n" + code, model, out] + ([calib] if calib else []),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def case(name, tool, model, mode, work, data=None, calib=None, shape=(3, 32, 32)):
    mine, ref = os.path.join(work, f"{name}_ours.onnx"), os.path.join(work, f"{name}_ort.onnx")
    t_ours = ours(tool, model, mine, "dynamic" if mode == "dynamic" else mode, calib)
    t_ort = theirs(model, ref, mode, calib)
    paths = [model, mine, ref]
    sizes = [os.path.getsize(p) for p in paths]
    b1 = latency(paths, (1,) + shape)
    b32 = latency(paths, (32,) + shape, rounds=5, runs=2)
    print(f"\n## {name} ({mode})")
    print(f"tool wall time: ours {t_ours:.2f} s, onnxruntime.quantization {t_ort:.2f} s ({t_ort / t_ours:.1f}x)")
    for label, p, s, l1, l32 in zip(["fp32", "ours", "ort-quant"], paths, sizes, b1, b32):
        print(f"  {label:10s} size {s / 2**20:8.2f} MiB ({100 * s / sizes[0]:5.1f} %)  batch1 {l1:8.2f} ms ({b1[0] / l1:4.2f}x)  batch32 {l32:9.2f} ms ({b32[0] / l32:4.2f}x)")
    if data is not None:
        x, y = data
        held = np.arange(len(x)) % 20 != 0
        outs = [logits(p, x) for p in paths]
        for label, o in zip(["fp32", "ours", "ort-quant"], outs):
            agree = (o.argmax(1) == outs[0].argmax(1)).mean() * 100
            cos = np.mean(np.sum(o * outs[0], 1) / (np.linalg.norm(o, axis=1) * np.linalg.norm(outs[0], axis=1)))
            print(f"  {label:10s} top-1 all {100 * (o.argmax(1) == y).mean():.2f} %, held-out {100 * (o.argmax(1)[held] == y[held]).mean():.2f} %, agreement with fp32 {agree:.2f} %, mean cosine {cos:.5f}")
    else:
        x = np.random.default_rng(1).standard_normal((8,) + shape).astype(np.float32)
        outs = [logits(p, x) for p in paths]
        for label, o in zip(["ours", "ort-quant"], outs[1:]):
            cos = np.mean(np.sum(o * outs[0], 1) / (np.linalg.norm(o, axis=1) * np.linalg.norm(outs[0], axis=1)))
            print(f"  {label:10s} mean cosine vs fp32 on 8 random inputs {cos:.5f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profagent", default="target/release/profagent")
    ap.add_argument("--cases", default="vit_tiny,resnet18,vit_b16")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quant_bench_")
    cases = a.cases.split(",")
    data = cifar() if {"vit_tiny", "resnet18"} & set(cases) else None
    models = os.path.join(SHARED, "models")
    print(f"onnxruntime {ort.__version__}, {THREADS} threads; work dir {work}")
    if "vit_tiny" in cases:
        case("vit_tiny_cifar10", a.profagent, os.path.join(models, "vit_tiny_cifar10.onnx"), "dynamic", work, data)
    if "resnet18" in cases:
        calib = os.path.join(work, "calib500.npy")
        np.save(calib, np.ascontiguousarray(data[0][::20]))
        case("resnet18_cifar10", a.profagent, os.path.join(models, "resnet18_cifar10.onnx"), "static", work, data, calib)
    if "vit_b16" in cases:
        vit = os.path.join(work, "vit_b16.onnx")
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "make_vit_b16.py"), vit], check=True)
        case("vit_b16_random", a.profagent, vit, "dynamic", work, None, shape=(3, 224, 224))


if __name__ == "__main__":
    main()
