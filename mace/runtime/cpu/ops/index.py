"""Indexing ops: Gather, GatherElements, GatherND (computed indices, any data type), ArgMax /
ArgMin (int64 indices, first or last of equal values) and TopK (values and int64 indices; of
equal values the lower index comes first). Axes are normalized non-negative; negative indices
count from the end, one out of range is an InputError (`mace.ops.index.wrap`)."""
from __future__ import annotations

import numpy as np

from mace.ops import index as rules
from mace.ops.dtypes import ANY, NUMERIC
from mace.runtime.cpu.registry import cpu_op


def _what(node) -> str:
    return f"node {node.name} ({node.op_type})"


@cpu_op("Gather", types=ANY)
def gather(node, inputs):
    data = np.asarray(inputs[0])
    axis = int(node.attrs.get("axis", 0))
    idx = rules.wrap(inputs[1], data.shape[axis], _what(node))
    return [np.asarray(np.take(data, idx, axis=axis), order="C")]


@cpu_op("GatherElements", types=ANY)
def gather_elements(node, inputs):
    data = np.asarray(inputs[0])
    axis = int(node.attrs.get("axis", 0))
    idx = rules.wrap(inputs[1], data.shape[axis], _what(node))
    # the indices may be smaller than data on the other axes: out[i][j] = data[idx[i][j]][j]
    data = data[tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(idx.shape))]
    return [np.asarray(np.take_along_axis(data, idx, axis=axis), order="C")]


@cpu_op("GatherND", types=ANY)
def gather_nd(node, inputs):
    data, idx = np.asarray(inputs[0]), np.asarray(inputs[1], dtype=np.int64)
    b = int(node.attrs.get("batch_dims", 0))
    k = idx.shape[-1]
    batch = data.shape[:b]
    nb = int(np.prod(batch, dtype=np.int64))
    d = data.reshape((nb, *data.shape[b:]))
    ix = idx.reshape((nb, -1, k))
    cols = tuple(rules.wrap(ix[..., j], d.shape[1 + j], _what(node)) for j in range(k))
    out = d[(np.arange(nb)[:, None], *cols)]
    return [np.asarray(out.reshape((*idx.shape[:-1], *data.shape[b + k:])), order="C")]


@cpu_op("ArgMax", "ArgMin", types=NUMERIC)
def arg_extreme(node, inputs):
    x = np.asarray(inputs[0])
    a = node.attrs
    axis, keep = int(a.get("axis", 0)), bool(a.get("keepdims", 1))
    fn = np.argmax if node.op_type == "ArgMax" else np.argmin
    if int(a.get("select_last_index", 0)):
        n = x.shape[axis]
        out = n - 1 - fn(np.flip(x, axis=axis), axis=axis)
    else:
        out = fn(x, axis=axis)
    out = out.astype(np.int64)
    return [np.asarray(np.expand_dims(out, axis) if keep else out, order="C")]


@cpu_op("TopK", types=NUMERIC)
def top_k(node, inputs):
    x = np.asarray(inputs[0])
    a = node.attrs
    axis, k = int(a["axis"]), int(a["k"])
    key = x.astype(np.float64) if x.dtype.kind in "iu" else x
    order = np.argsort(-key if int(a.get("largest", 1)) else key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.asarray(np.take_along_axis(x, idx, axis=axis), order="C"), np.asarray(idx.astype(np.int64), order="C")]


_SCATTER_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@cpu_op("ScatterElements", "ScatterND", types=ANY)
def scatter(node, inputs):
    """A copy of data with `updates` written (reduction none) or combined (add/mul/max/min) at the
    indices: per element along `axis` (ScatterElements) or per index tuple (ScatterND)."""
    data, updates = np.asarray(inputs[0]), np.asarray(inputs[2])
    out = np.array(data, copy=True)
    idx = np.asarray(inputs[1], dtype=np.int64)
    if node.op_type == "ScatterElements":
        axis = int(node.attrs.get("axis", 0))
        idx = rules.wrap(idx, data.shape[axis], _what(node))
        pos = list(np.indices(idx.shape, sparse=True))
        pos[axis] = idx
        where = tuple(np.broadcast_arrays(*pos))
    else:
        k = idx.shape[-1]
        where = tuple(rules.wrap(idx[..., j], data.shape[j], _what(node)) for j in range(k))
    fn = _SCATTER_UFUNC.get(node.attrs.get("reduction", "none"))
    if fn is None:
        out[where] = updates
    else:
        fn.at(out, where, updates)
    return [out]
