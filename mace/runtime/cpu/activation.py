"""The NumPy activation math of the CPU runtime, shared by the standalone activation kernels
(ops/elementwise.py) and every kernel that applies a fused one (`activation` /
`activation_params` attributes: conv, deconv, linear, batchnorm, binary ops)."""
from __future__ import annotations

import numpy as np

def apply(x: np.ndarray, act: str | None, params=()) -> np.ndarray:
    if not act:
        return x
    if act == "Relu":
        return np.maximum(x, 0, out=x if x.flags.writeable else None)
    if act == "Clip":
        lo, hi = params
        return np.clip(x, lo, hi, out=x if x.flags.writeable else None)
    if act == "LeakyRelu":
        return np.where(x >= 0, x, x * np.float32(params[0])).astype(x.dtype, copy=False)
    if act == "Sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype, copy=False)
    if act == "Tanh":
        return np.tanh(x)
    if act == "HardSigmoid":
        alpha, beta = params
        return np.clip(x * np.float32(alpha) + np.float32(beta), 0, 1).astype(x.dtype, copy=False)
    if act == "HardSwish":
        return (x * np.clip(x / 6.0 + 0.5, 0, 1)).astype(x.dtype, copy=False)
    raise ValueError(f"unknown fused activation {act}")


def apply_node(x: np.ndarray, node) -> np.ndarray:
    return apply(x, node.attrs.get("activation"), node.attrs.get("activation_params", ()))
