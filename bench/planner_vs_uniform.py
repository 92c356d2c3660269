"""The built-in planner against uniform pruning at matched MACs (issue 20, must-shows 1-2;
issue 19's uniform L1/L2/random baselines with and without reconstruction).

    python3 bench/planner_vs_uniform.py --profagent target/release/profagent \
        [--models resnet18_cifar10:0.6,vit_tiny_cifar10:0.6,resnet20_cifar10:0.8] \
        [--out docs/benchmarks-planner.md]

Data: the CIFAR-10 test set split in two by index. Odd indices (5,000 images) are all the
planner run sees: `profagent compress MODEL --data <odd half> --target-macs 0.6 --max-acc-drop 1`
(MODEL:FRACTION sets another MACs target for that model) with the built-in planner (its own seeded split into calibration, feedback and holdout). Even
indices (5,000 images) score every model here, images neither calibration nor feedback used.

Baselines: `profagent prune --ratio R` with L1, L2 and random importance, each with the default
layer-wise reconstruction and with `--no-reconstruct` (bias correction only), on 256
calibration images from the odd half, at the ratio whose MACs match the planner's model
(bisection on the graph alone). No fine-tuning anywhere.

Significance: exact two-sided McNemar test on the 5,000 scoring images between the planner's
model and the best baseline at its MACs (only the images exactly one of the two gets right
count). The markdown is printed and, with --out, written (never edit that file by hand).
"""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED, cifar, predictions, rel  # noqa: E402
from common import profagent_macs as macs  # noqa: E402

MODELS = os.path.join(SHARED, "models")
ROOT = os.path.join(SHARED, "data", "cifar10-test")
SEEN = [i for i in range(10000) if i % 2 == 1]
SCORE = [i for i in range(10000) if i % 2 == 0]
CALIB = SEEN[::19][:256]


def files():
    return [(os.path.join(ROOT, c, f), c) for c in sorted(os.listdir(ROOT))
            for f in sorted(os.listdir(os.path.join(ROOT, c)))]


def seen_folder(work):
    """A class-folder tree of symlinks to the odd-index images (what compress may see)."""
    folder = os.path.join(work, "seen")
    all_files = files()
    for i in SEEN:
        path, label = all_files[i]
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        os.symlink(path, os.path.join(folder, label, os.path.basename(path)))
    return folder


def run(argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode not in (0, 1):  # 1: compress ended without meeting every target
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr[-3000:]}")
    return p


def correct(path, x, y):
    return predictions(path, x) == y


def mcnemar(a, b):
    """Exact two-sided McNemar p-value of a vs b (per-image correctness), with the discordant counts."""
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(b & ~a))
    n = only_a + only_b
    if n == 0:
        return 1.0, only_a, only_b
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail), only_a, only_b


def prune(tool, model, out, ratio, importance, calib, reconstruct):
    argv = [tool, "prune", model, "-o", out, "--ratio", f"{ratio:.6f}", "--importance", importance,
            "--check-runtime", "none"]
    if calib:
        argv += ["--calib", calib, "--calib-samples", str(len(CALIB))]
        if not reconstruct:
            argv += ["--no-reconstruct"]
    run(argv)


def matched_ratio(tool, model, target, work):
    """The uniform ratio whose pruned graph has `target` MACs (bisection on the graph alone)."""
    lo, hi = 0.0, 0.9
    out = os.path.join(work, "probe.onnx")
    for _ in range(12):
        mid = (lo + hi) / 2
        prune(tool, model, out, mid, "l1", None, False)
        if macs(tool, out) > target:
            lo = mid
        else:
            hi = mid
    return hi


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profagent", required=True)
    ap.add_argument("--models", default="resnet18_cifar10:0.6,vit_tiny_cifar10:0.6,resnet20_cifar10:0.8")
    ap.add_argument("--target-macs", type=float, default=0.6)
    ap.add_argument("--max-acc-drop", type=float, default=1.0)
    ap.add_argument("--out")
    ap.add_argument("--work", help="working folder; runs and pruned models already in it are reused")
    args = ap.parse_args()
    tool = args.profagent
    work = args.work or tempfile.mkdtemp(prefix="profagent_planner_")
    os.makedirs(work, exist_ok=True)
    seen = os.path.join(work, "seen") if os.path.isdir(os.path.join(work, "seen")) else seen_folder(work)
    c, _ = cifar(CALIB)
    calib = os.path.join(work, "calib.npy")
    np.save(calib, c)
    x, y = cifar(SCORE)
    budget = f"--target-macs {args.target_macs} --max-acc-drop {args.max_acc_drop}"
    lines = ["# The built-in planner against uniform pruning at matched MACs", "",
             f"Generated by `python3 bench/planner_vs_uniform.py --profagent {rel(tool)}` on "
             + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
             + f" ({os.cpu_count()} CPUs, shared). Do not edit by hand.", "",
             f"`profagent compress MODEL --data <5,000 odd-index CIFAR-10 test images> {budget}` with the "
             "built-in planner (its own calibration/feedback/holdout split of those images); every model is "
             f"scored on the {len(SCORE)} even-index test images, which neither calibration nor feedback used. "
             f"Uniform baselines: `profagent prune --ratio R` at the ratio matching the planner's MACs, "
             f"{len(CALIB)} calibration images from the odd half, with the default reconstruction and with "
             "`--no-reconstruct` (bias correction only). No fine-tuning. p: exact two-sided McNemar test of "
             "the planner's model against that row on the same scoring images.", ""]
    for spec in args.models.split(","):
        name, _, fraction = spec.partition(":")
        target_macs = float(fraction) if fraction else args.target_macs
        model = os.path.join(MODELS, name + ".onnx")
        dense_macs = macs(tool, model)
        dense = correct(model, x, y)
        run_dir = os.path.join(work, "compress_" + name)
        done = os.path.join(run_dir, "report.json")
        if not (os.path.exists(done) and json.load(open(done)).get("final")):
            run([tool, "compress", model, "--data", seen, "--preset", "cifar10", "--target-macs",
                 str(target_macs), "--max-acc-drop", str(args.max_acc_drop), "--out", run_dir])
        report = json.load(open(os.path.join(run_dir, "report.json")))
        accepted = [r for r in report["rounds"] if r.get("accepted")]
        planned = os.path.join(run_dir, "model.onnx")
        planned_macs = macs(tool, planned)
        ours = correct(planned, x, y)
        rows = [("dense fp32", dense_macs, dense), ("built-in planner (compress)", planned_macs, ours)]
        if planned_macs < dense_macs:
            ratio = matched_ratio(tool, model, planned_macs, work)
            for importance in ["l1", "l2", "random"]:
                for reconstruct in [True, False]:
                    out = os.path.join(work, f"{name}_{importance}_{reconstruct}.onnx")
                    if not os.path.exists(out):
                        prune(tool, model, out, ratio, importance, calib, reconstruct)
                    label = f"uniform {importance} r={ratio:.3f}" + ("" if reconstruct else " (no reconstruction)")
                    rows.append((label, macs(tool, out), correct(out, x, y)))
        final = report["final"]
        own = lambda e: "%.2f %%" % e["top1"] if e and e.get("top1") is not None else "-"
        lines += [f"## {name} (`--target-macs {target_macs}`)", "",
                  f"Planner run: {len(accepted)} accepted round(s) of {len(report['rounds'])}; stop: "
                  f"{final.get('stop_reason')}; on its own holdout ({(final.get('holdout_final') or {}).get('images')} "
                  f"images): {own(final.get('holdout_final'))} vs {own(final.get('holdout_baseline'))} dense.", "",
                  "| model | MACs (of dense) | top-1 % on 5,000 unseen | vs dense | vs planner: p (only planner right / only this right) |",
                  "|---|---|---|---|---|"]
        for label, m, ok in rows:
            p_value = "" if label.startswith("built-in") else "p = %.3g (%d / %d)" % mcnemar(ours, ok)
            lines.append(f"| {label} | {m / dense_macs:.3f} | {100 * ok.mean():.2f} | "
                         f"{100 * (ok.mean() - dense.mean()):+.2f} | {p_value} |")
        baselines = rows[2:]
        if baselines:
            best = max(baselines, key=lambda r: r[2].mean())
            pv, a, b = mcnemar(ours, best[2])
            verdict = ("better" if ours.mean() > best[2].mean() else "worse") + (
                ", significant (p < 0.05)" if pv < 0.05 else ", not significant (p >= 0.05)")
            lines += ["", f"Best baseline at the planner's MACs: {best[0]} ({100 * best[2].mean():.2f} %); the "
                      f"planner is {verdict}: p = {pv:.3g}, {a} images only the planner gets right, {b} only the baseline."]
        lines.append("")
        print("\n".join(lines[-(len(rows) + 6):]), file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        open(args.out, "w").write(text)


if __name__ == "__main__":
    main()
