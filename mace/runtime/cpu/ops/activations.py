"""Element-wise activations (standalone, when not fused into a producer)."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu import activation
from mace.runtime.cpu.registry import cpu_op


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
