"""`quantize_large_weights: 1`: weights of Conv, ConvTranspose, Gemm and MatMul as symmetric int8
(one scale per output channel, or per tensor), computed in float: the model file holds them in a
quarter of the space (`mace.ir.quantized`), the runtimes see the dequantized values."""
from __future__ import annotations

import numpy as np

from mace.ir.graph import Graph
from mace.ir.quantized import dequantize

MIN_ELEMENTS = 128  # smaller weights stay float: their scales would cost about what they save


def _axis(graph: Graph, node, name: str) -> int | None:
    w = np.asarray(graph.weights[name])
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1 if int(node.attrs.get("group", 1)) == 1 else None
    if node.op_type == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    return w.ndim - 1 if w.ndim >= 2 else None  # MatMul: B's columns


def quantize_weights(graph: Graph, per_channel: bool = True) -> dict[str, dict]:
    """Replace each large weight by its int8-grid value in place; returns the storage records."""
    infos: dict[str, dict] = {}
    for node in graph.nodes:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or len(node.inputs) < 2:
            continue
        name = node.inputs[1]
        w = graph.weights.get(name)
        if w is None or name in infos or np.asarray(w).dtype != np.float32 or np.asarray(w).size < MIN_ELEMENTS:
            continue
        w = np.asarray(w)
        axis = _axis(graph, node, name) if per_channel else None
        red = tuple(k for k in range(w.ndim) if k != axis) if axis is not None else None
        amax = np.max(np.abs(w), axis=red) if red is not None else np.max(np.abs(w)).reshape(1)
        scale = (np.where(amax > 0, amax, 1.0) / 127.0).astype(np.float32).reshape(-1)
        shape = [1] * w.ndim
        if axis is not None:
            shape[axis] = -1
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        graph.weights[name] = dequantize(q, scale, 0, axis)
        infos[name] = {"dtype": "int8", "axis": axis, "scale": scale.tolist(), "zero_point": [0]}
    return infos
