"""Compare profagent-data's preprocessing with PIL + torchvision conventions, and score it with
onnxruntime in Python.

usage: python3 check_preprocess.py OUT.npy cifar10|imagenet [MODEL.onnx]

OUT.npy (+ OUT.labels.npy, OUT.items.txt) comes from
`cargo run -p profagent-data --release --example preprocess_to_npy -- DATA PRESET OUT.npy [LIMIT]`.
The reference below is what torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize
do on a PIL image (written with PIL + numpy so torchvision need not be installed).
"""
import sys
import numpy as np
from PIL import Image

PRESETS = {
    "cifar10": dict(resize=None, crop=None, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    "imagenet": dict(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
}


def reference(path, preset):
    image = Image.open(path).convert("RGB")
    if preset["resize"]:
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = preset["resize"], int(preset["resize"] * long / short)
        size = (new_short, new_long) if w <= h else (new_long, new_short)
        image = image.resize(size, Image.BILINEAR)
    if preset["crop"]:
        w, h = image.size
        c = preset["crop"]
        top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
        image = image.crop((left, top, left + c, top + c))
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.array(preset["mean"], np.float32)) / np.array(preset["std"], np.float32)
    return x.transpose(2, 0, 1)


def main():
    out, name = sys.argv[1], sys.argv[2]
    preset = PRESETS[name]
    ours = np.load(out)
    items = open(out[:-4] + ".items.txt").read().split("\n")
    worst, exact_pixels = 0.0, 0
    for i, path in enumerate(items):
        ref = reference(path, preset)
        diff = np.abs(ref - ours[i]).max()
        worst = max(worst, diff)
    # One grey level is 1/(255*std) ≈ 0.017 after normalisation: anything below 1e-4 is float
    # rounding, not a different pixel.
    print(f"{len(items)} images, max |ours - PIL/torchvision| = {worst:.2e}")
    if len(sys.argv) > 3:
        import onnxruntime as ort
        session = ort.InferenceSession(sys.argv[3], providers=["CPUExecutionProvider"])
        name_in = session.get_inputs()[0].name
        labels = np.load(out[:-4] + ".labels.npy")
        logits = np.concatenate([session.run(None, {name_in: ours[s:s + 100]})[0] for s in range(0, len(ours), 100)])
        top1 = (logits.argmax(1) == labels).mean()
        top5 = (np.argsort(-logits, 1)[:, :5] == labels[:, None]).any(1).mean()
        print(f"onnxruntime on our tensors: top-1 {top1 * 100:.2f} %, top-5 {top5 * 100:.2f} %")


if __name__ == "__main__":
    main()
