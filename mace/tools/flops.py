"""Arithmetic cost per node (2 x multiply-accumulates), for GFLOP/s in profiles and benchmarks."""
from __future__ import annotations

import numpy as np

from mace.ir.graph import Graph, Node


def node_flops(graph: Graph, node: Node) -> float:
    t = node.op_type
    if t in ("Conv", "ConvTranspose"):
        w = graph.shape(node.inputs[1])
        if t == "Conv":
            out = graph.shape(node.outputs[0])
            return 2.0 * float(np.prod(out)) * float(np.prod(w[1:]))
        x = graph.shape(node.inputs[0])
        return 2.0 * float(np.prod(x)) * float(np.prod(w[1:]))
    if t in ("Gemm", "MatMul"):
        a = graph.shape(node.inputs[0])
        out = graph.shape(node.outputs[0])
        k = a[-1] if not (t == "Gemm" and node.attrs.get("transA")) else a[0]
        return 2.0 * float(np.prod(out)) * float(k)
    if node.outputs and node.outputs[0] in graph.shapes:
        return float(np.prod(graph.shape(node.outputs[0])))
    return 0.0


def model_flops(graph: Graph) -> float:
    return sum(node_flops(graph, n) for n in graph.nodes)
