"""Einsum's two-operand forms (batched matmuls, attention scores and values, outer and inner
products) lowered to Transpose -> Reshape -> MatMul -> Reshape -> Transpose at conversion, so
that both runtimes run them with their MatMul kernels. Other forms (one or three operands, a
letter repeated in a term (diagonals), ellipses, a letter summed over one operand only, a
broadcast dimension, integer operands) stay Einsum nodes (the CPU runtime's kernel)."""
from __future__ import annotations

import numpy as np

from mace.ir.graph import Graph, Node


def lower(graph: Graph) -> int:
    """Replace every lowerable Einsum node by its steps; returns how many were lowered."""
    nodes, count = [], 0
    for n in graph.nodes:
        steps = _lowered(graph, n) if n.op_type == "Einsum" else None
        nodes += steps if steps is not None else [n]
        count += steps is not None
    graph.nodes = nodes
    return count


def _terms(equation: str, n_inputs: int):
    """(input terms, output term), or None for forms not lowered."""
    if "." in equation or n_inputs != 2:
        return None
    lhs, _, out = equation.partition("->")
    terms = lhs.split(",")
    if "->" not in equation:  # implicit output: the letters used once, in alphabetical order
        out = "".join(sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1))
    if any(len(set(t)) != len(t) for t in [*terms, out]):
        return None
    return terms, out


def _lowered(graph: Graph, n: Node) -> list[Node] | None:
    parsed = _terms(n.attrs["equation"], len(n.inputs))
    if parsed is None or any(graph.dtypes.get(v, "float32") != "float32" for v in [*n.inputs, n.outputs[0]]):
        return None
    (ta, tb), out = parsed
    shapes = [graph.shape(v) for v in n.inputs]
    if [len(ta), len(tb)] != [len(s) for s in shapes]:
        return None
    size: dict[str, int] = {}
    for term, shape in zip((ta, tb), shapes):
        for c, d in zip(term, shape):
            if size.setdefault(c, int(d)) != int(d):
                return None  # a broadcast dimension
    if any(c not in out and c not in other for term, other in ((ta, tb), (tb, ta)) for c in term):
        return None  # a letter summed over one operand only
    batch = [c for c in out if c in ta and c in tb]
    m, nn = [c for c in out if c in ta and c not in tb], [c for c in out if c in tb and c not in ta]
    k = [c for c in ta if c in tb and c not in out]
    dims = [size[c] for c in batch]
    prod = lambda letters: int(np.prod([size[c] for c in letters], dtype=np.int64))  # noqa: E731
    steps: list[Node] = []
    a = _arrange(graph, steps, n, "a", n.inputs[0], ta, batch + m + k, dims + [prod(m), prod(k)])
    b = _arrange(graph, steps, n, "b", n.inputs[1], tb, batch + k + nn, dims + [prod(k), prod(nn)])
    mm = _value(graph, f"{n.name}/matmul", dims + [prod(m), prod(nn)])
    steps.append(Node(f"{n.name}/matmul", "MatMul", [a, b], [mm]))
    order = batch + m + nn
    _arrange(graph, steps, n, "y", mm, "".join(order), list(out), [size[c] for c in out], final=n.outputs[0])
    return steps


def _value(graph: Graph, name: str, shape: list[int]) -> str:
    graph.shapes[name] = list(shape)
    graph.dtypes[name] = "float32"
    return name


def _arrange(graph, steps, n, tag, value, letters, order, shape, final=None) -> str:
    """Transpose `value` (dims named by `letters`) into `order`, then reshape it to `shape`;
    the last step writes `final` when given (an Identity if no step is needed)."""
    perm = [letters.index(c) for c in order]
    todo = []
    if perm != list(range(len(perm))):
        todo.append(("Transpose", {"perm": perm}, [graph.shape(value)[p] for p in perm]))
    if list(todo[-1][2] if todo else graph.shape(value)) != list(shape):
        todo.append(("Reshape", {"shape": list(shape)}, list(shape)))
    if final is not None and not todo:
        todo.append(("Reshape", {"shape": list(shape)}, list(shape)))
    for j, (op, attrs, out_shape) in enumerate(todo):
        last = j == len(todo) - 1
        out = final if final is not None and last else _value(graph, f"{n.name}/{tag}{op.lower()}", out_shape)
        steps.append(Node(f"{n.name}/{tag}{op.lower()}", op, [value], [out], attrs))
        value = out
    return value
