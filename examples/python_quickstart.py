# %% [markdown]
# # ProfAgent from Python
#
# `pip install profagent` (or the wheel `scripts/test-python.sh` builds), then run this file
# (`python examples/python_quickstart.py`) or open it as a notebook (the `# %%` cells).
#
# With torch and torchvision installed, a torchvision ResNet-18 is exported with `torch.onnx`
# and compressed on random tensors with `min_cosine` (no labels needed). Without torch, the
# bundled CIFAR-10 ResNet-20 is compressed on the bundled images, loaded as numpy arrays the
# way a dataloader hands them over, with the same seed and settings as the command printed at
# the end: its `--json` holds the same plans, sizes and MACs.

# %%
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import profagent

HERE = Path(__file__).resolve().parent
OUT = Path("quickstart-run")
# Small slices so the example runs in well under a minute on 2 cores. The MACs target (no
# speed verdicts), every prunable group probed for sensitivity (ResNet-20 has 10; the default
# probes the 16 slowest) and one round planned by the MACs allocation (later rounds rank groups
# by measured latency) make every decision independent of timings, so the CLI repeats the run
# exactly. One round is a first step towards 95 % of the MACs: the budget is not met (the
# CLI's exit code 1, BudgetNotMetError here); raise `rounds` for a real run.
SETTINGS = dict(
    target_macs=0.95,
    no_probe=True,
    calib_samples=16,
    feedback_samples=48,
    holdout_samples=16,
    rounds=1,
    compare_seconds=1,
)


# %%
def torchvision_model(folder: Path):
    """ResNet-18 exported by torch.onnx, and 64 random images: None without torch."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    model = torchvision.models.resnet18(weights=None).eval()
    path = folder / "resnet18.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
    return path, np.random.default_rng(0).standard_normal((64, 3, 224, 224), dtype=np.float32)


def bundled_images():
    """The bundled CIFAR-10 sample as NCHW float32 (CIFAR-10 mean/std) and class indices."""
    from PIL import Image

    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    # The cifar10 preset's arithmetic: (pixel - mean/scale) / (std/scale), scale 1/255.
    offset = (mean / (1.0 / 255.0)).astype(np.float32)
    divisor = (std / (1.0 / 255.0)).astype(np.float32)
    images, labels = [], []
    folders = sorted(p for p in (HERE / "cifar10-sample").iterdir() if p.is_dir())
    for label, folder in enumerate(folders):
        for file in sorted(folder.iterdir()):
            pixels = np.asarray(Image.open(file).convert("RGB"), dtype=np.float32)
            images.append(((pixels - offset) / divisor).transpose(2, 0, 1))
            labels.append(label)
    return np.stack(images), np.array(labels)


# %%
exported = torchvision_model(OUT / "model")
if exported is not None:
    model, x = exported
    print(f"compressing {model} (torchvision ResNet-18) on {len(x)} random images")
    run = dict(data=x, min_cosine=0.99, out=OUT / "run", **SETTINGS)
    cli_data = None
else:
    model = HERE / "resnet20_cifar10.onnx"
    try:
        x, y = bundled_images()
        cli_data = ("--data", str(HERE / "cifar10-sample"), "--preprocess", "cifar10")
        data = (x, y)
    except ImportError:  # no pillow: the image folder itself
        data, cli_data = HERE / "cifar10-sample", ("--data", str(HERE / "cifar10-sample"))
        SETTINGS["preprocess"] = "cifar10"
    print(f"compressing {model.name} (bundled) on the bundled CIFAR-10 images")
    run = dict(data=data, max_acc_drop=60, out=OUT / "run", **SETTINGS)

# %%
profile = profagent.profile(model, runs=3, warmup=1)
print(f"params {profile['model']['params']:,}  MACs {profile['model']['macs']:,}")

# %%
try:
    report = profagent.compress(model, seed=0, **run)
except profagent.BudgetNotMetError as err:
    print(f"note: {err}")
    report = err.report

# %% [markdown]
# ## The report summary (report.json; the same fields as `profagent compress --json`)

# %%
print("round  accepted  top-1   size MB  MACs")
for r in report["rounds"]:
    e = r.get("evaluation") or {}
    top1 = e.get("top1")
    print(f"{r['round']:>5}  {'yes' if r['accepted'] else 'no':>8}  "
          f"{top1 if top1 is None else format(top1, '.2f'):>5}  "
          f"{e.get('model_bytes', 0) / 1e6:>7.3f}  {e.get('macs')}")
final = report["final"]
print(f"final: budget {'met' if final['budget_met'] else 'not met'}; "
      f"stopped: {final['stop_reason']}; acc drop {final.get('acc_drop')}; "
      f"size reduction {final.get('size_reduction')}")
print(f"model: {final['model_path']}  sha256 {final['sha256']}")

# %% [markdown]
# ## The same run from the command line
# The `profagent` command the wheel installed, with the same settings and seed: its `--json`
# holds the same rounds, plans, sizes, MACs and final model.

# %%
if cli_data is not None and shutil.which("profagent"):
    flags = []
    for key, value in SETTINGS.items():
        flags += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    with tempfile.TemporaryDirectory() as scratch:
        command = ["profagent", "--quiet", "compress", str(model), *cli_data, "--out",
                   f"{scratch}/run", "--max-acc-drop", "60", "--seed", "0", *flags,
                   "--json", f"{scratch}/cli.json"]
        print("\n$ " + " ".join(command))
        subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
        cli = json.loads(Path(f"{scratch}/cli.json").read_text())

    def numbers(r):
        return [(x["round"], x["accepted"], x["plan"], x["evaluation"]["model_bytes"],
                 x["evaluation"]["macs"], x["evaluation"]["top1"]) for x in r["rounds"]]

    print(f"CLI --json: rounds, plans, sizes, MACs, top-1 the same: "
          f"{numbers(cli) == numbers(report)}; final model the same (sha256): "
          f"{cli['final']['sha256'] == report['final']['sha256']}")
