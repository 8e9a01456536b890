"""Pattern fusions for the transformer blocks older exporters spell out op by op:
LayerNormalization from ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div (+ Mul by a scale, + Add of a
bias), and GELU from Div-by-sqrt(2)/Erf/Add/Mul/Mul or its tanh form. One fused node is one kernel launch and one
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
    """0.5 * x * (1 + erf(x / sqrt(2))) -> Gelu, and its tanh form
    0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) -> Gelu(approximate=tanh), in the
    orders exporters write them (x^3 as Pow(x, 3) or x * x * x)."""
    changed = 0
    for act in list(graph.nodes):
        if act.op_type not in ("Erf", "Tanh") or act not in graph.nodes:
            continue
        head = _erf_head(graph, act) if act.op_type == "Erf" else _tanh_head(graph, act)
        tail = _gelu_tail(graph, act, head[1]) if head else None
        if tail is None:
            continue
        removed, out = head[0] + [act] + tail[0], tail[1]
        at = max(graph.nodes.index(n) for n in removed)
        approximate = "none" if act.op_type == "Erf" else "tanh"
        graph.nodes.insert(at + 1, Node(f"{act.name}_gelu", "Gelu", [head[1]], [out], {"approximate": approximate}))
        for n in removed:
            graph.nodes.remove(n)
        changed += 1
    return changed


def _near(value, want: float) -> bool:
    return value is not None and abs(value - want) < 1e-4 * max(1.0, abs(want))


def _scaled(graph: Graph, node, want: float):
    """The tensor operand of a Mul by a scalar near `want` (either side), else None."""
    if node is None or node.op_type != "Mul" or len(node.inputs) != 2:
        return None
    for a, b in (node.inputs, node.inputs[::-1]):
        if _near(_scalar(graph, b), want) and a not in graph.weights:
            return a
    return None


def _erf_head(graph: Graph, erf: Node):
    """([x / sqrt(2) node], x) feeding the Erf."""
    cons, prods = graph.consumers(), graph.producers()
    scale = prods.get(erf.inputs[0])
    if scale is None or _only(cons, erf.inputs[0], graph) is not erf or len(scale.inputs) != 2:
        return None
    c = _scalar(graph, scale.inputs[1])
    if (scale.op_type == "Div" and _near(c, math.sqrt(2))) or (scale.op_type == "Mul" and _near(c, math.sqrt(0.5))):
        return [scale], scale.inputs[0]
    return None


def _cube_of(graph: Graph, node, cons):
    """x when `node` computes x^3 (Pow(x, 3), x * (x * x) or (x * x) * x), with its nodes."""
    if node is None:
        return None
    if node.op_type == "Pow" and _scalar(graph, node.inputs[1]) == 3.0:
        return node.inputs[0], [node]
    if node.op_type != "Mul" or len(node.inputs) != 2:
        return None
    prods = graph.producers()
    for x, sq_name in (node.inputs, node.inputs[::-1]):
        sq = prods.get(sq_name)
        if sq is not None and sq.op_type == "Mul" and sq.inputs == [x, x] and _only(cons, sq_name, graph) is node:
            return x, [sq, node]
    return None


def _tanh_head(graph: Graph, tanh: Node):
    """(nodes, x) computing sqrt(2 / pi) * (x + 0.044715 * x^3) for the Tanh."""
    cons, prods = graph.consumers(), graph.producers()
    inner = prods.get(tanh.inputs[0])
    if inner is None or _only(cons, tanh.inputs[0], graph) is not tanh:
        return None
    s = _scaled(graph, inner, math.sqrt(2 / math.pi))
    add = prods.get(s) if s else None
    if add is None or add.op_type != "Add" or len(add.inputs) != 2 or _only(cons, s, graph) is not inner:
        return None
    for x, k_name in (add.inputs, add.inputs[::-1]):
        k = prods.get(k_name)
        cube_name = _scaled(graph, k, 0.044715)
        cube = _cube_of(graph, prods.get(cube_name), cons) if cube_name else None
        if cube and cube[0] == x and _only(cons, k_name, graph) is add and _only(cons, cube_name, graph) is k:
            return cube[1] + [k, add, inner], x
    return None


def _gelu_tail(graph: Graph, act: Node, x: str):
    """(nodes, output) computing 0.5 * x * (1 + act) from the Erf / Tanh output."""
    cons, prods = graph.consumers(), graph.producers()
    add = _only(cons, act.outputs[0], graph, "Add")
    if add is None or _scalar(graph, _other(add, act.outputs[0]) or "") != 1.0:
        return None
    mul = _only(cons, add.outputs[0], graph, "Mul")
    if mul is None:
        return None
    other = _other(mul, add.outputs[0])
    if other == x:  # (x * (1 + act)) * 0.5
        half = _only(cons, mul.outputs[0], graph, "Mul")
        if half is None or _scalar(graph, _other(half, mul.outputs[0]) or "") != 0.5:
            return None
        return [add, mul, half], half.outputs[0]
    half = prods.get(other)  # (x * 0.5) * (1 + act)
    if half is None or half.op_type != "Mul" or _other(half, x) is None or _only(cons, other, graph) is not mul \
            or _scalar(graph, _other(half, x)) != 0.5:
        return None
    return [half, add, mul], mul.outputs[0]
