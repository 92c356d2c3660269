"""The paper's Table 5 question: does the planner matter? (issue 20, item 7)

    python3 bench/table5.py --profagent target/release/profagent \\
        [--models resnet18_cifar10,vit_tiny_cifar10] [--rounds 3] [--gguf FILE] \\
        [--transcripts DIR] [--work DIR] [--out docs/benchmarks-table5.md]

The binary needs the embedded LLM: `cargo build --release -p profagent --features local-llm`
(docs/local-llm.md); the model file comes from `bash scripts/ensure-llm-model.sh`.

Per model, the same budget (`--target-macs 0.6 --max-acc-drop 1`), data, seed and `--rounds`
for every planner, on the 5,000 odd-index CIFAR-10 test images (common.py's split, as
planner_vs_uniform.py):
- built-in: `profagent compress` without `--llm`;
- SmolLM2 guarded: `--llm local:<SmolLM2-135M-Instruct GGUF>` (the guardrail is the default);
- SmolLM2 alone: the same with `--no-guardrail`;
- each SmolLM2 run replayed: `compress --replay RUN_DIR` (the recorded answers, no model);
  the report says whether the final model came out byte-identical, and the plans are compared;
- recorded transcripts: every run directory under `--transcripts DIR` whose report names this
  model (e.g. `compress --llm openai:...` runs recorded elsewhere) replayed the same way.

Every final model is scored on the 5,000 even-index images, with an exact McNemar test against
the built-in planner's model and against the best uniform baseline (`prune --ratio R`, L1 and L2,
with reconstruction on 256 odd-half images) at the ratio matching its MACs. `--work DIR` keeps the
runs, so a rerun only re-scores. The markdown is printed and, with --out, written (never edit
that file by hand).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CALIB, ROOT, SCORE, SHARED, cifar, matched_ratio, mcnemar, predictions, rel, seen_folder  # noqa: E402
from common import profagent_macs as macs  # noqa: E402
from common import run_tool, uniform_prune  # noqa: E402

MODELS = os.path.join(SHARED, "models")
BUDGET = ["--target-macs", "0.6", "--max-acc-drop", "1"]


def finished(run_dir):
    path = os.path.join(run_dir, "report.json")
    return os.path.exists(path) and json.load(open(path)).get("final") is not None


def failed(run_dir):
    """The error that ended an unfinished run (its transcript's last provider_error), if no
    live process still writes it (older builds ended an unguarded run on a failed LLM call)."""
    lock = os.path.join(run_dir, ".profagent.lock")
    if os.path.exists(lock):
        try:
            os.kill(int(open(lock).read().strip()), 0)
            return None
        except (ValueError, OSError):
            pass
    path = os.path.join(run_dir, "transcript.jsonl")
    if finished(run_dir) or not os.path.exists(path):
        return None
    errors = [e for e in map(json.loads, open(path)) if e.get("verdict") == "provider_error"]
    return errors[-1].get("error") if errors else None


def wait_for_writer(run_dir):
    """Waits while another live process holds run_dir's lock (a run started by hand or by a
    second bench process): the run is then reused instead of clashing with it."""
    lock = os.path.join(run_dir, ".profagent.lock")
    while os.path.exists(lock):
        try:
            pid = int(open(lock).read().strip())
            os.kill(pid, 0)
        except (ValueError, OSError):
            return
        print(f"waiting for process {pid}, which is writing {run_dir}", file=sys.stderr)
        time.sleep(30)


def compress(tool, model, seen, run_dir, rounds, extra, score_only=False):
    """One compress run into run_dir (kept when already finished); its report and wall seconds
    (the report's own `seconds`), or (None, None) when not finished and `score_only`."""
    if not score_only:
        wait_for_writer(run_dir)
    if not finished(run_dir):
        if score_only:
            return None, None
        argv = [tool, "compress", model, "--data", seen, "--preset", "cifar10", *BUDGET,
                "--rounds", str(rounds), "--compare-seconds", "5", "--out", run_dir, *extra]
        print("running:", " ".join(rel(a) for a in argv), file=sys.stderr)
        run_tool(argv)
    report = json.load(open(os.path.join(run_dir, "report.json")))
    return report, report.get("seconds")


def short(planner, gguf):
    return planner.replace(gguf, os.path.basename(gguf)) if gguf else planner


def proposals(report, gguf):
    """Whose proposal each round used: `r1 LLM`, `r2 builtin*` (* guardrail; reasons in notes)."""
    cells, notes = [], []
    for r in report["rounds"]:
        used = r.get("planner", "")
        if used.startswith("builtin (guardrail:"):
            cells.append(f"r{r['round']} builtin*")
            notes.append(f"round {r['round']}: {used}")
        elif used.startswith("builtin"):
            cells.append(f"r{r['round']} builtin")
        else:
            tag = "LLM" if r.get("plan") else "none"
            cells.append(f"r{r['round']} {tag}")
            if r.get("failure"):
                notes.append(f"round {r['round']}: no plan applied: {r['failure'][:300]}")
    return ", ".join(cells), notes


def plans(report):
    return [(r["round"], r.get("plan"), r.get("accepted")) for r in report["rounds"]]


class Scorer:
    """Top-1 on the scoring images and the best uniform baseline at a given MACs (cached)."""

    def __init__(self, tool, work, name, x, y):
        self.tool, self.work, self.name, self.x, self.y = tool, work, name, x, y
        self.model = os.path.join(MODELS, name + ".onnx")
        self.dense_macs = macs(tool, self.model)
        self.calib = os.path.join(work, "calib.npy")
        if not os.path.exists(self.calib):
            np.save(self.calib, cifar(CALIB)[0])
        self.baselines = {}

    def correct(self, path):
        return predictions(path, self.x) == self.y

    def ratio(self, target_macs):
        """matched_ratio, remembered in the working folder (the bisection prunes 12 times)."""
        path = os.path.join(self.work, "matched_ratios.json")
        known = json.load(open(path)) if os.path.exists(path) else {}
        if str(target_macs) not in known:
            known[str(target_macs)] = matched_ratio(self.tool, self.model, target_macs, self.work)
            json.dump(known, open(path, "w"), indent=1)
        return known[str(target_macs)]

    def uniform(self, target_macs):
        """(label, per-image correctness) of the best of L1 / L2 with reconstruction at target_macs."""
        key = round(target_macs / self.dense_macs, 4)
        if key not in self.baselines:
            ratio = self.ratio(target_macs)
            best = None
            for importance in ["l1", "l2"]:
                out = os.path.join(self.work, f"{self.name}_{importance}_r{ratio:.4f}.onnx")
                if not os.path.exists(out):
                    uniform_prune(self.tool, self.model, out, ratio, importance, self.calib, True)
                ok = self.correct(out)
                m = macs(self.tool, out) / self.dense_macs
                if best is None or ok.mean() > best[1].mean():
                    best = (f"{importance} r={ratio:.3f} ({m:.3f})", ok)
            self.baselines[key] = best
        return self.baselines[key]


def model_section(args, name, seen, x, y, gguf):
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    if args.score_only and not finished(os.path.join(work, "builtin")):
        return [f"## {name}", "", "Not run: the built-in planner's run had not finished in the working folder when "
                "this file was generated (with `--score-only`; the session's time ran out).", ""]
    s = Scorer(args.profagent, work, name, x, y)
    dense = s.correct(s.model)
    llm = ["--llm", f"local:{gguf}"] if gguf else None
    runs = [("built-in", "builtin", [])]
    if llm:
        runs += [("SmolLM2 guarded", "smollm2_guarded", llm),
                 ("SmolLM2 alone (`--no-guardrail`)", "smollm2_alone", llm + ["--no-guardrail"])]
    results, missing, errors = [], [], []  # results: (label, report, wall, run dir, source report or None)

    def run(label, run_dir, extra, source=None):
        if failed(run_dir):
            errors.append((label, failed(run_dir)))
            return None
        report, wall = compress(args.profagent, s.model, seen, run_dir, args.rounds, extra, args.score_only)
        if report is None:
            missing.append(label)
        else:
            results.append((label, report, wall, run_dir, source))
        return report

    for label, slot, extra in runs:
        run_dir = os.path.join(work, slot)
        report = run(label, run_dir, extra)
        if slot != "builtin" and report is not None:
            run(f"{label}, replayed", os.path.join(work, slot + "_replay"), ["--replay", run_dir], report)
        elif slot != "builtin" and not any(label == e[0] for e in errors):
            missing.append(f"{label}, replayed")
    for source in transcripts(args.transcripts, s.model):
        recorded = json.load(open(os.path.join(source, "report.json")))
        run(f"recorded {short(recorded['planner'], gguf)}, replayed",
            os.path.join(work, "transcript_" + os.path.basename(os.path.normpath(source))),
            ["--replay", source], recorded)
    if not results or results[0][0] != "built-in":
        return [f"## {name}", "", "Not run: the built-in planner's run has not finished in the working folder "
                "(this file was generated with `--score-only`).", ""]

    builtin_ok = s.correct(os.path.join(results[0][3], "model.onnx"))
    builtin_macs = macs(args.profagent, os.path.join(results[0][3], "model.onnx"))
    lines = [f"## {name} (`{' '.join(BUDGET)} --rounds {args.rounds}`)", "",
             "| planner | rounds accepted / total | proposals used | MACs (of dense) | top-1 % on 5,000 unseen "
             "| vs dense | vs built-in: p (only built-in right / only this right) | best uniform at these MACs "
             "| vs that uniform: p (only uniform right / only this right) | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| dense fp32 | - | - | 1.000 | {100 * dense.mean():.2f} | +0.00 | "
             "p = %.3g (%d / %d) | - | - | - |" % mcnemar(builtin_ok, dense)]
    notes, replay_notes, scored = [], [], {}
    for label, report, wall, run_dir, source in results:
        path = os.path.join(run_dir, "model.onnx")
        m = macs(args.profagent, path)
        ok = s.correct(path)
        scored[label] = (m, ok)
        accepted = sum(1 for r in report["rounds"] if r.get("accepted"))
        used, why = proposals(report, gguf)
        notes += [f"- {label}, {w}" for w in why] if source is None else []
        vs_builtin = "" if label == "built-in" else "p = %.3g (%d / %d)" % mcnemar(builtin_ok, ok)
        if m < s.dense_macs:
            ulabel, uok = s.uniform(m)
            uni = f"{ulabel}: {100 * uok.mean():.2f}"
            vs_uni = "p = %.3g (%d / %d)" % mcnemar(uok, ok)
        else:
            uni, vs_uni = "- (nothing pruned)", "-"
        lines.append(f"| {label} | {accepted} / {len(report['rounds'])} | {used} | {m / s.dense_macs:.3f} | "
                     f"{100 * ok.mean():.2f} | {100 * (ok.mean() - dense.mean()):+.2f} | {vs_builtin} | {uni} | "
                     f"{vs_uni} | {'%.0f' % wall if wall is not None else '-'} |")
        if source is not None:
            info = report.get("replay") or {}
            same_plans = plans(report) == plans(source)
            replay_notes.append(
                f"- {label}: final model {'byte-identical' if info.get('identical') else 'NOT byte-identical'} "
                f"to the recorded one (sha256 {str(info.get('recorded_sha256', ''))[:12]}…); per-round plans and "
                f"verdicts {'the same' if same_plans else 'DIFFERENT'} ({len(report['rounds'])} rounds).")
    lines += ["", "Planners as the reports name them: " + "; ".join(
        sorted({f"`{short(r['planner'], gguf)}`" for _, r, _, _, src in results if src is None}))]
    if notes:
        lines += ["", "Rounds where the guardrail applied the built-in proposal (`builtin*`), or no plan was applied:", ""] + notes
    if replay_notes:
        lines += ["", "Replays (no LLM loaded: the recorded answers go through the same parse / validate path):", ""] + replay_notes
    if errors:
        lines += ["", "**Ended with an error, no final model** (builds before 2026-11-28 06:40 UTC ended an "
                  "unguarded run when its LLM call failed; later ones record that round without a plan and go "
                  "on): " + "; ".join(f"{label}: {error}" for label, error in errors) + "."]
    if missing:
        lines += ["", "**Not finished when this file was generated** (generated with `--score-only` from the runs "
                  "finished in the working folder; the time this session had ran out): " + "; ".join(missing) + "."]
    lines += ["", verdict(scored, builtin_macs, builtin_ok, s.dense_macs), ""]
    return lines


def verdict(scored, builtin_macs, builtin_ok, dense_macs):
    if "SmolLM2 guarded" not in scored:
        return "**Verdict:** none: no finished SmolLM2 run."
    out = []
    for label in [k for k in ["SmolLM2 guarded", "SmolLM2 alone (`--no-guardrail`)"] if k in scored]:
        m, ok = scored[label]
        p, only_b, only_s = mcnemar(builtin_ok, ok)
        lower = ok.mean() < builtin_ok.mean() and p < 0.05
        higher = m > builtin_macs
        worse = lower or higher
        out.append(f"{label} {'ended WORSE than' if worse else 'did not end worse than'} the built-in planner: "
                   f"top-1 {100 * ok.mean():.2f} vs {100 * builtin_ok.mean():.2f} % (p = {p:.3g}"
                   f"{', significant' if p < 0.05 else ''}), MACs {m / dense_macs:.3f} vs "
                   f"{builtin_macs / dense_macs:.3f} of dense"
                   + (" (more MACs)" if higher else "") + ".")
    return "**Verdict:** " + " ".join(out)


def transcripts(folder, model):
    """Run directories under `folder` whose report names `model`."""
    if not folder:
        return []
    found = []
    for d in sorted(os.listdir(folder)):
        path = os.path.join(folder, d, "report.json")
        if os.path.exists(path):
            model_path = (json.load(open(path)).get("model") or {}).get("path", "")
            if os.path.basename(model_path) == os.path.basename(model):
                found.append(os.path.join(folder, d))
    return found


def default_gguf():
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "ensure-llm-model.sh")], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profagent", required=True)
    ap.add_argument("--models", default="vit_tiny_cifar10,resnet18_cifar10")
    ap.add_argument("--rounds", type=int, default=3, help="compress --rounds for every planner")
    ap.add_argument("--gguf", help="SmolLM2 GGUF (default: scripts/ensure-llm-model.sh)")
    ap.add_argument("--no-llm", action="store_true", help="built-in planner (and transcripts) only")
    ap.add_argument("--transcripts", help="folder of recorded compress run directories to replay")
    ap.add_argument("--score-only", action="store_true",
                    help="start no compress run: score the runs finished in --work, list the rest as not finished")
    ap.add_argument("--out")
    ap.add_argument("--work", help="working folder; runs and pruned models already in it are reused")
    args = ap.parse_args()
    args.work = args.work or tempfile.mkdtemp(prefix="profagent_table5_")
    os.makedirs(args.work, exist_ok=True)
    gguf = None if args.no_llm else args.gguf or os.environ.get("PROFAGENT_LOCAL_LLM_GGUF") or default_gguf()
    seen = seen_folder(args.work)
    x, y = cifar(SCORE)
    started = time.time()
    head = ["# Does the planner matter? (the paper's Table 5 question)", "",
            f"Generated by `python3 bench/table5.py --profagent {rel(args.profagent)} --models {args.models} "
            f"--rounds {args.rounds}{' --score-only' if args.score_only else ''}` on "
            + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            + f" ({os.cpu_count()} CPUs, shared). Do not edit by hand.", "",
            f"Every planner: `profagent compress MODEL --data <5,000 odd-index CIFAR-10 test images> "
            f"{' '.join(BUDGET)} --rounds {args.rounds} --compare-seconds 5` (the same seed, hence the same "
            "calibration / feedback / holdout split, for every row; `--rounds` caps every planner alike because "
            "SmolLM2 plans slowly on 2 shared cores; `--compare-seconds` only bounds the latency comparisons, "
            "which a MACs budget does not judge). SmolLM2: `--llm local:"
            f"{os.path.basename(gguf) if gguf else '(not found)'}` (SmolLM2-135M-Instruct Q4_1, embedded through "
            "llama.cpp, docs/local-llm.md), with the guardrail (the default: each round its plan is compared by "
            "estimate with the built-in proposal and the better one applied) and alone (`--no-guardrail`). "
            "Replayed rows: `compress --replay RUN_DIR` on the same data, from the recorded answers, without the LLM.",
            "",
            "Scoring: every final model on the 5,000 even-index test images, which no run saw. p: exact two-sided "
            f"McNemar test on those images. Uniform baseline: `profagent prune --ratio R` at the ratio matching the "
            f"row's MACs (bisection on the graph), L1 and L2 importance with the default reconstruction on "
            f"{len(CALIB)} odd-half images; the better of the two is shown (its MACs in brackets). "
            "Proposals used: the report's per-round `planner` field: `LLM` the LLM's own plan, `builtin*` the "
            "built-in proposal applied by the guardrail (reasons below each table), `none` no valid plan. "
            "Wall s: the run's own time (report.json `seconds`; a replay re-runs the rewrites, not the measurements).", ""]
    if args.transcripts:
        head += [f"Recorded transcripts: run directories under `{rel(args.transcripts)}` replayed per model.", ""]
    else:
        head += ["Recorded transcripts of hosted models: **none**. This machine has no network, so no hosted "
                 "model (GPT-4o, Claude, ...) was run and no transcript of one exists here; nothing is faked. "
                 "Record one elsewhere (`compress --llm openai:gpt-4o ...` with this budget and `--rounds`), copy "
                 "its run directory under a folder and pass `--transcripts FOLDER`: it is replayed (no network) "
                 "and gets a row.", ""]
    body = []
    for name in args.models.split(","):
        body += model_section(args, name, seen, x, y, gguf)
        text = "\n".join(head + body) + "\n"
        print("\n".join(body), file=sys.stderr)
        if args.out:
            open(args.out, "w").write(text)
    text = "\n".join(head + body + [f"Total bench time: {(time.time() - started) / 60:.1f} min "
                                    "(runs reused from --work are not re-run).", ""]) + "\n"
    print(text)
    if args.out:
        open(args.out, "w").write(text)


if __name__ == "__main__":
    main()
