"""Pattern fusions for the transformer blocks older exporters spell out op by op:
LayerNormalization from ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div (+ Mul by a scale, + Add of a
bias), and GELU from Div-by-sqrt(2)/Erf/Add/Mul/Mul. One fused node is one kernel launch and one
pass over memory instead of nine or five. Runs after normalization (ReduceMean `axes` are
non-negative and sorted)."""
from __future__ import annotations

import math

import numpy as np

from mace.ir.graph import Graph, Node


def _scalar(graph: Graph, name: str):
    """The value of a one-element constant, else None."""
    w = graph.weights.get(name)
    if w is None or np.asarray(w).size != 1:
        return None
    return float(np.asarray(w).reshape(-1)[0])


def _only(cons, name, graph, op_type=None):
    """The one consumer of `name` (of `op_type`), if `name` is not a graph output."""
    readers = cons.get(name, [])
    if len(readers) != 1 or name in graph.outputs:
        return None
    n = readers[0]
    return n if op_type is None or n.op_type == op_type else None


def _other(node: Node, name: str):
    """The input of a binary node that is not `name` (None if both or neither are)."""
    ins = list(node.inputs)
    if len(ins) != 2 or ins.count(name) != 1:
        return None
    return ins[1 - ins.index(name)]


def fuse_layer_norm(graph: Graph) -> int:
    changed = 0
    for mean in list(graph.nodes):
        if mean.op_type != "ReduceMean" or mean not in graph.nodes:
            continue
        match = _match_layer_norm(graph, mean)
        if match is None:
            continue
        removed, out, axis, eps, scale, bias = match
        x = mean.inputs[0]
        norm = list(graph.shape(x))[axis:]
        names = [x, _weight(graph, f"{mean.name}_ln_scale", scale, norm)]
        if bias is not None:
            names.append(_weight(graph, f"{mean.name}_ln_bias", bias, norm))
        at = graph.nodes.index(removed[-1])
        graph.nodes.insert(at + 1, Node(f"{mean.name}_layernorm", "LayerNormalization", names, [out],
                                        {"axis": axis, "epsilon": eps}))
        for n in removed:
            graph.nodes.remove(n)
        changed += 1
    return changed


def _weight(graph: Graph, name: str, value, shape) -> str:
    graph.weights[name] = np.ascontiguousarray(np.broadcast_to(value, shape), dtype=np.float32)
    graph.shapes[name], graph.dtypes[name] = list(shape), "float32"
    return name


def _trailing(graph, node, x) -> int | None:
    rank = len(graph.shape(x))
    axes = list(node.attrs.get("axes", []))
    if not axes or not node.attrs.get("keepdims", 1) or axes != list(range(axes[0], rank)):
        return None
    return axes[0]


def _match_layer_norm(graph: Graph, mean: Node):
    cons, x = graph.consumers(), mean.inputs[0]
    axis = _trailing(graph, mean, x)
    if axis is None:
        return None
    sub = _only(cons, mean.outputs[0], graph, "Sub")
    if sub is None or sub.inputs != [x, mean.outputs[0]]:
        return None
    d = sub.outputs[0]
    readers = list({id(n): n for n in cons.get(d, [])}.values())  # Mul(d, d) reads it twice
    sq = next((n for n in readers if (n.op_type == "Pow" and n.inputs[0] == d and _scalar(graph, n.inputs[1]) == 2.0)
               or (n.op_type == "Mul" and n.inputs == [d, d])), None)
    div = next((n for n in readers if n.op_type == "Div" and n.inputs[0] == d), None)
    if sq is None or div is None or len(readers) != 2 or d in graph.outputs:
        return None
    var = _only(cons, sq.outputs[0], graph, "ReduceMean")
    if var is None or _trailing(graph, var, d) != axis:
        return None
    add = _only(cons, var.outputs[0], graph, "Add")
    eps = _scalar(graph, _other(add, var.outputs[0]) or "") if add else None
    sqrt = _only(cons, add.outputs[0], graph, "Sqrt") if eps is not None else None
    if sqrt is None or div.inputs[1] != sqrt.outputs[0] or _only(cons, sqrt.outputs[0], graph) is not div:
        return None
    removed, out, scale, bias = [mean, sub, sq, var, add, sqrt, div], div.outputs[0], np.float32(1), None
    mul = _only(cons, out, graph, "Mul")
    if mul is None or _other(mul, out) not in graph.weights or mul.attrs.get("activation"):
        return removed, out, axis, eps, scale, bias
    s = _affine(graph, _other(mul, out), axis, x)
    if s is None:
        return removed, out, axis, eps, scale, bias
    scale, out = s, mul.outputs[0]
    removed.append(mul)
    badd = _only(cons, out, graph, "Add")
    if badd is not None and _other(badd, out) in graph.weights and not badd.attrs.get("activation"):
        b = _affine(graph, _other(badd, out), axis, x)
        if b is not None:
            bias, out = b, badd.outputs[0]
            removed.append(badd)
    return removed, out, axis, eps, scale, bias


def _affine(graph, name, axis, x):
    """A scale or bias constant as a vector over the normalized axes (None if it varies elsewhere)."""
    w = np.asarray(graph.weights[name], dtype=np.float32)
    shape = list(graph.shape(x))
    norm = shape[axis:]
    if w.ndim > len(shape) or any(d != 1 for d in w.shape[:max(w.ndim - len(norm), 0)]):
        return None
    w = w.reshape(w.shape[max(w.ndim - len(norm), 0):])
    try:
        return np.broadcast_to(w, norm)
    except ValueError:
        return None


def fuse_gelu(graph: Graph) -> int:
    """0.5 * x * (1 + erf(x / sqrt(2))), in the orders exporters write it -> Gelu."""
    changed = 0
    for erf in list(graph.nodes):
        if erf.op_type != "Erf" or erf not in graph.nodes:
            continue
        match = _match_gelu(graph, erf)
        if match is None:
            continue
        removed, x, out = match
        at = graph.nodes.index(removed[-1])
        graph.nodes.insert(at + 1, Node(f"{erf.name}_gelu", "Gelu", [x], [out], {"approximate": "none"}))
        for n in removed:
            graph.nodes.remove(n)
        changed += 1
    return changed


def _match_gelu(graph: Graph, erf: Node):
    cons, prods = graph.consumers(), graph.producers()
    scale = prods.get(erf.inputs[0])
    if scale is None or _only(cons, erf.inputs[0], graph) is not erf or len(scale.inputs) != 2:
        return None
    x = scale.inputs[0]
    c = _scalar(graph, scale.inputs[1])
    if c is None or not ((scale.op_type == "Div" and abs(c - math.sqrt(2)) < 1e-4)
                         or (scale.op_type == "Mul" and abs(c - math.sqrt(0.5)) < 1e-4)):
        return None
    add = _only(cons, erf.outputs[0], graph, "Add")
    if add is None or _scalar(graph, _other(add, erf.outputs[0]) or "") != 1.0:
        return None
    mul = _only(cons, add.outputs[0], graph, "Mul")
    if mul is None:
        return None
    other = _other(mul, add.outputs[0])
    if other == x:  # (x * (1 + erf)) * 0.5
        half = _only(cons, mul.outputs[0], graph, "Mul")
        if half is None or _scalar(graph, _other(half, mul.outputs[0]) or "") != 0.5:
            return None
        return [scale, erf, add, mul, half], x, half.outputs[0]
    half = prods.get(other)  # (x * 0.5) * (1 + erf)
    if half is None or half.op_type != "Mul" or _other(half, x) is None or _only(cons, other, graph) is not mul \
            or _scalar(graph, _other(half, x)) != 0.5:
        return None
    return [scale, half, erf, add, mul], x, mul.outputs[0]
