"""Integer (and bool) kernels of the element-wise ops: Add/Sub/Mul/Div, Mod, Neg/Abs/Sign,
Max/Min, Clip, BitShift and the Bitwise ops. ONNX's semantics (`mace.ops.integer`):
truncating Div, Mod's sign rules, wrap-around; the result keeps the inputs' type."""
from __future__ import annotations

import numpy as np

from mace.ops import integer as rules
from mace.ops.dtypes import INTEGER
from mace.runtime.cpu.registry import cpu_op

_ARITH = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}
_NARY = {"Max": np.maximum, "Min": np.minimum}
_UNARY = {"Neg": np.negative, "Abs": np.abs, "Sign": np.sign, "BitwiseNot": np.invert}
_BITWISE = {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor}


def _same_type(inputs) -> tuple[list[np.ndarray], np.dtype]:
    xs = [np.asarray(x) for x in inputs if x is not None]
    dtype = xs[0].dtype
    return [x.astype(dtype, copy=False) for x in xs], dtype


@cpu_op("Add", "Sub", "Mul", "Div", "Mod", *_BITWISE, types=INTEGER)
def int_binary(node, inputs):
    (a, b), dtype = _same_type(inputs[:2])
    op = node.op_type
    with np.errstate(all="ignore"):
        if op == "Div":
            out = rules.trunc_div(a, b)
        elif op == "Mod":
            out = rules.mod(a, b, int(node.attrs.get("fmod", 0)))
        elif op in _BITWISE:
            out = _BITWISE[op](a, b)
        else:
            out = _ARITH[op](a, b)
    return [np.asarray(out, dtype=dtype)]


@cpu_op(*_NARY, types=INTEGER)
def int_nary(node, inputs):
    xs, dtype = _same_type(inputs)
    out = xs[0]
    with np.errstate(all="ignore"):
        for x in xs[1:]:
            out = _NARY[node.op_type](out, x)
    return [np.array(np.broadcast_to(out, np.broadcast_shapes(*[x.shape for x in xs])), dtype=dtype)]


@cpu_op(*_UNARY, types=INTEGER)
def int_unary(node, inputs):
    x = np.asarray(inputs[0])
    with np.errstate(all="ignore"):
        return [np.asarray(_UNARY[node.op_type](x), dtype=x.dtype)]


@cpu_op("Clip", types=INTEGER)
def int_clip(node, inputs):
    x = np.asarray(inputs[0])
    lo, hi = rules.clip_bounds(x.dtype, float(node.attrs.get("min", -np.inf)), float(node.attrs.get("max", np.inf)))
    return [np.minimum(np.maximum(x, lo), hi).astype(x.dtype)]


@cpu_op("BitShift", types=INTEGER)
def bit_shift(node, inputs):
    (x, s), dtype = _same_type(inputs[:2])
    fn = np.left_shift if node.attrs.get("direction", "LEFT") == "LEFT" else np.right_shift
    return [np.asarray(fn(x, s), dtype=dtype)]

