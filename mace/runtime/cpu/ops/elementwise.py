"""Element-wise ops on the CPU: binary ops with full NumPy broadcasting (Add, Sub, Mul, Div; fused
activation), PRelu (slope broadcast to x) and the standalone activations (Relu, Sigmoid, Tanh,
HardSwish, Clip, LeakyRelu, HardSigmoid: the math is `mace.runtime.cpu.activation`'s, shared with
the kernels that fuse them)."""
from __future__ import annotations

import math

import numpy as np

from mace.runtime.cpu import activation, kernels
from mace.runtime.cpu.helpers import Prepared, act_into, act_params, parallel_chunks
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


def _fresh(x) -> np.ndarray:
    """A writeable float32 copy (inputs may be read-only memmaps and are never written)."""
    return np.array(x, dtype=np.float32, copy=True)


@cpu_op("Relu", "Sigmoid", "Tanh", "HardSwish")
def unary_activation(node, inputs):
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: sigmoid is then 0
        return [activation.apply(_fresh(inputs[0]), node.op_type)]


@cpu_op("Clip")
def clip(node, inputs):
    x = inputs[0]
    lo = node.attrs.get("min", -np.inf) if len(inputs) < 2 or inputs[1] is None else float(inputs[1])
    hi = node.attrs.get("max", np.inf) if len(inputs) < 3 or inputs[2] is None else float(inputs[2])
    return [np.clip(np.asarray(x, dtype=np.float32), np.float32(lo), np.float32(hi)).astype(np.float32)]


@cpu_op("LeakyRelu")
def leaky_relu(node, inputs):
    return [activation.apply(_fresh(inputs[0]), "LeakyRelu", [node.attrs.get("alpha", 0.01)])]


@cpu_op("HardSigmoid")
def hard_sigmoid(node, inputs):
    a = node.attrs
    return [activation.apply(_fresh(inputs[0]), "HardSigmoid", [a.get("alpha", 0.2), a.get("beta", 0.5)])]


class _PreparedBinary(Prepared):
    """Float Add/Sub/Mul/Div of static shapes into a persistent output (ones-augmented for batch 1,
    see helpers.Prepared), fused activation in place; the executor copies graph outputs."""

    def __init__(self, node, a_shape, b_shape, out_shape):
        self.ufunc = _BINARY[node.op_type]
        self.shapes = (tuple(a_shape), tuple(b_shape))
        self._alloc_out(out_shape)
        self.act = node.attrs.get("activation")
        self.params = tuple(node.attrs.get("activation_params", ()))
        from mace.runtime.cpu.kernels import ACT
        ops = ("Add", "Sub", "Mul", "Div")
        self.op = ops.index(node.op_type) if self.act in ACT and kernels.available() else None

    def __call__(self, node, inputs):
        a, b = inputs[0], inputs[1]
        if (a.dtype != np.float32 or b.dtype != np.float32 or a.shape != self.shapes[0]
                or b.shape != self.shapes[1]):
            return binary(node, inputs)
        dest = self._dest()
        if self.op is not None and a.shape == b.shape == dest.shape and _flat_ok(a, b, dest):
            from mace.runtime.cpu.kernels import ACT, binary_act
            af, bf, yf = a.reshape(-1), b.reshape(-1), dest.reshape(-1)
            p0, p1 = act_params(self.params)
            code = ACT[self.act]
            parallel_chunks(yf.size, lambda lo, hi: binary_act(af, bf, yf, self.op, code, p0, p1, lo, hi), yf.size)
            return [dest]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self.ufunc(a, b, out=dest)
        if self.act:
            act_into(dest, self.act, self.params, dest)
        return [dest]


def _flat_ok(*arrays) -> bool:
    """Operands the compiled element-wise kernel takes: C-contiguous, writeable float32."""
    return all(x.flags.c_contiguous and x.flags.writeable and x.dtype == np.float32 for x in arrays)


def _prepare_binary(node, weights, graph):
    if len(node.inputs) != 2 or not all(node.inputs) or len(node.outputs) != 1:
        return None
    if any(graph.dtypes.get(v, "float32") != "float32" for v in (*node.inputs, node.outputs[0])):
        return None
    shapes = [graph.shape(v) for v in node.inputs]
    out_shape = graph.shape(node.outputs[0])
    if tuple(np.broadcast_shapes(*shapes)) != tuple(out_shape) or len(out_shape) < 2:
        return None
    return _PreparedBinary(node, shapes[0], shapes[1], out_shape)


binary.prepare = _prepare_binary


_ERF = np.vectorize(math.erf, otypes=[np.float32])

#: float32 unary math (ONNX semantics; NaN/inf where ONNX gives them)
_UNARY = {
    "Abs": np.abs, "Neg": np.negative, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt,
    "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Sign": np.sign,
    "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan,
    "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh, "Atanh": np.arctanh,
    "Erf": _ERF, "Softsign": lambda x: x / (1 + np.abs(x)),
    "Softplus": lambda x: np.logaddexp(np.float32(0), x),
    "Round": np.round,  # half to even, as ONNX
}


@cpu_op(*_UNARY)
def unary_math(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    with np.errstate(all="ignore"):
        return [np.asarray(_UNARY[node.op_type](x), dtype=np.float32)]


@cpu_op("Gelu")
def gelu(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    if node.attrs.get("approximate", "none") == "tanh":
        inner = np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x ** 3)
        return [(np.float32(0.5) * x * (1 + np.tanh(inner))).astype(np.float32)]
    return [(np.float32(0.5) * x * (1 + _ERF(x / np.float32(math.sqrt(2))))).astype(np.float32)]


@cpu_op("Elu", "Selu", "Celu", "ThresholdedRelu", "Mish")
def parametric_activation(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    a = node.attrs
    with np.errstate(all="ignore"):
        if node.op_type == "Elu":
            out = np.where(x > 0, x, np.float32(a.get("alpha", 1.0)) * np.expm1(x))
        elif node.op_type == "Selu":
            alpha, gamma = np.float32(a.get("alpha", 1.67326319217681884765625)), np.float32(a.get("gamma", 1.05070102214813232421875))
            out = np.where(x > 0, gamma * x, gamma * alpha * np.expm1(x))
        elif node.op_type == "Celu":
            alpha = np.float32(a.get("alpha", 1.0))
            out = np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(x / alpha))
        elif node.op_type == "ThresholdedRelu":
            out = np.where(x > np.float32(a.get("alpha", 1.0)), x, 0)
        else:
            out = x * np.tanh(np.logaddexp(np.float32(0), x))
    return [np.asarray(out, dtype=np.float32)]


_NARY = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add, "Mean": np.add}


@cpu_op("Pow", "Mod", *_NARY)
def float_binary(node, inputs):
    """Pow, Mod (fmod=1: C's fmod; float Mod needs it), and the n-ary Max/Min/Sum/Mean."""
    xs = [np.asarray(v, dtype=np.float32) for v in inputs if v is not None]
    with np.errstate(all="ignore"):
        if node.op_type == "Pow":
            out = np.power(xs[0], xs[1])
        elif node.op_type == "Mod":
            out = np.fmod(xs[0], xs[1])
        else:
            out = xs[0]
            for x in xs[1:]:
                out = _NARY[node.op_type](out, x)
            if node.op_type == "Mean":
                out = out / np.float32(len(xs))
    return [np.array(out, dtype=np.float32)]
