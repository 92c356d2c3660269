#!/usr/bin/env python3
"""Shared pieces of the benchmark driver (bench/run.py): command recording, ONNX Runtime
measurement, data loading, table formatting.

The method, in short:

Runs the `profagent` CLI and the Python baselines as subprocesses (each command is recorded in
the document), then measures every variant of a table in THIS process with ONNX Runtime: one
session per variant, fixed intra-op threads, latency as the median over interleaved rounds
(variant A, B, C, A, B, C, ...) so that load from other processes hits all variants alike.
Ratios are always against the baseline measured in the same run.
"""
import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465]) * 255
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616]) * 255
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
EVAL_THREADS = 2  # accuracy passes (not timed) use both cores


def interleaved_times(sessions, shape, rounds, runs):
    """Per session, the ms per run of each round: two warm-up runs each, then rounds that run
    every session `runs` times in turn on one random input of `shape`, in a new random order
    each round (seeded): with a fixed order A B C, every round C follows B, and a variant that
    leaves caches or the memory system disturbed (a slow dynamic-int8 model) slows the same
    neighbour each time; tables timed that way moved 10-30 % between two runs."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    order = np.random.default_rng(1)
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    for s, f in zip(sessions, feeds):
        s.run(None, f)
        s.run(None, f)
    times = [[] for _ in sessions]
    for _ in range(rounds):
        for i in order.permutation(len(sessions)):
            s, f = sessions[i], feeds[i]
            t = time.perf_counter()
            for _ in range(runs):
                s.run(None, f)
            times[i].append((time.perf_counter() - t) / runs * 1000)
    return times


def emit(lines, out=None):
    """Prints a generated document (lines joined by newlines) and, with `out`, writes it there."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


def rel(path):
    """Paths in recorded commands: relative to the repo root where possible."""
    try:
        r = os.path.relpath(path, ROOT)
        return path if r.startswith("../..") else r
    except ValueError:
        return path


class Bench:
    def __init__(self, args):
        self.args = args
        self.tool = args.profagent
        self.threads = args.threads
        self.work = tempfile.mkdtemp(prefix="profagent_bench_")
        self.commands = []
        self.sections = []
        self.failures = []
        self.started = time.time()
        self.header_fn = None  # set by run.py: (bench, elapsed seconds) -> markdown

    # ---------- commands ----------
    def cmd(self, argv, label, python_inline=None, ok_codes=(0,), timeout=None):
        """Runs argv, records it, returns (wall seconds, stdout); raises RuntimeError on failure."""
        shown = python_inline or " ".join(shlex.quote(rel(a)) for a in argv)
        self.commands.append(f"[{label}] {shown}")
        start = time.perf_counter()
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            msg = f"{label}: stopped after the runner's {timeout} s limit"
            self.failures.append(msg)
            raise RuntimeError(msg)
        wall = time.perf_counter() - start
        if p.returncode not in ok_codes:
            tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-3:]
            msg = f"{label}: exit {p.returncode}: {' | '.join(tail)}"
            self.failures.append(msg)
            print("FAILED", msg, file=sys.stderr)
            raise RuntimeError(msg)
        print(f"  {wall:7.1f} s  {label}", file=sys.stderr)
        return wall, p.stdout

    def profagent(self, verb, *rest, label=None, ok_codes=(0,), timeout=None):
        return self.cmd([self.tool, verb, *map(str, rest)], label or f"profagent {verb}", ok_codes=ok_codes, timeout=timeout)

    def ort_quantize_dynamic(self, model, out):
        code = "import sys; from onnxruntime.quantization import quantize_dynamic as q; q(sys.argv[1], sys.argv[2])"
        return self.cmd([sys.executable, "-c", code, model, out], "onnxruntime quantize_dynamic",
                        f"python3 -c 'from onnxruntime.quantization import quantize_dynamic; quantize_dynamic(MODEL, OUT)'  # {rel(model)}")[0]

    def ort_quantize_static(self, model, out, calib_npy, input_name):
        code = ("import sys, numpy as np\n"
                "from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat\n"
                "class R(CalibrationDataReader):\n"
                "  def __init__(s):\n"
                "    x = np.load(sys.argv[3]); s.it = iter([{sys.argv[4]: x[i:i+50]} for i in range(0, len(x), 50)])\n"
                "  def get_next(s): return next(s.it, None)\n"
                "quantize_static(sys.argv[1], sys.argv[2], R(), quant_format=QuantFormat.QDQ, per_channel=True)\n")
        return self.cmd([sys.executable, "-c", code, model, out, calib_npy, input_name], "onnxruntime quantize_static",
                        f"python3 -c 'quantize_static(MODEL, OUT, reader(500 images, batches of 50), quant_format=QDQ, per_channel=True)'  # {rel(model)}")[0]

    def static_profile(self, model):
        _, out = self.profagent("profile", model, "--json", "-", label=f"profagent profile (params/MACs) {os.path.basename(model)}")
        summary = json.loads(out)["model"]
        return summary["params"], summary["macs"]

    # ---------- ONNX Runtime measurements ----------
    def session(self, path, threads):
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

    def latency(self, paths, shape, rounds=None, runs=None):
        """Median ms per batch-1 run for each model; rounds interleave the variants."""
        sessions = [self.session(p, self.threads) for p in paths]
        times = interleaved_times(sessions, shape, rounds or self.args.rounds, runs or 3)
        return [float(np.median(t)) for t in times]

    def outputs(self, path, x, batch=100):
        s = self.session(path, EVAL_THREADS)
        name = s.get_inputs()[0].name
        return np.concatenate([s.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])

    def section(self, title, text):
        self.sections.append(f"## {title}\n\n{text.strip()}\n")
        self.write_doc(partial=True)

    def checkpoint(self, title, text):
        """Writes the document with a section still in progress (a long run leaves results behind)."""
        self.write_doc(partial=True, extra=f"## {title} (in progress)\n\n{text.strip()}\n")

    def write_doc(self, partial=False, extra=""):
        elapsed = time.time() - self.started
        header = self.header_fn(self, elapsed)
        if partial:
            header += "\n**This run had not finished when this file was written: later sections are missing.**\n"
        body = "\n".join(self.sections) + ("\n" + extra if extra else "")
        cmds = "\n".join(self.commands)
        failures = "\n".join(f"- `{f}`" for f in self.failures) or "- none"
        doc = (f"{header}\n{body}\n## Failed commands in this run\n\n{failures}\n\n"
               f"## Every command this run executed\n\n```\n{cmds}\n```\n")
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(doc)
        os.replace(tmp, self.args.out)


# ---------- data ----------
def cifar(indices):
    root = os.path.join(SHARED, "data", "cifar10-test")
    files = [(os.path.join(root, c, f), ci) for ci, c in enumerate(sorted(os.listdir(root)))
             for f in sorted(os.listdir(os.path.join(root, c)))]
    xs = [np.asarray(Image.open(files[i][0]).convert("RGB"), dtype=np.float32) for i in indices]
    x = ((np.stack(xs) - CIFAR_MEAN) / CIFAR_STD).astype(np.float32).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.array([files[i][1] for i in indices])


def imagenet(indices):
    root = os.path.join(SHARED, "data", "imagenet-val-1300")
    lines = [l.split(",") for l in open(os.path.join(root, "dataset.txt")) if l.strip()]
    xs, ys = [], []
    for i in indices:
        path, label = lines[i][0].strip(), int(lines[i][1])
        img = Image.open(os.path.join(root, path)).convert("RGB")
        w, h = img.size
        s = 256 / min(w, h)
        img = img.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BILINEAR)
        w, h = img.size
        l, t = (w - 224) // 2, (h - 224) // 2
        a = np.asarray(img.crop((l, t, l + 224, t + 224)), dtype=np.float32) / 255
        xs.append((a - IMAGENET_MEAN) / IMAGENET_STD)
        ys.append(label)
    return np.ascontiguousarray(np.stack(xs).astype(np.float32).transpose(0, 3, 1, 2)), np.array(ys)


def predictions(path, x, threads=2, batch=200):
    """Top-1 class of every sample of `x` under the model at `path` (ONNX Runtime, CPU)."""
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + batch]})[0].argmax(1) for i in range(0, len(x), batch)])


def profagent_macs(tool, path):
    """The model's MACs at batch 1 as `profagent profile --json` counts them."""
    out = subprocess.run([tool, "profile", path, "--json", "-"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["model"]["macs"]


# ---------- the planner benches' CIFAR-10 split (planner_vs_uniform.py, table5.py) ----------
# Odd indices (5,000 images): all a compress run sees. Even indices (5,000): score every model.
SEEN = [i for i in range(10000) if i % 2 == 1]
SCORE = [i for i in range(10000) if i % 2 == 0]
CALIB = SEEN[::19][:256]  # the uniform baselines' calibration images, from the odd half


def cifar_files():
    root = os.path.join(SHARED, "data", "cifar10-test")
    return [(os.path.join(root, c, f), c) for c in sorted(os.listdir(root))
            for f in sorted(os.listdir(os.path.join(root, c)))]


def seen_folder(work):
    """A class-folder tree of symlinks to the odd-index images (what compress may see); made
    once per working folder."""
    folder = os.path.join(work, "seen")
    if os.path.isdir(folder):
        return folder
    all_files = cifar_files()
    for i in SEEN:
        path, label = all_files[i]
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        os.symlink(path, os.path.join(folder, label, os.path.basename(path)))
    return folder


def run_tool(argv, env=None):
    """Runs a profagent command; exit 1 (compress ended without meeting every target) is a result."""
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    if p.returncode not in (0, 1):
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr[-3000:]}")
    return p


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


def uniform_prune(tool, model, out, ratio, importance, calib, reconstruct):
    """`profagent prune --ratio` (uniform); with `calib`, on CALIB's images, reconstructing unless told not to."""
    argv = [tool, "prune", model, "-o", out, "--ratio", f"{ratio:.6f}", "--importance", importance,
            "--check-runtime", "none"]
    if calib:
        argv += ["--calib", calib, "--calib-samples", str(len(CALIB))]
        if not reconstruct:
            argv += ["--no-reconstruct"]
    run_tool(argv)


def matched_ratio(tool, model, target, work):
    """The uniform ratio whose pruned graph has `target` MACs (bisection on the graph alone)."""
    lo, hi = 0.0, 0.9
    out = os.path.join(work, "probe.onnx")
    for _ in range(12):
        mid = (lo + hi) / 2
        uniform_prune(tool, model, out, mid, "l1", None, False)
        if profagent_macs(tool, out) > target:
            lo = mid
        else:
            hi = mid
    return hi


def fidelity(out, ref):
    cos = np.sum(out * ref, 1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1) + 1e-30)
    return float(np.mean(cos)), float(np.mean(out.argmax(1) == ref.argmax(1)) * 100)


def mb(n):
    return f"{n / 1e6:.2f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
