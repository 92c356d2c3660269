#!/usr/bin/env python3
"""Does profagent run on models it was not written for? A sweep over torchvision architectures.

Exports each model with random weights (`bench/export_models.py`'s ZOO, through a Python that
has torch: Debian's python3-torch and python3-torchvision, `--torch-python`), then runs the
commands a new user runs on it and records what each one did:

- `profile --json` (MACs, parameters), `prune --list` (prunable groups, and the most common
  reason a group is not prunable);
- `prune --ratio R --round-to runtime --calib` (reconstruction on by default) with 64
  calibration images (ImageNet validation images 0-63, preprocessed at the model's input side),
  then the pruned model's MACs;
- `quantize --mode dynamic` and `quantize --mode static --calib` (the same 64 images), with the
  int8-kernel line the tool prints;
- the pruned model quantized both ways too, against the original quantized the same way
  (issue 19: does pruning add speed to quantization, and at what fidelity?);
- every written model scored against the original on 64 other ImageNet images (indices
  1000-1063): mean output cosine (random weights: accuracy is meaningless, fidelity is not), and
  timed against it at batch 1, 1 thread, interleaved rounds in this process (paired per-round
  ratio, median [min-max]).

A command that exits with anything but 0 is listed with its last line; exit 101 is a panic
(a defect). The output file is generated; never edit it by hand.

    python3 bench/zoo.py --profagent target/release/profagent --out docs/benchmarks-zoo.md
"""
import argparse
import collections
import json
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from common import (HERE, IMAGENET_MEAN, IMAGENET_STD, SHARED, emit, interleaved_times, rel,
                    table)

import onnxruntime as ort

MODELS = ["resnet101", "vit_b_16", "resnet50", "resnext50_32x4d", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny",
          "regnet_y_400mf", "densenet121", "shufflenet_v2_x0_5", "squeezenet1_1", "googlenet",
          "inception_v3", "mnasnet0_5", "vgg11_bn", "swin_t", "lraspp_mobilenet_v3_large"]
CALIB = list(range(64))
SCORE = list(range(1000, 1064))


def images(indices, side):
    """ImageNet validation images, resized (shorter side side*8/7) and centre-cropped to side."""
    root = os.path.join(SHARED, "data", "imagenet-val-1300")
    lines = [l.split(",") for l in open(os.path.join(root, "dataset.txt")) if l.strip()]
    xs = []
    for i in indices:
        img = Image.open(os.path.join(root, lines[i][0].strip())).convert("RGB")
        w, h = img.size
        short = round(side * 8 / 7)
        s = short / min(w, h)
        img = img.resize((max(short, round(w * s)), max(short, round(h * s))), Image.BILINEAR)
        w, h = img.size
        l, t = (w - side) // 2, (h - side) // 2
        a = np.asarray(img.crop((l, t, l + side, t + side)), dtype=np.float32) / 255
        xs.append((a - IMAGENET_MEAN) / IMAGENET_STD)
    return np.ascontiguousarray(np.stack(xs).astype(np.float32).transpose(0, 3, 1, 2))


class Run:
    """One command's outcome. With `reuse`, a log this script wrote for the same command
    stands for the run (its exit code and output), so a rerun only re-scores and re-times."""

    def __init__(self, argv, log, reuse=False):
        self.argv = argv
        header = f"$ {' '.join(argv)}\n"
        if reuse and os.path.exists(log):
            text = open(log).read()
            m = re.match(re.escape(header) + r"\(exit (-?\d+), ([\d.]+) s\)\n", text)
            if m:
                self.code, self.seconds = int(m.group(1)), float(m.group(2))
                self.stdout, self.stderr = text[m.end():], ""
                self._last()
                return
        start = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True)
        self.seconds = time.perf_counter() - start
        self.code = p.returncode
        self.stdout, self.stderr = p.stdout, p.stderr
        with open(log, "w") as f:
            f.write(f"{header}(exit {self.code}, {self.seconds:.1f} s)\n{p.stdout}\n{p.stderr}")
        self._last()

    def _last(self):
        lines = [l for l in (self.stderr + "\n" + self.stdout).splitlines() if l.strip()]
        self.last = lines[-1].strip() if lines else ""

    def ok(self):
        return self.code == 0

    def status(self):
        if self.code == 0:
            return "ok"
        what = "PANIC" if self.code == 101 else f"exit {self.code}"
        return f"{what}: {self.last[:160]}"


def session(path, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def outputs(path, x):
    s = session(path, 2)
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def cosine(a, b):
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    c = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(c.mean())


def groups(listing):
    """(prunable, total, most common reason) from `prune --list` output."""
    rows = [l for l in listing.splitlines() if re.search(r"\bprunable\b", l)]
    blocked = [l.split("not prunable:", 1)[1].strip() for l in rows if "not prunable:" in l]
    reasons = collections.Counter(re.sub(r"'[^']*'", "X", r.split(";")[0]) for r in blocked)
    common = reasons.most_common(1)[0] if reasons else None
    return len(rows) - len(blocked), len(rows), common


def macs(tool, path):
    p = subprocess.run([tool, "profile", path, "--json", "-"], capture_output=True, text=True)
    return json.loads(p.stdout)["model"]["macs"] if p.returncode == 0 else None


def model_rows(args, name, work, commands):
    model = os.path.join(work, f"{name}.onnx")
    if not os.path.exists(model):
        p = subprocess.run([args.torch_python, os.path.join(HERE, "export_models.py"), work, name],
                           capture_output=True, text=True)
        commands.append(f"{args.torch_python} bench/export_models.py WORK {name}")
        if not os.path.exists(model):
            return {"name": name, "export": f"export failed: {(p.stderr or p.stdout).strip()[-200:]}"}
    s = session(model, 1)
    side = s.get_inputs()[0].shape[-1]
    side = side if isinstance(side, int) else 224
    calib = os.path.join(work, f"calib{side}.npy")
    if not os.path.exists(calib):
        np.save(calib, images(CALIB, side))
    x = images(SCORE, side)
    out = os.path.join(work, name)
    os.makedirs(out, exist_ok=True)
    tool = args.profagent

    def run(tag, *rest):
        argv = [tool, *map(str, rest)]
        commands.append(" ".join(rel(a) if os.path.isabs(a) else a for a in argv))
        return Run(argv, os.path.join(out, f"{tag}.log"), reuse=args.reuse)

    row = {"name": name, "opset": None, "export": "ok"}
    import onnx
    m = onnx.load(model, load_external_data=False)
    row["opset"] = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    dim0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    row["batch"] = "dynamic" if dim0.dim_param or not dim0.dim_value else str(dim0.dim_value)
    del m
    row["profile"] = run("profile", "profile", model, "--json", os.path.join(out, "profile.json"))
    row["macs"] = macs(tool, model)
    listing = run("list", "prune", model, "--list")
    row["list"] = listing
    row["groups"] = groups(listing.stdout) if listing.ok() else None
    variants = {}
    pruned = os.path.join(out, "pruned.onnx")
    row["prune"] = run("prune", "prune", model, "-o", pruned, "--ratio", args.ratio, "--round-to",
                       "runtime", "--calib", calib, "-q")
    if row["prune"].ok():
        variants["prune"] = pruned
        row["pruned_macs"] = macs(tool, pruned)
    for mode in ("dynamic", "static"):
        path = os.path.join(out, f"{mode}.onnx")
        extra = ["--calib", calib] if mode == "static" else []
        r = run(mode, "quantize", model, "-o", path, "--mode", mode, *extra)
        row[mode] = r
        if r.ok():
            variants[mode] = path
            kernels = [l.strip() for l in r.stdout.splitlines() + r.stderr.splitlines()
                       if l.strip().startswith("onnxruntime kernels:")]
            row[f"{mode}_kernels"] = kernels[0].removeprefix("onnxruntime kernels:").strip() if kernels else ""
    # Issue 19's question: does pruning add speed to quantization at the same fidelity?
    for mode in ("dynamic", "static"):
        if "prune" in variants and mode in variants:
            path = os.path.join(out, f"pruned-{mode}.onnx")
            extra = ["--calib", calib] if mode == "static" else []
            r = run(f"pruned-{mode}", "quantize", pruned, "-o", path, "--mode", mode, *extra)
            row[f"prune+{mode}"] = r
            if r.ok():
                variants[f"prune+{mode}"] = path
    ref = outputs(model, x)
    row["cosine"] = {k: cosine(ref, outputs(p, x)) for k, p in variants.items()}
    row["mb"] = {k: os.path.getsize(p) / 1e6 for k, p in [("fp32", model), *variants.items()]}
    names = ["fp32", *variants]
    sessions = [session(p, 1) for p in [model, *variants.values()]]
    times = dict(zip(names, map(np.array, interleaved_times(sessions, (1, 3, side, side), args.rounds, 3))))

    def paired(a, b):
        r = times[a] / times[b]
        return float(np.median(r)), float(r.min()), float(r.max())

    row["speed"] = {k: paired("fp32", k) for k in names[1:]}
    row["over_quant"] = {m: paired(m, f"prune+{m}") for m in ("dynamic", "static") if f"prune+{m}" in times}
    return row


def fmt_speed(s):
    if s is None:
        return "-"
    med, lo, hi = s
    word = " slower" if hi < 1 else ""
    return f"{med:.2f}x [{lo:.2f}-{hi:.2f}]{word}"


def document(args, rows, commands, elapsed):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if f" {f}" in flags]
    lines = ["# profagent on models it was not written for",
             "",
             f"Generated by `bench/zoo.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
             f"{elapsed / 60:.1f} minutes. Do not edit by hand: rerun the script.",
             "",
             f"- CPU: {cpu}, {os.cpu_count()} logical CPUs ({', '.join(isa)}); load average at the end: "
             f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}. ONNX Runtime {ort.__version__}.",
             "- Models: torchvision architectures with **random weights** (seed 0), exported by "
             "`bench/export_models.py` (ZOO) at the opset and batch shown, as different users' "
             "exports come. Accuracy means nothing here; the output cosine against the original "
             f"on {len(SCORE)} real ImageNet images (indices {SCORE[0]}-{SCORE[-1]}) says how far "
             "each rewrite moved the outputs. Random-weight networks are a hard case for pruning "
             "(no unit is redundant) and some are degenerate (GoogLeNet's initialisation makes its "
             "output nearly constant, EfficientNet-B0's vanishes to about 1e-13, ConvNeXt's layer "
             "scale of 1e-6 makes every block nearly the identity): read the pruning cosines as "
             "'it ran and kept the graph valid', not as a quality claim. Where static int8 cannot "
             "reproduce such an output the tool refuses to write the model (exit 3, the line says "
             "why), as it would on a real model.",
             f"- Pruning: `prune --ratio {args.ratio} --round-to runtime --calib` ({len(CALIB)} "
             f"calibration images, indices {CALIB[0]}-{CALIB[-1]}; reconstruction on). Quantization: "
             "`quantize --mode dynamic` and `--mode static --calib` (the same images).",
             *([f"- Commands: outcomes taken from the logs an earlier run of the same commands wrote in "
                f"the work folder (`--reuse`); every cosine and timing below was measured in this run."]
               if args.reuse else []),
             f"- Speed: each written model against the original, batch 1, 1 intra-op thread, "
             f"{args.rounds} interleaved rounds of 3 runs in a new random order each round; the "
             "paired per-round ratio, median [min-max]; \"slower\" when the whole range is below 1.",
             ""]
    header = ["model", "opset, batch", "GMACs", "prunable groups", "prune", "MACs after prune",
              "dynamic int8", "static int8"]
    body = []
    for r in rows:
        if r.get("export") != "ok":
            body.append([r["name"], "-", "-", "-", r["export"], "-", "-", "-"])
            continue
        g = r.get("groups")
        gtxt = f"{g[0]} of {g[1]}" if g else r["list"].status()
        mac = f"{r['macs'] / 1e9:.2f}" if r.get("macs") else r["profile"].status()
        after = (f"{r['pruned_macs'] / r['macs']:.3f}" if r.get("pruned_macs") and r.get("macs") else "-")

        def cell(kind):
            run = r[kind]
            if not run.ok():
                return run.status()
            return (f"cos {r['cosine'][kind]:.4f}, {fmt_speed(r['speed'].get(kind))}, "
                    f"{r['mb'][kind]:.1f} MB of {r['mb']['fp32']:.1f}")

        body.append([r["name"], f"{r['opset']}, {r['batch']}", mac, gtxt,
                     cell("prune") if r["prune"].ok() else r["prune"].status(), after,
                     cell("dynamic"), cell("static")])
    lines += table(header, body).splitlines()
    lines += ["", "## Pruned and quantized against quantized alone", "",
              "The pruned model above quantized the same way (`quantize --mode dynamic|static` on it), "
              "against the original quantized the same way: output cosine of each against fp32, and "
              "the paired speed ratio of the two from the same interleaved rounds.", ""]
    body = []
    for r in rows:
        if r.get("export") != "ok":
            continue
        cells = [r["name"]]
        for mode in ("dynamic", "static"):
            both = f"prune+{mode}"
            if mode in r.get("over_quant", {}):
                cells.append(f"cos {r['cosine'][both]:.4f} (alone {r['cosine'][mode]:.4f}), "
                             f"{fmt_speed(r['over_quant'][mode])} of {mode} alone")
            elif both in r and not r[both].ok():
                cells.append(r[both].status())
            else:
                cells.append("-")
        body.append(cells)
    lines += table(["model", "pruned + dynamic int8", "pruned + static int8"], body).splitlines()
    lines += ["", "## Why groups are not prunable (most common reason per model)", ""]
    for r in rows:
        g = r.get("groups")
        if g and g[2]:
            lines.append(f"- {r['name']}: {g[1] - g[0]} not prunable; most often ({g[2][1]}x): {g[2][0]}")
    lines += ["", "## int8 kernels after ONNX Runtime's optimisation (the tool's own line)", ""]
    for r in rows:
        for mode in ("dynamic", "static"):
            k = r.get(f"{mode}_kernels")
            if k:
                lines.append(f"- {r['name']} {mode}: {k}")
    failures = [(r["name"], k, r[k]) for r in rows
                for k in ("profile", "list", "prune", "dynamic", "static", "prune+dynamic", "prune+static")
                if k in r and not r[k].ok()]
    lines += ["", "## Commands that did not exit 0", ""]
    lines += [f"- {n} {k}: {run.status()}" for n, k, run in failures] or ["- none"]
    lines += ["", "## Every command this run executed", "", "```", *commands, "```"]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profagent", required=True)
    ap.add_argument("--torch-python", default="/usr/bin/python3",
                    help="a Python with torch and torchvision, to export the models")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--ratio", type=float, default=0.25)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--work", default="/tmp/profagent_zoo", help="exports and outputs (kept: reruns reuse the exports)")
    ap.add_argument("--reuse", action="store_true",
                    help="take a command's outcome from the log an earlier run wrote in --work (same command), "
                         "re-scoring and re-timing only")
    ap.add_argument("--out")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    started = time.time()
    rows, commands = [], []
    for name in args.models.split(","):
        print(f"== {name}", file=sys.stderr, flush=True)
        rows.append(model_rows(args, name, args.work, commands))
    emit(document(args, rows, commands, time.time() - started), args.out)


if __name__ == "__main__":
    main()
