"""Top-1 of ONNX models on the full shared test sets (reference numbers for profagent-prune).

usage: python3 top1.py cifar10|imagenet MODEL.onnx [MODEL.onnx ...]
Preprocessing as in ../shared/README.md. Runs onnxruntime on CPU, batch 100.
"""
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../shared")


def cifar10():
    root = os.path.join(SHARED, "data/cifar10-test")
    mean = np.array([0.4914, 0.4822, 0.4465], np.float32) * 255
    std = np.array([0.2470, 0.2435, 0.2616], np.float32) * 255
    for label, cls in enumerate(sorted(os.listdir(root))):
        for f in sorted(os.listdir(os.path.join(root, cls))):
            img = np.asarray(Image.open(os.path.join(root, cls, f)).convert("RGB"), np.float32)
            yield ((img - mean) / std).transpose(2, 0, 1), label


def imagenet():
    root = os.path.join(SHARED, "data/imagenet-val-1300")
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    for line in open(os.path.join(root, "dataset.txt")):
        path, label = [p.strip() for p in line.split(",")]
        img = Image.open(os.path.join(root, path)).convert("RGB")
        w, h = img.size
        s = 256 / min(w, h)
        img = img.resize((round(w * s), round(h * s)), Image.BILINEAR)
        w, h = img.size
        left, top = (w - 224) // 2, (h - 224) // 2
        img = img.crop((left, top, left + 224, top + 224))
        x = (np.asarray(img, np.float32) / 255 - mean) / std
        yield x.transpose(2, 0, 1), int(label)


def main():
    data = {"cifar10": cifar10, "imagenet": imagenet}[sys.argv[1]]
    samples = list(data())
    x = np.stack([s[0] for s in samples]).astype(np.float32)
    y = np.array([s[1] for s in samples])
    for path in sys.argv[2:]:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        pred = np.concatenate([sess.run(None, {name: x[i:i + 100]})[0].argmax(1) for i in range(0, len(x), 100)])
        print(f"{os.path.basename(path)}: top-1 {100 * (pred == y).mean():.2f} % on {len(y)} images")


if __name__ == "__main__":
    main()
