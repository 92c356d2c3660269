"""Layer-wise reconstruction after pruning: independent vs sequential targets, and the cost of
the tool itself (issue 19, items 1 and 5).

    python3 bench/reconstruct.py --profagent target/release/profagent \
        [--baseline-tool OTHER_BUILD] [--out docs/benchmarks-reconstruct.md]

Accuracy: `profagent prune MODEL --ratio R --calib <512 CIFAR-10 test images> --preprocess
cifar10` with `--no-reconstruct` (bias correction only), `--reconstruct independent` and
`--reconstruct sequential`, each scored (top-1, ONNX Runtime in this process) on 1 000 other
CIFAR-10 test images; no fine-tuning. Calibration images are test indices i % 10 == 5 (the
first 512), scored images i % 10 == 0: disjoint.

Cost: the same command on resnet18_cifar10 under `/usr/bin/time -v` (wall, user+sys CPU
seconds, peak RSS) with the tool's own breakdown (runtime / Gram / solve). The machine is
shared: the load average before each run is printed; CPU seconds are the load-independent
figure. The markdown is printed and, with --out, written (never edit that file by hand).
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SHARED, cifar, emit, predictions, rel  # noqa: E402
from common import profagent_macs as macs  # noqa: E402

MODELS = os.path.join(SHARED, "models")
CALIB = [i for i in range(10000) if i % 10 == 5][:512]
SCORE = [i for i in range(10000) if i % 10 == 0]


def load():
    return os.getloadavg()[0]


def timed(argv):
    """Runs argv under /usr/bin/time -v: (stdout, wall s, user+sys s, peak RSS MB, load before)."""
    before = load()
    p = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr[-2000:]}")
    field = lambda name: re.search(rf"{name}: (.*)", p.stderr).group(1).strip()
    wall = field(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\)").split(":")
    wall_s = sum(float(v) * 60 ** i for i, v in enumerate(reversed(wall)))
    cpu = float(field("User time \\(seconds\\)")) + float(field("System time \\(seconds\\)"))
    rss = int(field("Maximum resident set size \\(kbytes\\)")) / 1024
    return p.stdout, wall_s, cpu, rss, before


def top1(path, x, y):
    return 100.0 * float((predictions(path, x) == y).mean())


VARIANTS = [("bias correction only", ["--no-reconstruct"]),
            ("independent", ["--reconstruct", "independent"]),
            ("sequential", ["--reconstruct", "sequential"])]


def prune(tool, model, out, ratio, calib, extra):
    argv = [tool, "prune", model, "-o", out, "--ratio", str(ratio), "--calib", calib, "--preprocess", "cifar10",
            "--calib-samples", str(len(CALIB)), "--check-runtime", "none", *extra]
    return timed(argv), argv


# The line `prune` prints about reconstruction: passes, then runtime, Gram and solve seconds.
RECONSTRUCTION_LINE = re.compile(r"reconstruction: (\d+) passes .*?, ([\d.]+) s running the model, ([\d.]+) s "
                                 r"sampling rows and Gram updates, ([\d.]+) s solving")


def breakdown(stdout):
    m = RECONSTRUCTION_LINE.search(stdout)
    return f"{m.group(1)} passes: runtime {m.group(2)} s, Gram {m.group(3)} s, solve {m.group(4)} s" if m else "-"


def vit_b16_cost(args, work):
    """Issue 19 item 5's ViT-B/16 row: the cost of pruning its MLPs and heads with reconstruction.
    Random weights and random inputs (no ImageNet weights here): the cost depends on the shapes,
    not on the values."""
    if not os.path.exists(args.vit_b16):
        subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_vit_b16.py"),
                        args.vit_b16], check=True)
    calib = os.path.join(work, "vit_calib.npy")
    np.save(calib, np.random.default_rng(0).standard_normal((args.vit_calib, 3, 224, 224)).astype(np.float32))
    out = os.path.join(work, "vit_b16_pruned.onnx")
    argv = [args.profagent, "prune", args.vit_b16, "-o", out, "--layers", ".*mlp.fc1=0.2", "--heads", "0.25",
            "--calib", calib, "--check-runtime", "none"]
    stdout, wall, cpu, rss, before = timed(argv)
    fraction = macs(args.profagent, out) / macs(args.profagent, args.vit_b16)
    return ["", f"ViT-B/16 (random weights): `profagent prune vit_b16.onnx --layers '.*mlp.fc1=0.2' --heads 0.25 "
            f"--calib <{args.vit_calib} random 224x224 inputs> --check-runtime none` (issue 19 asks for at most "
            "5 minutes on 2 cores), default independent reconstruction.", "",
            "| MACs after (of dense) | wall s | CPU s (user+sys) | peak RSS MB | load before | reconstruction time |",
            "|---|---|---|---|---|---|",
            f"| {fraction:.3f} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {before:.1f} | {breakdown(stdout)} |"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profagent", required=True)
    ap.add_argument("--baseline-tool", help="another build whose cost is measured beside (same run)")
    ap.add_argument("--models", default="resnet20_cifar10,vit_tiny_cifar10")
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--cost-model", default="resnet18_cifar10")
    ap.add_argument("--vit-b16", metavar="PATH",
                    help="also time ViT-B/16 (bench/make_vit_b16.py writes one with random weights; written there "
                         "when missing): MLP 20 %% and heads 25 %% with --vit-calib random 224x224 images")
    ap.add_argument("--vit-calib", type=int, default=128)
    ap.add_argument("--out")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="profagent_recon_")
    c, _ = cifar(CALIB)
    calib = os.path.join(work, "calib.npy")
    np.save(calib, c)
    x, y = cifar(SCORE)
    lines = [f"# Layer-wise reconstruction: independent vs sequential, and its cost",
             "",
             f"Generated by `python3 bench/reconstruct.py --profagent {rel(args.profagent)}"
             + (" --baseline-tool BUILD" if args.baseline_tool else "")
             + (f" --vit-b16 {rel(args.vit_b16)} --vit-calib {args.vit_calib}" if args.vit_b16 else "") + "` on "
             + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
             + f" ({os.cpu_count()} CPUs, shared with other builds). Do not edit by hand.",
             "",
             f"Uniform pruning at ratio {args.ratio} (`--ratio {args.ratio}`, L1 importance, bias correction on), "
             f"{len(CALIB)} calibration images (CIFAR-10 test indices i % 10 == 5), top-1 on {len(SCORE)} other "
             "test images (i % 10 == 0), no fine-tuning. Wall time is under the load shown (2 cores shared by "
             "several builds); CPU is user+sys seconds.",
             "",
             "| model | variant | MACs (of dense) | top-1 % | vs dense | prune wall s | CPU s | peak RSS MB | load | reconstruction time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.models.split(","):
        model = os.path.join(MODELS, name + ".onnx")
        dense = top1(model, x, y)
        dense_macs = macs(args.profagent, model)
        lines.append(f"| {name} | dense | 1.000 | {dense:.2f} | | | | | | |")
        for label, extra in VARIANTS:
            out = os.path.join(work, f"{name}_{label.split()[0]}.onnx")
            (stdout, wall, cpu, rss, before), _ = prune(args.profagent, model, out, args.ratio, calib, extra)
            acc = top1(out, x, y)
            lines.append(f"| {name} | {label} | {macs(args.profagent, out) / dense_macs:.3f} | {acc:.2f} | "
                         f"{acc - dense:+.2f} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {before:.1f} | {breakdown(stdout)} |")
            print(lines[-1], file=sys.stderr)
    lines += ["", f"Cost of the tool: `profagent prune {args.cost_model}.onnx --ratio {args.ratio} --calib <{len(CALIB)} "
              "images> --check-runtime none` (issue 19 asks for at most 60 s and 2 GB on 2 cores).", "",
              "| build | variant | wall s | CPU s (user+sys) | peak RSS MB | load before | reconstruction time |",
              "|---|---|---|---|---|---|---|"]
    model = os.path.join(MODELS, args.cost_model + ".onnx")
    tools = [("this build", args.profagent)] + ([("baseline", args.baseline_tool)] if args.baseline_tool else [])
    for build, tool in tools:
        for label, extra in VARIANTS[1:]:
            if build == "baseline" and label != "independent":
                continue
            if build == "baseline":
                extra = []  # builds before `--reconstruct` had independent reconstruction only
            out = os.path.join(work, f"cost_{build.split()[0]}_{label}.onnx")
            (stdout, wall, cpu, rss, before), _ = prune(tool, model, out, args.ratio, calib, extra)
            lines.append(f"| {build} | {label} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {before:.1f} | {breakdown(stdout)} |")
            print(lines[-1], file=sys.stderr)
    if args.vit_b16:
        lines += vit_b16_cost(args, work)
    emit(lines, args.out)


if __name__ == "__main__":
    main()
