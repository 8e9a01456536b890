"""Graph rewrites the CPU executor makes on its own copy of the graph before preparing steps.

A zero constant Pad of the spatial dims whose one reader is a Conv (TensorFlow's "same" padding
as an explicit Pad, EfficientNet-Lite's depthwise layers) becomes part of that Conv's pads: the
prepared Conv already copies its input into a zero-padded buffer, so the Pad's own pass over
memory (11 % of EfficientNet-Lite0's time) goes away. The model file is not changed.
"""
from __future__ import annotations

import dataclasses

from mace.ir.graph import Graph, Node


def _spatial_zero_pad(node: Node, rank: int) -> list[int] | None:
    """The Pad's (begins, ends) of the spatial dims of a rank-4 input, or None where it is not a
    non-negative zero constant pad of those dims alone."""
    a = node.attrs
    pads = [int(p) for p in a.get("pads", [])]
    if (rank != 4 or len(pads) != 8 or a.get("mode", "constant") != "constant" or float(a.get("value", 0.0)) != 0.0
            or len([i for i in node.inputs if i]) != 1 or any(p < 0 for p in pads) or any(pads[i] for i in (0, 1, 4, 5))):
        return None
    return [pads[2], pads[3], pads[6], pads[7]]


def fold_pads(graph: Graph) -> Graph:
    """`graph` with each foldable Pad merged into its Conv reader (a copy; `graph` is untouched)."""
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    drop, new = set(), {}
    for n in graph.nodes:
        if n.op_type != "Pad" or n.outputs[0] in outputs or not n.inputs[0]:
            continue
        readers = consumers.get(n.outputs[0], [])
        if len(readers) != 1 or readers[0].op_type != "Conv" or readers[0].inputs[0] != n.outputs[0]:
            continue
        conv = new.get(readers[0].name, readers[0])
        extra = _spatial_zero_pad(n, len(graph.shape(n.inputs[0])))
        if extra is None or len(graph.shape(conv.outputs[0])) != 4:
            continue
        attrs = dict(conv.attrs)
        attrs["pads"] = [p + e for p, e in zip(attrs.get("pads", [0, 0, 0, 0]), extra)]
        new[conv.name] = Node(conv.name, conv.op_type, [n.inputs[0], *conv.inputs[1:]], list(conv.outputs), attrs)
        drop.add(n.name)
    if not drop:
        return graph
    nodes = [new.get(n.name, n) for n in graph.nodes if n.name not in drop]
    return dataclasses.replace(graph, nodes=nodes)
