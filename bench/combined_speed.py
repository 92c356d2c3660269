#!/usr/bin/env python3
"""Issue 18's must-show table: `compress` (pruning plus the fastest quantization it measured)
against every single method, ours and onnxruntime's, in one run.

    python3 bench/combined_speed.py --profagent target/release/profagent \\
        [--models resnet18_cifar10:4.5,vit_tiny_cifar10:3] [--work DIR] [--rounds 9] \\
        [--batches 1,32] [--out docs/benchmarks-combined.md]

Per model (`NAME:SPEEDUP`, the `--target-speedup` given to compress; the defaults are issue 18's
asks: 1.5x over onnxruntime's best static setting on resnet18, about 3x fp32, and 3x fp32 on
vit_tiny):
- `profagent compress MODEL --data <5,000 odd-index CIFAR-10 test images> --target-speedup S
  --max-acc-drop 1 --threads 1` (the split of planner_vs_uniform.py and table5.py, common.py);
  `--work DIR` keeps the run, so a rerun only re-measures;
- the single methods on the same 256 calibration images (common.CALIB, from the odd half):
  `profagent quantize --mode static` (convolutional models) or `--mode dynamic` (transformers);
  onnxruntime's `quantize_static` with QUInt8 and with QInt8 activations (int8 per-channel
  weights, QDQ), QUInt8 again with `reduce_range=True` (7-bit weights, what x86 CPUs without
  VNNI need), its `quantize_dynamic`, and for ViTs its transformers optimizer
  (`optimize_model(model_type="vit")`) followed by `quantize_dynamic`;
- top-1 of every model on the 5,000 even-index images, which neither calibration nor feedback
  used, with the exact McNemar p against fp32, and the output cosine against fp32 on the same
  images (mean and worst image);
- latency in ONE process, 1 thread, interleaved (every variant in turn in a new random order each round, `--rounds` rounds), at
  each batch size: per round each variant's time is divided into fp32's of the same round, and
  the ratio is reported as median [min-max] over rounds. Comparisons between two variants are
  the per-round ratio of their times (paired), median [min-max].

The verdicts compare what issue 18 asks: compress against the fastest single method measured
here (ours or onnxruntime's), and each of our single methods against onnxruntime's best setting
of the same kind. The output file is generated; never edit it by hand.
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CALIB, SCORE, SHARED, cifar, interleaved_times, mcnemar, rel  # noqa: E402
from common import profagent_macs, run_tool, seen_folder  # noqa: E402
from quant_fusion import ort_dynamic, ort_static, run_quiet, session  # noqa: E402

MODELS = os.path.join(SHARED, "models")
# A model's single-method mode: transformers quantize dynamically, convolutional nets statically.
TRANSFORMERS = {"vit_tiny_cifar10": (3, 192)}  # name: (heads, hidden size) for the optimizer


def compress(tool, model, seen, run_dir, speedup):
    """The compress run in run_dir (reused when finished): (report, model path)."""
    report_path = os.path.join(run_dir, "report.json")
    if not (os.path.exists(report_path) and json.load(open(report_path)).get("final")):
        argv = [tool, "compress", model, "--data", seen, "--preset", "cifar10",
                "--target-speedup", str(speedup), "--max-acc-drop", "1", "--threads", "1",
                "--out", run_dir]
        print("running:", " ".join(rel(a) for a in argv), file=sys.stderr)
        run_tool(argv)
    return json.load(open(report_path)), os.path.join(run_dir, "model.onnx")


def ort_optimized_dynamic(model, out, heads, hidden):
    """onnxruntime's transformers optimizer (its Python fusions, `opt_level=0`: higher levels run an
    onnxruntime pass that needs torch), then quantize_dynamic on its output; the session applies its
    own graph optimizations when it loads the result, as for every variant. The fused ops
    (com.microsoft SkipLayerNormalization, BiasGelu) have no ONNX shape inference, so the
    quantizer is told that tensors it cannot type are float (`DefaultTensorType`, its own
    advice in the error it raises otherwise)."""
    code = ("import sys\nimport onnx\nfrom onnxruntime.transformers import optimizer\n"
            "from onnxruntime.quantization import quantize_dynamic\n"
            "m = optimizer.optimize_model(sys.argv[1], model_type='vit', num_heads=int(sys.argv[3]),"
            " hidden_size=int(sys.argv[4]), opt_level=0)\n"
            "m.save_model_to_file(sys.argv[2] + '.fp32.onnx')\n"
            "quantize_dynamic(sys.argv[2] + '.fp32.onnx', sys.argv[2],"
            " extra_options={'DefaultTensorType': onnx.TensorProto.FLOAT})\n")
    return run_quiet([sys.executable, "-c", code, model, out, str(heads), str(hidden)])


def quantize(args, model, out, mode, calib_npy):
    """`profagent quantize --mode MODE` of model into out (static on the bench's calibration
    images), unless out exists from an earlier run in --work."""
    if os.path.exists(out):
        return
    argv = [args.profagent, "quantize", model, "-o", out, "--mode", mode]
    if mode == "static":
        argv += ["--calib", calib_npy, "--calib-count", str(len(CALIB))]
    run_quiet(argv)


def variants(args, name, work, calib_npy):
    """[(label, path, kind)] of one model: fp32, the single methods, compress."""
    model = os.path.join(MODELS, name + ".onnx")
    out = [("fp32", model, "fp32")]
    transformer = name in TRANSFORMERS
    mode = "dynamic" if transformer else "static"
    ours = os.path.join(work, f"ours-{mode}.onnx")
    quantize(args, model, ours, mode, calib_npy)
    out.append((f"profagent quantize --mode {mode}", ours, "ours"))
    pruned = args.pruned.get(name)
    if pruned:
        # Issue 19: a pruned model (e.g. planner_vs_uniform.py's compress --target-macs result)
        # quantized the same way, against quantization alone.
        both = os.path.join(work, f"pruned-{mode}.onnx")
        quantize(args, pruned, both, mode, calib_npy)
        out.append(("pruned (given), fp32", pruned, "pruned"))
        out.append((f"pruned (given) + profagent quantize --mode {mode}", both, "pruned+quant"))
    if not transformer:
        # reduce_range: 7-bit weights, what x86 CPUs without VNNI need (their u8 x s8 kernels
        # sum pairs of products in a saturating int16); the default writes full-range weights.
        for tag, qtype, reduce in (("u8", "QUInt8", False), ("s8", "QInt8", False), ("u8-rr", "QUInt8", True)):
            path = os.path.join(work, f"ort-static-{tag}.onnx")
            if not os.path.exists(path):
                ort_static(model, path, calib_npy, qtype, reduce_range=reduce)
            out.append((f"onnxruntime quantize_static ({qtype} activations{', reduce_range' if reduce else ''})",
                        path, "ort"))
    path = os.path.join(work, "ort-dynamic.onnx")
    if not os.path.exists(path):
        ort_dynamic(model, path)
    out.append(("onnxruntime quantize_dynamic", path, "ort"))
    if transformer:
        # quantize_dynamic can fail on the optimizer's contrib ops (its shape inference does not
        # know them): the row then says so instead of ending the bench.
        path = os.path.join(work, "ort-optimizer-dynamic.onnx")
        try:
            if not os.path.exists(path):
                ort_optimized_dynamic(model, path, *TRANSFORMERS[name])
            out.append(("onnxruntime transformers optimizer + quantize_dynamic", path, "ort"))
        except SystemExit as e:
            args.notes.append(f"{name}: onnxruntime's transformers optimizer + quantize_dynamic failed: "
                              + str(e).strip().splitlines()[-1][:300])
    return out


def logits(path, x, batch=200):
    """The model's outputs on every sample of `x` (ONNX Runtime, CPU, 2 threads)."""
    s = session(path, 2)
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def cosines(a, b):
    """Mean and worst per-sample cosine of two output arrays."""
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
    return f"{c.mean():.5f} ({c.min():.4f})"


def paired(a, b):
    """Per-round ratio b_time / a_time: how many times faster `a` is than `b` (median, min, max)."""
    r = [tb / ta for ta, tb in zip(a, b)]
    return statistics.median(r), min(r), max(r)


def fmt(ratio):
    m, lo, hi = ratio
    word = "faster" if lo > 1 else "slower" if hi < 1 else "not distinguishable"
    return f"{m:.2f}x [{lo:.2f}-{hi:.2f}] ({word})"


def applied(report):
    """What compress's accepted rounds applied: `r1 static (uint8, entropy)`, `r2 pruned 4 groups`."""
    out = []
    for r in report["rounds"]:
        if not r.get("accepted"):
            continue
        plan = r.get("plan") or {}
        q = plan.get("quantization")
        parts = []
        if q:
            d = q["default"]
            extra = [d.get("activations", "")] if d["mode"] == "static" else []
            if d.get("calibration"):
                extra.append(d["calibration"])
            layers = len(q.get("layers") or [])
            parts.append(d["mode"] + (f" ({', '.join(extra)})" if extra else "")
                         + (f" with {layers} per-layer overrides" if layers else ""))
        if plan.get("pruning"):
            parts.append(f"pruned {len(plan['pruning'])} groups")
        out.append(f"r{r['round']} " + " + ".join(parts or ["nothing"]))
    return "; ".join(out) or "nothing accepted"


def macs_fraction(report):
    base = (report.get("baseline") or {}).get("macs")
    now = ((report.get("final") or {}).get("feedback") or {}).get("macs")
    return f"{now / base:.3f}" if base and now else "-"


def pruned_macs(args, rows):
    """The given pruned model's MACs as a fraction of the input's."""
    base = profagent_macs(args.profagent, rows[0][1])
    pruned = [path for _, path, kind in rows if kind == "pruned"][0]
    return f"{profagent_macs(args.profagent, pruned) / base:.3f}"


def model_section(args, spec, seen, x, y):
    name, _, speedup = spec.partition(":")
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    calib_npy = os.path.join(work, "calib.npy")
    if not os.path.exists(calib_npy):
        np.save(calib_npy, cifar(CALIB)[0])
    rows = variants(args, name, work, calib_npy)
    if args.skip_compress:
        report, compressed = None, None
    else:
        report, compressed = compress(args.profagent, rows[0][1], seen, os.path.join(work, "compress"), speedup)
    if args.pruned.get(name):
        lines_pruned = [f"Pruned model given: `{rel(args.pruned[name])}` ({pruned_macs(args, rows)} of the input's MACs)."]
    else:
        lines_pruned = []
    if report is not None:
        final = report.get("final") or {}
        rows.append((f"profagent compress --target-speedup {speedup}", compressed, "compress"))
        summary = [f"compress: {len([r for r in report['rounds'] if r.get('accepted')])} of {len(report['rounds'])} "
                   f"rounds accepted ({applied(report)}); MACs {macs_fraction(report)} of the input's; stop: "
                   f"{final.get('stop_reason', '-')}; its own holdout check: {final.get('speedup') or 0:.2f}x, "
                   f"budget met: {final.get('budget_met')}.", ""]
    else:
        summary = ["compress: not run (--skip-compress).", ""]

    out = {label: logits(path, x) for label, path, _ in rows}
    fp32_out = out[rows[0][0]]
    fp32_ok = fp32_out.argmax(1) == y
    correct = {label: o.argmax(1) == y for label, o in out.items()}
    lines = [f"## {name}", "", *summary, *lines_pruned, *([""] if lines_pruned else []),
             f"| model | top-1 % ({len(y):,} unseen) | vs fp32 (p) | output cosine vs fp32: mean (worst) | MB |"
             + "".join(f" batch {b}: x fp32 [min-max] |" for b in args.batch_list),
             "|---|---|---|---|---|" + "---|" * len(args.batch_list)]
    times = {}
    for batch in args.batch_list:
        runs = max(2, args.runs // batch)
        sessions = [session(path, 1) for _, path, _ in rows]
        got = interleaved_times(sessions, (batch, 3, 32, 32), args.rounds, runs)
        del sessions
        times[batch] = dict(zip([label for label, _, _ in rows], got))
    for label, path, kind in rows:
        ok = correct[label]
        p, only_fp32, only_this = mcnemar(fp32_ok, ok)
        cells = [label, f"{100 * ok.mean():.2f}",
                 "-" if kind == "fp32" else f"{100 * (ok.mean() - fp32_ok.mean()):+.2f} (p = {p:.2g})",
                 "-" if kind == "fp32" else cosines(fp32_out, out[label]),
                 f"{os.path.getsize(path) / 1e6:.2f}"]
        for batch in args.batch_list:
            cells.append(fmt(paired(times[batch][label], times[batch]["fp32"])))
        lines.append("| " + " | ".join(cells) + " |")

    lines += ["", "Verdicts (per-round paired ratios of the times above; \"faster\" only when the whole "
              "min-max range is above 1):", ""]
    singles = [(label, kind) for label, _, kind in rows if kind in ("ours", "ort")]
    for batch in args.batch_list:
        t = times[batch]
        speedup = {label: paired(t[label], t["fp32"]) for label in t}
        fastest = max((s[0] for s in singles), key=lambda label: speedup[label][0])
        best_ort = max((s[0] for s in singles if s[1] == "ort"), key=lambda label: speedup[label][0])
        if report is not None:
            comp = rows[-1][0]
            change = 100 * (correct[comp].mean() - fp32_ok.mean())
            lines.append(f"- batch {batch}: compress vs fp32 {fmt(speedup[comp])}; vs the fastest single method "
                         f"here ({fastest}) {fmt(paired(t[comp], t[fastest]))}; vs onnxruntime's best here "
                         f"({best_ort}) {fmt(paired(t[comp], t[best_ort]))}; top-1 {change:+.2f} points against fp32")
        else:
            lines.append(f"- batch {batch}: the fastest single method here: {fastest} {fmt(speedup[fastest])}")
        ours = [s[0] for s in singles if s[1] == "ours"][0]
        lines.append(f"  - {ours} vs onnxruntime's best here ({best_ort}): {fmt(paired(t[ours], t[best_ort]))}")
        both = [label for label, _, kind in rows if kind == "pruned+quant"]
        if both:
            change = 100 * (correct[both[0]].mean() - correct[ours].mean())
            lines.append(f"  - {both[0]} vs {ours} alone: {fmt(paired(t[both[0]], t[ours]))}; top-1 "
                         f"{change:+.2f} points against quantization alone")
    return lines + [""]


def cpu_line():
    """"2 CPUs, AMD EPYC, no VNNI": what decides int8 speed and the weight range here."""
    info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "unknown CPU")
    flags = set(next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), []))
    vnni = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{os.cpu_count()} CPUs, {model}, " + (", ".join(vnni) if vnni else "no VNNI (AVX2 only)" if "avx2" in flags else "no VNNI")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profagent", required=True)
    ap.add_argument("--models", default="resnet18_cifar10:4.5,vit_tiny_cifar10:3")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--runs", type=int, default=20, help="runs per block at batch 1 (batch N: runs/N, at least 2)")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--score-count", type=int, default=len(SCORE),
                    help="score on the first N of the 5,000 even-index images (a quick check; the doc uses all)")
    ap.add_argument("--pruned", action="append", default=[], metavar="NAME=PATH",
                    help="a pruned model of NAME (e.g. planner_vs_uniform.py's compress --target-macs result): "
                         "adds it and it quantized like the single method, compared with quantization alone")
    ap.add_argument("--skip-compress", action="store_true",
                    help="leave compress out (only the single methods and the --pruned rows)")
    ap.add_argument("--work")
    ap.add_argument("--out")
    args = ap.parse_args()
    args.pruned = dict(p.split("=", 1) for p in args.pruned)
    args.batch_list = [int(b) for b in args.batches.split(",")]
    args.notes = []
    args.work = args.work or tempfile.mkdtemp(prefix="profagent_combined_")
    os.makedirs(args.work, exist_ok=True)
    seen = seen_folder(args.work)
    x, y = cifar(SCORE[:args.score_count])
    started = time.time()
    load = os.getloadavg()
    head = ["# Pruning plus quantization against every single method (issue 18)", "",
            f"Generated by `python3 bench/combined_speed.py --profagent {rel(args.profagent)} --models {args.models} "
            f"--rounds {args.rounds} --batches {args.batches}"
            + "".join(f" --pruned {k}={rel(v)}" for k, v in args.pruned.items())
            + (" --skip-compress" if args.skip_compress else "") + "` on "
            + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            + f" ({cpu_line()}, load average {load[0]:.1f} at the start). Do not edit by hand.", "",
            "compress ran on the 5,000 odd-index CIFAR-10 test images (its calibration, feedback and holdout "
            "slices all come from them); the single methods calibrated on 256 of those; every model is scored "
            f"on {len(x)} even-index images none of them saw. Latency: ONNX Runtime, 1 thread, one process, "
            "every variant in turn per round, in a new random order each round; ratios are per-round, median [min-max].", ""]
    body = []
    for spec in args.models.split(","):
        body += model_section(args, spec, seen, x, y)
        text = "\n".join(head + body) + "\n"
        print("\n".join(body))
        if args.out:
            open(args.out, "w").write(text)
    tail = [f"Notes: {note}" for note in args.notes] + [
        f"Total bench time: {(time.time() - started) / 60:.1f} min (runs reused from --work are not re-run); "
        f"load average {os.getloadavg()[0]:.1f} at the end."]
    if args.out:
        open(args.out, "w").write("\n".join(head + body + tail) + "\n")
    print(tail[0])


if __name__ == "__main__":
    main()
