#!/usr/bin/env python3
"""Guards against `compress` claiming speedups that do not hold (issue 15).

For each model: run `profagent compress`, then re-measure the speed of its final model against
the input in *another process* with onnxruntime's Python API, interleaved (A B / B A blocks,
warm-up discarded, one session alive at a time with more than one thread), and print the tool's
speedup with its stated interval beside the independent re-measurement, side by side from one
run. The check passes when the re-measured median lies within the tool's interval (widened by
the re-measurement's own spread: two noisy measurements of the same ratio).

Usage: bench/remeasure.py --profagent target/release/profagent [--out docs/benchmarks-measurements.md]
Environment: the models and data of ../shared (skipped with a note when absent).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")

# (model, data, preprocessing, holdout images, budget flags): the three models the issue
# names. CIFAR: 200 calibration + 1000 feedback images and a 5,000-image holdout that neither
# saw; ImageNet: 1,300 images in all, so 200 + 500 and the remaining 600 as holdout.
CASES = [
    ("resnet18_cifar10", "data/cifar10-test", "cifar10", ["--feedback-images", "1000", "--holdout-images", "5000"], ["--max-acc-drop", "1"]),
    ("vit_tiny_cifar10", "data/cifar10-test", "cifar10", ["--feedback-images", "1000", "--holdout-images", "5000"], ["--max-acc-drop", "1"]),
    ("mobilenet_v2_imagenet", "data/imagenet-val-1300", "imagenet", ["--feedback-images", "500"], ["--max-acc-drop", "1"]),
]


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def block(path, feeds, threads, runs, warmup=2):
    s = session(path, threads)
    for _ in range(warmup):
        s.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    del s
    return statistics.median(times)


def median_interval(values, confidence=0.95):
    """Distribution-free interval of the median (order statistics of Binomial(n, 1/2))."""
    xs = sorted(values)
    n = len(xs)
    alpha = (1 - confidence) / 2
    k = 0
    while k < n // 2 and sum(math.comb(n, i) for i in range(k + 1)) / 2**n <= alpha:
        k += 1
    if k == 0:
        return statistics.median(xs), xs[0], xs[-1]
    return statistics.median(xs), xs[k - 1], xs[n - k]


def remeasure(reference, candidate, shape, threads, pairs):
    rng = np.random.default_rng(0)
    name = session(reference, threads).get_inputs()[0].name
    feeds = {name: rng.standard_normal(shape).astype(np.float32)}
    first = max(block(reference, feeds, threads, 3), block(candidate, feeds, threads, 3))
    runs = int(min(40, max(3, math.ceil(150 / max(first, 1e-3)))))
    ratios = []
    for i in range(pairs):
        if i % 2 == 0:
            a = block(reference, feeds, threads, runs)
            b = block(candidate, feeds, threads, runs)
        else:
            b = block(candidate, feeds, threads, runs)
            a = block(reference, feeds, threads, runs)
        ratios.append(math.log(a / b))
    m, lo, hi = median_interval(ratios)
    return math.exp(m), math.exp(lo), math.exp(hi)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--profagent", required=True)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-measurements.md"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--runs-dir", default="/tmp/profagent-remeasure")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    if not os.path.isdir(SHARED):
        print(f"skipped: {SHARED} is absent (models and data)", file=sys.stderr)
        return 0
    rows = []
    for model, data, preset, slices, flags in CASES:
        if args.only and model not in args.only.split(","):
            continue
        path = os.path.join(SHARED, "models", model + ".onnx")
        out = os.path.join(args.runs_dir, model)
        command = [args.profagent, "compress", path, "--data", os.path.join(SHARED, data),
                   "--preset", preset, "--out", out, "--threads", str(args.threads),
                   "--rounds", "3", "--calibration-images", "200", *slices,
                   "--sensitivity-groups", "6", *flags]
        print("$", " ".join(command), file=sys.stderr)
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.time() - started
        report_path = os.path.join(out, "report.json")
        if not os.path.isfile(report_path):
            rows.append((model, f"compress failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}", "-", "-", "-", "-", f"{seconds:.0f} s"))
            continue
        report = json.load(open(report_path))
        final = report["final"]
        speed = final.get("speed")
        if speed is None:
            rows.append((model, "-", "the input model was returned unchanged (nothing to re-measure)", "-", "-",
                         ", ".join(final.get("fallback", [])) or "-", f"{seconds:.0f} s"))
            continue
        s = speed["speedup"]
        shape = [1] + list(session(path, 1).get_inputs()[0].shape[1:])
        shape = [d if isinstance(d, int) else 1 for d in shape]
        m, lo, hi = remeasure(path, os.path.join(out, "model.onnx"), shape, args.threads, args.pairs)
        # Both intervals are about the same ratio: it holds when they overlap.
        holds = lo <= s["high"] and s["low"] <= hi
        drop = final.get("acc_drop")
        interval = final.get("drop_interval") or {}
        images = (final.get("holdout_final") or {}).get("images", 0)
        accuracy = (f"{drop:+.2f} [{interval.get('low', float('nan')):+.2f}, {interval.get('high', float('nan')):+.2f}] on {images}"
                    if drop is not None else "no labels")
        rows.append((model,
                     accuracy,
                     f"{s['value']:.2f}x [{s['low']:.2f}, {s['high']:.2f}] ({speed['pairs']} pairs)",
                     f"{m:.2f}x [{lo:.2f}, {hi:.2f}] ({args.pairs} pairs)",
                     "yes" if holds else "NO",
                     ", ".join(final.get("fallback", [])) or "-",
                     f"{seconds:.0f} s"))
        print(rows[-1], file=sys.stderr)
    lines = [
        "# Does the tool's speedup hold when measured again?",
        "",
        "Generated by `bench/remeasure.py` (issue 15): `profagent compress ... --max-acc-drop 1` on each",
        "model, then its final model against the input, re-measured in another process with",
        "onnxruntime's Python API (interleaved blocks, batch 1, random input,",
        f"{args.threads} thread(s)). Machine: {os.uname().machine}, {os.cpu_count()} cores, shared with other work.",
        "",
        "| model | holdout top-1 drop, points [95 %] on images | tool's speedup [95 % interval] | re-measured [95 % interval] | intervals agree | final-check notes | compress time |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
