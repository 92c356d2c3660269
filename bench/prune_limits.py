#!/usr/bin/env python3
"""How far post-training pruning goes without fine-tuning (issue 19): how much the calibration
set's size buys after reconstruction, and MobileNetV2's expansion widths on ImageNet.

    python3 bench/prune_limits.py --profagent target/release/profagent [--work DIR] \\
        [--out docs/benchmarks-prune-limits.md]

1. Calibration size: `profagent prune MODEL --calib <N images> --importance obs --round-to 8`
   (reconstruction on, its default) for N in 256..2048 drawn (seeded) from the 5,000 odd-index
   CIFAR-10 test images, every model scored on the 5,000 even-index ones (the split of
   planner_vs_uniform.py). resnet18_cifar10 at `--ratio 0.25` (every channel group),
   vit_tiny_cifar10 with half of every MLP's hidden units (`--layers '.*mlp.fc1=0.5'`).
   `compress` gives its calibration slice `--calib-samples` images (default 500) of the data.
2. mobilenet_v2_imagenet: the 1,300 bundled ImageNet validation images split once (seeded):
   300 for calibration, 1,000 scored. Uniform cuts of every inverted-residual block's expansion
   width (`--layers '.*conv.0.0=R'`, the units the depthwise conv and the projection consume),
   with OBS, L1 and random importance, with and without reconstruction, and two stage-wise cuts
   (early/middle blocks 2-7 only, late blocks 8-17 only).

Top-1 with the exact two-sided McNemar p against the dense model on the same images (and the
images only the dense model / only the pruned model gets right). No fine-tuning anywhere. The
markdown is printed and, with --out, written; never edit that file by hand.
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SCORE, SEEN, SHARED, cifar, emit, imagenet, mcnemar, predictions, rel  # noqa: E402
from common import profagent_macs as macs  # noqa: E402

MODELS = os.path.join(SHARED, "models")
SIZES = [256, 512, 1024, 2048]
CIFAR_CUTS = [("resnet18_cifar10", ["--ratio", "0.25"], "--ratio 0.25"),
              ("vit_tiny_cifar10", ["--layers", ".*mlp.fc1=0.5"], "--layers '.*mlp.fc1=0.5'")]
MOBILENET_CALIB = 300
MOBILENET_CUTS = [  # label, prune options
    ("expansion 10 %, obs", ["--layers", ".*conv.0.0=0.10", "--importance", "obs"]),
    ("expansion 15 %, obs", ["--layers", ".*conv.0.0=0.15", "--importance", "obs"]),
    ("expansion 15 %, obs, sequential targets", ["--layers", ".*conv.0.0=0.15", "--importance", "obs",
                                                 "--reconstruct", "sequential"]),
    ("expansion 15 %, l1", ["--layers", ".*conv.0.0=0.15", "--importance", "l1"]),
    ("expansion 15 %, l1, no reconstruction", ["--layers", ".*conv.0.0=0.15", "--importance", "l1",
                                               "--no-reconstruct"]),
    ("expansion 15 %, random", ["--layers", ".*conv.0.0=0.15", "--importance", "random"]),
    ("expansion 25 %, obs", ["--layers", ".*conv.0.0=0.25", "--importance", "obs"]),
    ("blocks 2-7 expansion 30 %, obs", ["--layers", r"features\.[2-7]\.conv\.0\.0=0.3", "--importance", "obs"]),
    ("blocks 8-17 expansion 30 %, obs", ["--layers", r"features\.(8|9|1[0-7])\.conv\.0\.0=0.3",
                                         "--importance", "obs"]),
]


def prune(tool, model, out, calib, samples, options):
    argv = [tool, "prune", model, "-o", out, "--calib", calib, "--calib-samples", str(samples),
            "--round-to", "8", "--check-runtime", "none", "-q", *options]
    if not os.path.exists(out):
        started = time.time()
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr[-2000:]}")
        print(f"{time.time() - started:.0f} s: {' '.join(rel(a) for a in argv)}", file=sys.stderr)


def row(label, tool, model, pruned, dense_ok, x, y):
    ok = predictions(pruned, x) == y
    p, only_dense, only_pruned = mcnemar(dense_ok, ok)
    return (f"| {label} | {macs(tool, pruned) / macs(tool, model):.3f} | {100 * ok.mean():.2f} | "
            f"{100 * (ok.mean() - dense_ok.mean()):+.2f} | p = {p:.3g} ({only_dense} / {only_pruned}) |")


HEADER = ["| variant | MACs (of dense) | top-1 % | vs dense | vs dense: p (only dense right / only pruned right) |",
          "|---|---|---|---|---|"]


def calibration_size(tool, work):
    lines = ["## Calibration size after reconstruction (CIFAR-10)", "",
             "`profagent prune MODEL CUT --importance obs --round-to 8 --calib <N odd-index test images>`, "
             "scored on the 5,000 even-index test images.", ""]
    x, y = cifar(SCORE)
    order = np.random.default_rng(1).permutation(SEEN)
    for name, cut, shown in CIFAR_CUTS:
        model = os.path.join(MODELS, name + ".onnx")
        dense_ok = predictions(model, x) == y
        lines += [f"### {name} (`{shown}`)", "", *HEADER,
                  f"| dense fp32 | 1.000 | {100 * dense_ok.mean():.2f} | +0.00 | |"]
        for n in SIZES:
            calib = os.path.join(work, f"cifar_calib_{n}.npy")
            if not os.path.exists(calib):
                np.save(calib, cifar(sorted(order[:n]))[0])
            out = os.path.join(work, f"{name}_calib{n}.onnx")
            prune(tool, model, out, calib, n, [*cut, "--importance", "obs"])
            lines.append(row(f"{n} calibration images", tool, model, out, dense_ok, x, y))
        lines.append("")
    return lines


def mobilenet(tool, work):
    model = os.path.join(MODELS, "mobilenet_v2_imagenet.onnx")
    order = np.random.default_rng(0).permutation(1300)
    calib = os.path.join(work, "imagenet_calib.npy")
    if not os.path.exists(calib):
        np.save(calib, imagenet(sorted(order[:MOBILENET_CALIB]))[0])
    x, y = imagenet(sorted(order[MOBILENET_CALIB:]))
    dense_ok = predictions(model, x) == y
    lines = ["## mobilenet_v2_imagenet: expansion widths (ImageNet)", "",
             f"`profagent prune mobilenet_v2_imagenet.onnx CUT --round-to 8 --calib <{MOBILENET_CALIB} "
             f"ImageNet validation images>` (reconstruction on unless the row says not), scored on the "
             f"other {len(y)}. One image is 0.1 point.", "", *HEADER,
             f"| dense fp32 | 1.000 | {100 * dense_ok.mean():.2f} | +0.00 | |"]
    for i, (label, options) in enumerate(MOBILENET_CUTS):
        out = os.path.join(work, f"mobilenet_{i}.onnx")
        prune(tool, model, out, calib, MOBILENET_CALIB, options)
        lines.append(row(label, tool, model, out, dense_ok, x, y))
    return lines + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profagent", required=True)
    ap.add_argument("--work", help="working folder; pruned models already in it are reused")
    ap.add_argument("--out")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="profagent_limits_")
    os.makedirs(work, exist_ok=True)
    lines = ["# How far post-training pruning goes: calibration size and MobileNetV2", "",
             f"Generated by `python3 bench/prune_limits.py --profagent {rel(args.profagent)}` on "
             + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
             + f" ({os.cpu_count()} CPUs, shared). Do not edit by hand. No fine-tuning anywhere; "
             "accuracy only (no timings).", ""]
    lines += calibration_size(args.profagent, work)
    lines += mobilenet(args.profagent, work)
    emit(lines, args.out)


if __name__ == "__main__":
    main()
