#!/usr/bin/env python3
"""Writes a ViT-B/16 (224x224, 12 blocks, dim 768, 12 heads, MLP 3072, 1000 classes) with
random weights as ONNX, op for op the way PyTorch's exporter writes timm/torchvision ViTs
(MatMul + Add Linear layers, LayerNormalization, Erf GELU, Softmax attention), with the
exporter's scoped node names (`/blocks/blocks.3/attn/qkv/MatMul`).

Used by bench/quant_vs_ort.py because torch is not installed here; only the graph shape and
the weight sizes matter for quantization speed, size and latency.

    python3 bench/make_vit_b16.py /tmp/vit_b16.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DIM, HEADS, MLP, DEPTH, PATCH, IMAGE, CLASSES = 768, 12, 3072, 12, 16, 224, 1000
TOKENS = (IMAGE // PATCH) ** 2 + 1


def build(path, seed=0):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def init(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(name, shape, std=0.02):
        return init(name, (rng.standard_normal(shape) * std).astype(np.float32))

    def node(op, name, inputs, n_out=1, **attrs):
        outs = [f"{name}_output_{k}" for k in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    counter = [0]

    def linear(scope, x, c_in, c_out):
        counter[0] += 1
        w = weight(f"onnx::MatMul_{1000 + counter[0]}", (c_in, c_out))
        b = weight(f"{scope.strip('/').split('/')[-1]}.{counter[0]}.bias", (c_out,))
        mm = node("MatMul", f"{scope}/MatMul", [x, w])
        return node("Add", f"{scope}/Add", [b, mm])

    def layernorm(scope, x, layer):
        s = init(f"{layer}.weight", np.ones(DIM, np.float32))
        b = init(f"{layer}.bias", np.zeros(DIM, np.float32))
        return node("LayerNormalization", f"{scope}/LayerNormalization", [x, s, b], axis=-1, epsilon=1e-6)

    const = lambda name, values: init(name, np.array(values, dtype=np.int64))
    x = node("Conv", "/patch_embed/proj/Conv",
             ["input", weight("patch_embed.proj.weight", (DIM, 3, PATCH, PATCH)), weight("patch_embed.proj.bias", (DIM,))],
             kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH])
    x = node("Reshape", "/patch_embed/Reshape", [x, const("shape_flat", [0, DIM, -1])])
    x = node("Transpose", "/patch_embed/Transpose", [x], perm=[0, 2, 1])
    batch = node("Shape", "/Shape", [x])
    batch = node("Gather", "/Gather", [batch, const("zero", [0])], axis=0)
    cls_shape = node("Concat", "/Concat", [batch, const("cls_rest", [1, DIM])], axis=0)
    cls = node("Expand", "/Expand", [weight("cls_token", (1, 1, DIM)), cls_shape])
    x = node("Concat", "/Concat_1", [cls, x], axis=1)
    x = node("Add", "/Add", [x, weight("pos_embed", (1, TOKENS, DIM))])
    scale = init("attn_scale", np.array((DIM // HEADS) ** -0.5, np.float32))
    half = init("half", np.array(0.5, np.float32))
    one = init("one", np.array(1.0, np.float32))
    sqrt2 = init("sqrt2", np.array(np.sqrt(2.0), np.float32))
    for i in range(DEPTH):
        p = f"/blocks/blocks.{i}"
        h = layernorm(f"{p}/norm1", x, f"blocks.{i}.norm1")
        qkv = linear(f"{p}/attn/qkv", h, DIM, 3 * DIM)
        qkv = node("Reshape", f"{p}/attn/Reshape", [qkv, const(f"qkv_shape_{i}", [0, TOKENS, 3, HEADS, DIM // HEADS])])
        qkv = node("Transpose", f"{p}/attn/Transpose", [qkv], perm=[2, 0, 3, 1, 4])
        q, k, v = node("Split", f"{p}/attn/Split", [qkv], n_out=3, axis=0)
        q, k, v = (node("Squeeze", f"{p}/attn/Squeeze_{j}", [t, const(f"sq_{i}_{j}", [0])]) for j, t in enumerate((q, k, v)))
        q = node("Mul", f"{p}/attn/Mul", [q, scale])
        kt = node("Transpose", f"{p}/attn/Transpose_1", [k], perm=[0, 1, 3, 2])
        a = node("MatMul", f"{p}/attn/MatMul", [q, kt])
        a = node("Softmax", f"{p}/attn/Softmax", [a], axis=-1)
        o = node("MatMul", f"{p}/attn/MatMul_1", [a, v])
        o = node("Transpose", f"{p}/attn/Transpose_2", [o], perm=[0, 2, 1, 3])
        o = node("Reshape", f"{p}/attn/Reshape_1", [o, const(f"out_shape_{i}", [0, TOKENS, DIM])])
        o = linear(f"{p}/attn/proj", o, DIM, DIM)
        x = node("Add", f"{p}/Add", [x, o])
        h = layernorm(f"{p}/norm2", x, f"blocks.{i}.norm2")
        h = linear(f"{p}/mlp/fc1", h, DIM, MLP)
        g = node("Div", f"{p}/mlp/act/Div", [h, sqrt2])
        g = node("Erf", f"{p}/mlp/act/Erf", [g])
        g = node("Add", f"{p}/mlp/act/Add", [g, one])
        g = node("Mul", f"{p}/mlp/act/Mul", [h, g])
        g = node("Mul", f"{p}/mlp/act/Mul_1", [g, half])
        h = linear(f"{p}/mlp/fc2", g, MLP, DIM)
        x = node("Add", f"{p}/Add_1", [x, h])
    x = layernorm("/norm", x, "norm")
    x = node("Gather", "/Gather_1", [x, init("cls_index", np.array(0, np.int64))], axis=1)
    nodes.append(helper.make_node("Gemm", [x, weight("head.weight", (CLASSES, DIM)), weight("head.bias", (CLASSES,))],
                                  ["logits"], name="/head/Gemm", transB=1))
    graph = helper.make_graph(
        nodes, "vit_b16",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, IMAGE, IMAGE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="profagent-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "vit_b16.onnx")
