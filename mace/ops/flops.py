"""Arithmetic cost per node (2 x multiply-accumulates where there are products), from each
family's rule, for GFLOP/s in profiles and benchmarks; other ops count one per output element."""
from __future__ import annotations

import numpy as np

from mace.ir.graph import Graph, Node
from mace.ops import conv, deconv, linear


def node_flops(graph: Graph, node: Node) -> float:
    t = node.op_type
    if t == "Conv":
        return conv.flops(graph.shape(node.outputs[0]), graph.shape(node.inputs[1]))
    if t == "ConvTranspose":
        return deconv.flops(graph.shape(node.inputs[0]), graph.shape(node.inputs[1]))
    if t in ("Gemm", "MatMul"):
        return linear.flops(t, graph.shape(node.inputs[0]), graph.shape(node.outputs[0]), node.attrs)
    if node.outputs and node.outputs[0] in graph.shapes:
        return float(np.prod(graph.shape(node.outputs[0])))
    return 0.0


def model_flops(graph: Graph) -> float:
    return sum(node_flops(graph, n) for n in graph.nodes)
