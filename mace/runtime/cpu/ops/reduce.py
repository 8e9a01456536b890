"""Reductions over `axes` (non-negative, sorted; empty: per element) with `keepdims`: ReduceMean,
ReduceSum/Max/Min/Prod, ReduceL1/L2, ReduceSumSquare, ReduceLogSum(Exp); and
LayerNormalization, which normalizes over the trailing axes from `axis` (and gives its optional
Mean and InvStdDev outputs); integer/bool ReduceSum/Prod/Max/Min."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import BOOL, INTEGER
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
    inv_std = np.float32(1) / np.sqrt(var + eps)
    out = d * inv_std
    out *= np.asarray(inputs[1], dtype=np.float32)
    if len(inputs) > 2 and inputs[2] is not None:
        out += np.asarray(inputs[2], dtype=np.float32)
    # the optional Mean and InvStdDev outputs (the statistics, of shape x.shape[:axis] + 1s)
    return [np.asarray(out, dtype=np.float32), mean, inv_std]


_TYPED_REDUCE = {"ReduceSum": np.sum, "ReduceProd": np.prod, "ReduceMax": np.max, "ReduceMin": np.min}


@cpu_op(*_TYPED_REDUCE, types=INTEGER | BOOL)
def reduce_typed(node, inputs):
    """Integer ReduceSum/Prod (wrap-around in the input's type) and ReduceMax/Min of integers or
    bools; an empty reduction gives the identity (the type's min for Max, its max for Min)."""
    x = np.asarray(inputs[0])
    axes = tuple(int(a) % max(x.ndim, 1) for a in node.attrs.get("axes", range(x.ndim)))
    keep = bool(node.attrs.get("keepdims", 1))
    if not axes:
        return [np.array(x)]
    op = node.op_type
    if op in ("ReduceSum", "ReduceProd"):
        out = _TYPED_REDUCE[op](x, axis=axes, keepdims=keep, dtype=x.dtype)
    else:
        info = (0, 1) if x.dtype == np.bool_ else (np.iinfo(x.dtype).min, np.iinfo(x.dtype).max)
        initial = info[0] if op == "ReduceMax" else info[1]
        out = _TYPED_REDUCE[op](x, axis=axes, keepdims=keep, initial=np.asarray(initial).astype(x.dtype))
    return [np.asarray(out, dtype=x.dtype)]


@cpu_op("RMSNormalization")
def rms_norm(node, inputs):
    """x / sqrt(mean(x^2 over the trailing axes from `axis`) + epsilon) * scale."""
    x = np.asarray(inputs[0], dtype=np.float32)
    axes = tuple(range(int(node.attrs.get("axis", -1)) % x.ndim, x.ndim))
    eps = np.float32(node.attrs.get("epsilon", 1e-5))
    ms = np.mean(x * x, axis=axes, keepdims=True, dtype=np.float32)
    out = x / np.sqrt(ms + eps) * np.asarray(inputs[1], dtype=np.float32)
    return [np.asarray(out, dtype=np.float32)]


@cpu_op("LpNormalization")
def lp_norm(node, inputs):
    """x divided by its L1 or L2 norm along `axis` (0 where the norm is 0)."""
    x = np.asarray(inputs[0], dtype=np.float32)
    axis = int(node.attrs["axis"])
    p = int(node.attrs.get("p", 2))
    norm = (np.sum(np.abs(x), axis=axis, keepdims=True, dtype=np.float32) if p == 1
            else np.sqrt(np.sum(x * x, axis=axis, keepdims=True, dtype=np.float32)))
    with np.errstate(all="ignore"):
        return [np.where(norm == 0, np.float32(0), x / norm).astype(np.float32)]
