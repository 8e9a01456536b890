"""Binary element-wise ops with full NumPy broadcasting (Add, Sub, Mul, Div; fused activation)
and PRelu (slope broadcast to x)."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu import activation
from mace.runtime.cpu.registry import cpu_op

_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}


def _is_int(x) -> bool:
    return np.asarray(x).dtype.kind in "iu"


@cpu_op("Add", "Sub", "Mul", "Div")
def binary(node, inputs):
    a, b = inputs[0], inputs[1]
    if _is_int(a) and _is_int(b):  # integer arithmetic (shape math the frontend could not fold)
        a, b = np.asarray(a), np.asarray(b)
        if node.op_type == "Div":
            out = np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b))
        else:
            out = _BINARY[node.op_type](a, b)
        return [np.asarray(out)]
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.array(_BINARY[node.op_type](a, b), dtype=np.float32)  # a fresh, writeable array
        return [activation.apply_node(out, node)]


@cpu_op("PRelu")
def prelu(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    slope = np.asarray(inputs[1], dtype=np.float32)
    out = np.where(x >= 0, x, x * slope).astype(np.float32, copy=False)
    if out.shape != x.shape:  # unidirectional broadcasting: the output has x's shape
        out = np.broadcast_to(out, x.shape).copy()
    return [out]
