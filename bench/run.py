#!/usr/bin/env python3
"""Benchmark driver: regenerates docs/benchmarks.md (called by bench/run.sh fast|full).

Runs the `profagent` CLI and the Python baselines as subprocesses (each command is recorded in
the document) and measures every variant of a table in this process with ONNX Runtime, variants
interleaved, ratios against the baseline of the same run (see common.py).

    python3 bench/run.py --mode fast|full --profagent PATH [--out docs/benchmarks.md]
"""
import argparse
import os
import sys
import time

from common import ROOT, Bench
from sections import machine_section, quant_small, prune_small, quant_paper, tool_speed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["fast", "full"], default="fast")
    ap.add_argument("--profagent", required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for every timed run")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--models-dir", default=os.environ.get("BENCH_MODELS_DIR", "/work/cache/models"))
    ap.add_argument("--paper-models", default=os.environ.get("BENCH_PAPER_MODELS", "vit_b_16,deit_b_16,swin_b,resnet101"))
    ap.add_argument("--sections", default=os.environ.get("BENCH_SECTIONS", "quant,prune,paper,speed"))
    args = ap.parse_args()
    b = Bench(args)
    b.header_fn = machine_section
    wanted = args.sections.split(",")
    steps = [("quant", quant_small), ("prune", prune_small), ("speed", tool_speed)]
    if args.mode == "full":  # the headline tables first: a run cut short still leaves them
        steps.insert(0, ("paper", quant_paper))
    for key, fn in steps:
        if key not in wanted:
            continue
        print(f"== {fn.__name__}", file=sys.stderr)
        try:
            fn(b)
        except RuntimeError as e:
            b.section(fn.__doc__.strip().splitlines()[0], f"**Not measured: a command failed.** `{e}`")
    b.write_doc()
    print(f"wrote {args.out} in {(time.time() - b.started) / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
