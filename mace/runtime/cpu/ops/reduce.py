"""Reductions over `axes` (non-negative, sorted; empty: per element) with `keepdims`: ReduceMean,
ReduceSum/Max/Min/Prod, ReduceL1/L2, ReduceSumSquare, ReduceLogSum(Exp); and
LayerNormalization, which normalizes over the trailing axes from `axis`."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu.registry import cpu_op

_REDUCE = {
    "ReduceMean": lambda x, ax, k: np.mean(x, axis=ax, keepdims=k, dtype=np.float32),
    "ReduceSum": lambda x, ax, k: np.sum(x, axis=ax, keepdims=k, dtype=np.float32),
    "ReduceMax": lambda x, ax, k: np.max(x, axis=ax, keepdims=k, initial=-np.inf),
    "ReduceMin": lambda x, ax, k: np.min(x, axis=ax, keepdims=k, initial=np.inf),
    "ReduceProd": lambda x, ax, k: np.prod(x, axis=ax, keepdims=k, dtype=np.float32),
    "ReduceL1": lambda x, ax, k: np.sum(np.abs(x), axis=ax, keepdims=k, dtype=np.float32),
    "ReduceL2": lambda x, ax, k: np.sqrt(np.sum(x * x, axis=ax, keepdims=k, dtype=np.float32)),
    "ReduceSumSquare": lambda x, ax, k: np.sum(x * x, axis=ax, keepdims=k, dtype=np.float32),
    "ReduceLogSum": lambda x, ax, k: np.log(np.sum(x, axis=ax, keepdims=k, dtype=np.float32)),
    "ReduceLogSumExp": lambda x, ax, k: _logsumexp(x, ax, k),
}


def _logsumexp(x, axes, keep):
    m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0).astype(np.float32)
    out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True, dtype=np.float32)) + m
    return out if keep else np.squeeze(out, axis=axes)


@cpu_op(*_REDUCE)
def reduce(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    axes = tuple(int(a) % max(x.ndim, 1) for a in node.attrs.get("axes", range(x.ndim)))
    keep = bool(node.attrs.get("keepdims", 1))
    # empty axes (noop_with_empty_axes): the op over no axis, i.e. per element (|x| for ReduceL2,
    # as onnxruntime and ONNX's reference compute it)
    with np.errstate(all="ignore"):
        return [np.asarray(_REDUCE[node.op_type](x, axes, keep), dtype=np.float32)]


@cpu_op("LayerNormalization")
def layer_norm(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    axes = tuple(range(int(node.attrs.get("axis", -1)) % x.ndim, x.ndim))
    eps = np.float32(node.attrs.get("epsilon", 1e-5))
    mean = np.mean(x, axis=axes, keepdims=True, dtype=np.float32)
    d = x - mean
    var = np.mean(d * d, axis=axes, keepdims=True, dtype=np.float32)
    out = d / np.sqrt(var + eps)
    out *= np.asarray(inputs[1], dtype=np.float32)
    if len(inputs) > 2 and inputs[2] is not None:
        out += np.asarray(inputs[2], dtype=np.float32)
    return [np.asarray(out, dtype=np.float32)]
