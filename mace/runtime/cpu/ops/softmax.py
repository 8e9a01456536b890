"""Softmax and LogSoftmax along `axis`; `legacy_flatten` (opset < 13) flattens to 2-D at `axis` first."""
from __future__ import annotations

import numpy as np

from mace.ops.softmax import softmax_view
from mace.runtime.cpu.registry import cpu_op


def softmax_np(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


@cpu_op("Softmax", "LogSoftmax")
def softmax(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    if x.size == 0:
        return [np.zeros(x.shape, np.float32)]
    axis = int(node.attrs.get("axis", -1)) % max(x.ndim, 1)
    if node.attrs.get("legacy_flatten", 0):
        outer, n, _ = softmax_view(x.shape, axis, True)
        x2 = x.reshape(outer, n)
        return [(_log_softmax(x2, 1) if node.op_type == "LogSoftmax" else softmax_np(x2, 1)).reshape(x.shape)]
    return [_log_softmax(x, axis) if node.op_type == "LogSoftmax" else softmax_np(x, axis)]


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    s = x - m
    return (s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))).astype(np.float32)


@cpu_op("Hardmax")
def hardmax(node, inputs):
    """1 at the first largest value along `axis` (normalized), 0 elsewhere."""
    x = np.asarray(inputs[0], dtype=np.float32)
    axis = int(node.attrs["axis"])
    out = np.zeros_like(x)
    np.put_along_axis(out, np.expand_dims(np.argmax(x, axis=axis), axis), np.float32(1), axis=axis)
    return [out]
