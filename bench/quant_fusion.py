#!/usr/bin/env python3
"""Benchmark: does ONNX Runtime run our quantized graphs as int8 kernels, and how fast?

Guards against the regression of issue 18: a static QDQ graph that ONNX Runtime 1.32 fuses only
partly (signed activations left 12 of 20 resnet18 convolutions as float DQ -> Conv -> Q islands
with NCHW/NHWC transposes: 1.0x instead of 3.0x), and a dynamic graph whose MatMul bias stays a
separate Add. For every model it runs, in ONE process:

- `profagent quantize` (static or dynamic, plus variants) and onnxruntime.quantization's
  `quantize_static` (QUInt8 and QInt8 activations, int8 per-channel weights) or
  `quantize_dynamic`, on the same calibration images;
- fusion counts from ONNX Runtime's own optimized graph (SessionOptions.optimized_model_filepath):
  int8 kernels (QLinearConv, QLinearAdd, QGemm, DynamicQuantizeMatMul...), float Conv/MatMul
  left, DequantizeLinear/QuantizeLinear left, Transposes;
- latency, interleaved: every variant once per round, in a new random order each round; each block is `--runs` runs of one variant;
  in every round each variant's time is divided into fp32's of the same round, and the ratio is
  reported as median with min-max spread over rounds (paired ratios cancel slow load drift);
- top-1 on CIFAR-10 test images that calibration did not use, agreement and mean logit cosine
  with fp32;
- `profagent profile`'s own fusion coverage of every quantized variant (int8 kernels, float
  islands, layout ops), and each of our variants against onnxruntime's best setting of the same
  run (its fastest `ort-*` variant), as a paired per-round ratio.

    python3 bench/quant_fusion.py --profagent target/release/profagent \
        [--models resnet18,resnet20,vit_tiny,mobilenet_v2] [--threads 1] [--batches 1,32]
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from common import interleaved_times

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
MEAN = np.array([0.4914, 0.4822, 0.4465]) * 255
STD = np.array([0.2470, 0.2435, 0.2616]) * 255

MODELS = {
    "resnet18": (os.path.join(SHARED, "models", "resnet18_cifar10.onnx"), "static"),
    "resnet20": (os.path.join(ROOT, "examples", "resnet20_cifar10.onnx"), "static"),
    "vit_tiny": (os.path.join(SHARED, "models", "vit_tiny_cifar10.onnx"), "dynamic"),
    # ImageNet, 224x224: ReLU6 and depthwise convolutions (its own data, below).
    "mobilenet_v2": (os.path.join(SHARED, "models", "mobilenet_v2_imagenet.onnx"), "static"),
}
IMAGENET_MODELS = {"mobilenet_v2"}
INT8_KERNELS = ("QLinearConv", "QLinearAdd", "QLinearMul", "QLinearMatMul", "QGemm",
                "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat",
                "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "ConvInteger", "MatMulInteger")
FLOAT_COMPUTE = ("Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "Add")


def cifar(calib_count, eval_count, seed=0):
    """Calibration and evaluation images, disjoint: a seeded shuffle of the 10 000 test images,
    the first `calib_count` for calibration, the next `eval_count` for scoring."""
    root = os.path.join(SHARED, "data", "cifar10-test")
    files = [(os.path.join(root, c, f), ci) for ci, c in enumerate(sorted(os.listdir(root)))
             for f in sorted(os.listdir(os.path.join(root, c)))]
    order = np.random.default_rng(seed).permutation(len(files))
    picked = [files[i] for i in order[:calib_count + eval_count]]
    x = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p, _ in picked])
    x = np.ascontiguousarray(((x - MEAN) / STD).astype(np.float32).transpose(0, 3, 1, 2))
    y = np.array([label for _, label in picked])
    return x[:calib_count], x[calib_count:], y[calib_count:]


def imagenet_split(calib_count, eval_count, seed=0):
    """The same split over the 1,300 ImageNet validation images (common.imagenet's resize 256,
    centre crop 224, ImageNet mean/std), capped at what the folder holds."""
    from common import imagenet
    order = np.random.default_rng(seed).permutation(1300)
    calib_count = min(calib_count, 300)
    picked = order[:calib_count + min(eval_count, 1300 - calib_count)]
    x, y = imagenet(list(picked))
    return x[:calib_count], x[calib_count:], y[calib_count:]


def session(path, threads, optimized_to=None):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    if optimized_to:
        o.optimized_model_filepath = optimized_to
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def fusion(path, work):
    """Op counts of ONNX Runtime's optimized graph of `path`."""
    out = os.path.join(work, "opt_" + os.path.basename(path))
    session(path, 1, out)
    counts = collections.Counter(n.op_type for n in onnx.load(out).graph.node)
    int8 = {k: v for k, v in counts.items() if k in INT8_KERNELS}
    floats = {k: v for k, v in counts.items() if k in FLOAT_COMPUTE}
    left = {k: counts[k] for k in ("QuantizeLinear", "DequantizeLinear", "Transpose") if counts[k]}
    return int8, floats, left


def profile_fusion(tool, path):
    """`profagent profile --json`'s fusion coverage of `path`: (int8, quantized, islands, layout)."""
    p = subprocess.run([tool, "profile", path, "--runs", "1", "--warmup", "0", "--threads", "1",
                        "--json", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if p.returncode != 0:
        return None
    fusion = json.loads(p.stdout).get("fusion") or {}
    nodes = fusion.get("nodes", [])
    count = collections.Counter(n["runs_as"] for n in nodes)
    return count["int8"], len(nodes), count["float"], sum(fusion.get("layout_ops", {}).values())


def run_quiet(argv):
    t = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stdout}")
    return time.perf_counter() - t


def ort_static(model, out, calib_npy, activation_type, reduce_range=False):
    code = (
        "import sys, numpy as np\n"
        "from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType\n"
        "x = np.load(sys.argv[3])\n"
        "class R(CalibrationDataReader):\n"
        "    def __init__(s): s.it = iter([{'input': x[i:i + 50]} for i in range(0, len(x), 50)])\n"
        "    def get_next(s): return next(s.it, None)\n"
        "quantize_static(sys.argv[1], sys.argv[2], R(), quant_format=QuantFormat.QDQ, per_channel=True,\n"
        f"    activation_type=QuantType.{activation_type}, weight_type=QuantType.QInt8,\n"
        f"    reduce_range={reduce_range})\n")
    return run_quiet([sys.executable, "-c", code, model, out, calib_npy])


def ort_dynamic(model, out):
    code = ("import sys\nfrom onnxruntime.quantization import quantize_dynamic\n"
            "quantize_dynamic(sys.argv[1], sys.argv[2])\n")
    return run_quiet([sys.executable, "-c", code, model, out])


def interleaved(paths, shape, threads, rounds, runs):
    """Per variant: (median ms, [fp32_ms / variant_ms per round]); variant 0 is fp32."""
    times = interleaved_times([session(p, threads) for p in paths], shape, rounds, runs)
    ratios = [[base / t for base, t in zip(times[0], ts)] for ts in times]
    return [(statistics.median(ts), r) for ts, r in zip(times, ratios)]


def kernel_ms(path, shape, threads, work, runs=30, warmup=3):
    """ONNX Runtime profiler: ms per run spent in each op type (after `warmup` runs)."""
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    o.enable_profiling = True
    o.profile_file_prefix = os.path.join(work, "profile_" + os.path.basename(path))
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    feed = {s.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    for _ in range(warmup + runs):
        s.run(None, feed)
    with open(s.end_profiling()) as f:
        events = json.load(f)
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    after = starts[warmup] if len(starts) > warmup else 0
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= after:
            per_op[e["args"]["op_name"]] += e["dur"] / 1000 / runs
    return per_op


def logits(path, x, threads):
    s = session(path, threads)
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 200]})[0] for i in range(0, len(x), 200)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profagent", default=os.path.join(ROOT, "target", "release", "profagent"))
    ap.add_argument("--models", default="resnet18,resnet20,vit_tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--runs", type=int, default=20, help="runs per block at batch 1 (batch N: runs/N, at least 2)")
    ap.add_argument("--calib-count", type=int, default=500)
    ap.add_argument("--eval-count", type=int, default=2000)
    ap.add_argument("--baseline-tool", help="another profagent binary (e.g. a build of the previous "
                    "commit): its output is the variant 'ours@baseline'")
    ap.add_argument("--no-check", action="store_true",
                    help="pass --check-runtime none to every profagent quantize (score, and time, even the "
                         "models its pre-write fidelity check refuses, e.g. an older build's)")
    ap.add_argument("--kernels", action="store_true",
                    help="also print ONNX Runtime's profiler time per op type at batch 1")
    ap.add_argument("--extra", action="append", default=[],
                    help="NAME=ARGS: one more profagent variant of the static models, e.g. "
                         "'ours-int8=--activations int8', 'ours-mse=--calibration mse'")
    ap.add_argument("--extra-dynamic", action="append", default=[],
                    help="NAME=ARGS: one more profagent variant of the dynamic models, e.g. "
                         "'ours-mixed=--layer-mode op:Conv=static' (calibration data is added "
                         "when ARGS name static)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quant_fusion_")
    data = {"cifar": cifar(a.calib_count, a.eval_count)}
    if any(m in IMAGENET_MODELS for m in a.models.split(",")):
        data["imagenet"] = imagenet_split(a.calib_count, a.eval_count)
    calib, x_eval, y_eval = data["cifar"]
    for kind, (c, _, _) in data.items():
        np.save(os.path.join(work, f"calib_{kind}.npy"), c)
    load = os.getloadavg()
    print(f"onnxruntime {ort.__version__}, {a.threads} thread(s), {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; calibration {len(calib)} images, scoring {len(x_eval)} "
          f"other images; {a.rounds} interleaved rounds; work dir {work}")
    for key in a.models.split(","):
        model, mode = MODELS[key]
        kind = "imagenet" if key in IMAGENET_MODELS else "cifar"
        calib, x_eval, y_eval = data[kind]
        calib_npy = os.path.join(work, f"calib_{kind}.npy")
        side = 224 if kind == "imagenet" else 32
        variants = [("fp32", model, None)]
        ours = os.path.join(work, f"{key}_ours.onnx")
        base = [a.profagent, "quantize", model, "-o", ours, "--mode", mode]
        if mode == "static":
            base += ["--calib", calib_npy, "--calib-count", str(len(calib))]
        if a.no_check:
            base += ["--check-runtime", "none"]
        variants.append(("ours", ours, run_quiet(base)))
        if a.baseline_tool:
            path = os.path.join(work, f"{key}_ours@baseline.onnx")
            argv = [a.baseline_tool] + base[1:]
            argv[4] = path
            variants.append(("ours@baseline", path, run_quiet(argv)))
        for extra in a.extra if mode == "static" else a.extra_dynamic:
            name, _, args = extra.partition("=")
            path = os.path.join(work, f"{key}_{name}.onnx")
            argv = base[:]
            argv[4] = path
            if mode != "static" and "static" in args:
                argv += ["--calib", calib_npy, "--calib-count", str(len(calib))]
            variants.append((name, path, run_quiet(argv + args.split())))
        if mode == "static":
            for tag, qtype in (("ort-u8", "QUInt8"), ("ort-s8", "QInt8")):
                path = os.path.join(work, f"{key}_{tag}.onnx")
                variants.append((tag, path, ort_static(model, path, calib_npy, qtype)))
        else:
            path = os.path.join(work, f"{key}_ort-dynamic.onnx")
            variants.append(("ort-dynamic", path, ort_dynamic(model, path)))
        print(f"\n## {key} ({mode}, {os.path.basename(model)})")
        print("fusion in ONNX Runtime's optimized graph (int8 kernels | float compute left | Q/DQ/Transpose left):")
        for name, path, _ in variants:
            int8, floats, left = fusion(path, work)
            print(f"  {name:14s} {dict(sorted(int8.items()))} | {dict(sorted(floats.items()))} | {left}")
        print("`profagent profile` fusion coverage (quantized nodes run as int8 kernels | float islands | layout ops):")
        for name, path, _ in variants[1:]:
            got = profile_fusion(a.profagent, path)
            text = "failed" if got is None else f"{got[0]} of {got[1]} | {got[2]} | {got[3]}"
            print(f"  {name:14s} {text}")
        reference = logits(model, x_eval, 2)
        print(f"accuracy on {len(x_eval)} held-out images:")
        for name, path, seconds in variants:
            out = reference if name == "fp32" else logits(path, x_eval, 2)
            top1 = 100 * (out.argmax(1) == y_eval).mean()
            agree = 100 * (out.argmax(1) == reference.argmax(1)).mean()
            cos = np.mean(np.sum(out * reference, 1)
                          / (np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1)))
            size = os.path.getsize(path) / 2**20
            tool = "" if seconds is None else f", tool {seconds:.1f} s"
            print(f"  {name:14s} top-1 {top1:6.2f} %  agreement {agree:6.2f} %  cosine {cos:.5f}  "
                  f"{size:6.2f} MiB{tool}")
        if a.kernels:
            print("ONNX Runtime profiler, batch 1, ms per run by op type (not interleaved: noisier):")
            for name, path, _ in variants:
                per_op = kernel_ms(path, (1, 3, side, side), a.threads, work)
                top = ", ".join(f"{op} {ms:.2f}" for op, ms in per_op.most_common(8))
                print(f"  {name:14s} total {sum(per_op.values()):6.2f}: {top}")
        for batch in [int(b) for b in a.batches.split(",")]:
            runs = max(2, a.runs // batch)
            res = interleaved([p for _, p, _ in variants], (batch, 3, side, side), a.threads, a.rounds, runs)
            print(f"latency batch {batch} ({a.rounds} rounds x {runs} runs; speedup = fp32 / variant, "
                  f"per round: median [min-max]):")
            ours_ratios = res[1][1]
            for (name, _, _), (ms, ratios) in zip(variants, res):
                vs_ours = statistics.median(o / r for o, r in zip(ours_ratios, ratios))
                print(f"  {name:14s} {ms:8.3f} ms  speedup {statistics.median(ratios):5.2f}x "
                      f"[{min(ratios):.2f}-{max(ratios):.2f}]  ours/this {vs_ours:5.2f}x")
            # Side by side: ours (and each extra variant) against onnxruntime's best setting in
            # this run (the faster median of its static or dynamic variants).
            theirs = [(statistics.median(r), n, r) for (n, _, _), (_, r) in zip(variants, res)
                      if n.startswith("ort-")]
            if theirs:
                best, best_name, best_ratios = max(theirs)
                for (name, _, _), (_, ratios) in zip(variants, res):
                    if name == "fp32" or name.startswith("ort-"):
                        continue
                    paired = [o / b for o, b in zip(ratios, best_ratios)]
                    print(f"  {name} vs onnxruntime's best here ({best_name}, {best:.2f}x): "
                          f"{statistics.median(ratios):.2f}x vs {best:.2f}x, paired ratio "
                          f"{statistics.median(paired):.2f}x [{min(paired):.2f}-{max(paired):.2f}]")


if __name__ == "__main__":
    main()
