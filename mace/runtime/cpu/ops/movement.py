"""Data movement: Transpose, Slice, Pad, Concat, Split, Expand (normalized attributes, see
normalize.py), of any element type (integer and bool values keep their type).

Outputs are fresh contiguous arrays (never views of an input)."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import ANY
from mace.ops.movement import PAD_MODES
from mace.runtime.cpu.registry import cpu_op


def _arr(x) -> np.ndarray:
    """The input as an array: floats as float32, integer tensors (shape math) keep their type."""
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype.kind == "f" and x.dtype != np.float32 else x


@cpu_op("Transpose", types=ANY)
def transpose(node, inputs):
    x = _arr(inputs[0])
    return [np.ascontiguousarray(np.transpose(x, node.attrs["perm"]))]


def slice_index(starts, steps, out_shape) -> tuple:
    idx = []
    for s, st, n in zip(starts, steps, out_shape):
        end = s + st * n
        idx.append(slice(s, None if end < 0 else end, st))
    return tuple(idx)


@cpu_op("Slice", types=ANY)
def slice_(node, inputs):
    x = _arr(inputs[0])
    a = node.attrs
    if "shape" not in a:
        raise ValueError(f"node {node.name}: Slice needs its static output `shape` attribute (re-convert the model)")
    return [np.ascontiguousarray(x[slice_index(a["starts"], a["steps"], a["shape"])])]


@cpu_op("Pad", types=ANY)
def pad(node, inputs):
    x = _arr(inputs[0])
    a = node.attrs
    rank = x.ndim
    pads = [int(p) for p in a["pads"]]
    begins, ends = pads[:rank], pads[rank:]
    mode = a.get("mode", "constant")
    if mode not in PAD_MODES:
        raise ValueError(f"node {node.name}: Pad mode {mode!r} is not supported")
    if any(p < 0 for p in pads):  # negative pads crop
        x = x[tuple(slice(max(-b, 0), x.shape[d] - max(-e, 0)) for d, (b, e) in enumerate(zip(begins, ends)))]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)]
    if mode == "constant":
        out = np.pad(x, width, mode="constant", constant_values=np.asarray(a.get("value", 0.0), x.dtype))
    else:
        out = np.pad(x, width, mode=mode)
    return [np.ascontiguousarray(out)]


@cpu_op("Concat", types=ANY)
def concat(node, inputs):
    arrs = [_arr(x) for x in inputs if x is not None]
    return [np.concatenate(arrs, axis=int(node.attrs["axis"]))]


@cpu_op("Split", types=ANY)
def split(node, inputs):
    x = _arr(inputs[0])
    axis = int(node.attrs["axis"])
    cuts = np.cumsum(node.attrs["split"])[:-1]
    return [np.ascontiguousarray(p) for p in np.split(x, cuts, axis=axis)]


@cpu_op("Expand", types=ANY)
def expand(node, inputs):
    """Broadcast to the static output `shape` (the shape input is folded into it)."""
    x = _arr(inputs[0])
    return [np.array(np.broadcast_to(x, node.attrs["shape"]), dtype=x.dtype)]


@cpu_op("DepthToSpace", "SpaceToDepth", types=ANY)
def depth_space(node, inputs):
    """NCHW blocks of `blocksize` moved between channels and space, in DCR or CRD channel order."""
    x = _arr(inputs[0])
    b = int(node.attrs["blocksize"])
    n, c, h, w = x.shape
    if node.op_type == "SpaceToDepth":
        y = x.reshape(n, c, h // b, b, w // b, b)
        y = y.transpose(0, 3, 5, 1, 2, 4) if node.attrs.get("mode", "DCR") == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
        return [np.ascontiguousarray(y).reshape(n, c * b * b, h // b, w // b)]
    if node.attrs.get("mode", "DCR") == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [np.ascontiguousarray(y).reshape(n, c // (b * b), h * b, w * b)]
