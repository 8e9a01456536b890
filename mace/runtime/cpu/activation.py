"""The NumPy activation math of the CPU runtime, shared by the standalone activation kernels
(ops/elementwise.py) and every kernel that applies a fused one (`activation` /
`activation_params` attributes: conv, deconv, linear, batchnorm, binary ops)."""
from __future__ import annotations

import math

import numpy as np


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float32 arithmetic, vectorized (Abramowitz & Stegun 7.1.26: absolute error about
    5e-7 in float32, far inside the op tests' tolerances; math.erf per element is ~100x slower)."""
    a = np.abs(x)
    t = np.float32(1) / (np.float32(1) + np.float32(0.3275911) * a)
    poly = ((((np.float32(1.061405429) * t - np.float32(1.453152027)) * t + np.float32(1.421413741)) * t
             - np.float32(0.284496736)) * t + np.float32(0.254829592)) * t
    return np.copysign(np.float32(1) - poly * np.exp(-a * a), x)


_SQRT_HALF = np.float32(math.sqrt(0.5))
_TANH_C = np.float32(math.sqrt(2 / math.pi))


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
    if act == "Gelu":
        return (np.float32(0.5) * x * (1 + _erf(x * _SQRT_HALF))).astype(x.dtype, copy=False)
    if act == "GeluTanh":
        return (np.float32(0.5) * x * (1 + np.tanh(_TANH_C * (x + np.float32(0.044715) * x * x * x)))).astype(
            x.dtype, copy=False)
    if act == "Silu":
        with np.errstate(over="ignore"):
            return (x / (1 + np.exp(-x))).astype(x.dtype, copy=False)
    raise ValueError(f"unknown fused activation {act}")


def apply_node(x: np.ndarray, node) -> np.ndarray:
    return apply(x, node.attrs.get("activation"), node.attrs.get("activation_params", ()))
