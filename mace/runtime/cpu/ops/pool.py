"""MaxPool, AveragePool (any number of spatial dims; pads, strides, dilations, ceil_mode,
count_include_pad) and GlobalAveragePool / GlobalMaxPool on the CPU: a vectorized tap loop over
strided views of the padded input, no per-pixel Python."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu.ops.conv import _tap_slices, out_size, pad_input, parallel_chunks
from mace.runtime.cpu.registry import cpu_op

_F32 = np.float32


def _geometry(node, x):
    a = node.attrs
    nsp = x.ndim - 2
    kernel = list(a["kernel_shape"])
    strides = a.get("strides", [1] * nsp)
    dil = a.get("dilations", [1] * nsp)
    pads = list(a.get("pads", [0] * (2 * nsp)))
    ceil = bool(a.get("ceil_mode", 0))
    out_sp = tuple(out_size(x.shape[2 + d], kernel[d], strides[d], dil[d], pads[d], pads[nsp + d], ceil)
                   for d in range(nsp))
    # right padding so that every window of the output lies inside the padded buffer
    ends = [max((out_sp[d] - 1) * strides[d] + (kernel[d] - 1) * dil[d] + 1 - x.shape[2 + d] - pads[d], pads[nsp + d])
            for d in range(nsp)]
    return kernel, strides, dil, pads, ends, out_sp


def _pool_taps(x, node, pad_value, combine, finish=None):
    """Pad once, then fold every window tap into the output with `combine(out, tap, out=out)`
    (channel chunks in parallel); `finish(out_chunk)` runs on each chunk at the end."""
    kernel, strides, dil, pads, ends, out_sp = _geometry(node, x)
    xp = pad_input(x, pads[:len(kernel)], ends, value=pad_value)
    n, c = x.shape[:2]
    out = np.empty((n, c) + out_sp, _F32)
    taps = list(_tap_slices(kernel, strides, dil, out_sp))

    def run(lo, hi):
        o = out[:, lo:hi]
        for k, (_, sl) in enumerate(taps):
            src = xp[(slice(None), slice(lo, hi)) + sl]
            if k == 0:
                o[...] = src
            else:
                combine(o, src, out=o)
        if finish is not None:
            finish(o)

    parallel_chunks(c, run, out.size * len(taps))
    return out


@cpu_op("MaxPool")
def max_pool(node, inputs):
    return [_pool_taps(np.asarray(inputs[0], _F32), node, -np.inf, np.maximum)]


def _counts(in_sp, kernel, strides, dil, pads, ends, out_sp, include_pad):
    """Divisor per output position: window cells inside the input (or inside input+pads)."""
    nsp = len(kernel)
    ones = np.zeros(tuple(in_sp[d] + pads[d] + ends[d] for d in range(nsp)), _F32)
    if include_pad:
        ones[tuple(slice(0, pads[d] + in_sp[d] + pads[nsp + d]) for d in range(nsp))] = 1
    else:
        ones[tuple(slice(pads[d], pads[d] + in_sp[d]) for d in range(nsp))] = 1
    cnt = np.zeros(out_sp, _F32)
    for _, sl in _tap_slices(kernel, strides, dil, out_sp):
        cnt += ones[sl]
    return np.maximum(cnt, 1)


@cpu_op("AveragePool")
def average_pool(node, inputs):
    x = np.asarray(inputs[0], _F32)
    kernel, strides, dil, pads, ends, out_sp = _geometry(node, x)
    inv = (1.0 / _counts(x.shape[2:], kernel, strides, dil, pads, ends, out_sp,
                         node.attrs.get("count_include_pad", 0))).astype(_F32)

    def scale(o):
        o *= inv
    return [_pool_taps(x, node, 0.0, np.add, scale)]


@cpu_op("GlobalAveragePool")
def global_average_pool(node, inputs):
    x = np.asarray(inputs[0], _F32)
    axes = tuple(range(2, x.ndim))
    n, c = x.shape[:2]
    out = x.reshape(n, c, -1).mean(axis=2, dtype=_F32)
    return [out.reshape((n, c) + (1,) * len(axes)).astype(_F32, copy=False)]


@cpu_op("GlobalMaxPool")
def global_max_pool(node, inputs):
    x = np.asarray(inputs[0], _F32)
    n, c = x.shape[:2]
    return [x.reshape(n, c, -1).max(axis=2).reshape((n, c) + (1,) * (x.ndim - 2))]


class _PreparedMaxPool:
    """Batch-1 2-D MaxPool on the flat phase-split layout of conv.py (FlatInput, -inf padding):
    one maximum per tap over (C, OH * Wq) contiguous runs; the last tap writes the cropped result."""

    def __init__(self, node, x_shape):
        from mace.runtime.cpu.ops.conv import FlatInput, _Prepared
        x = np.empty(x_shape, _F32)
        kernel, strides, dil, pads, ends, out_sp = _geometry(node, x)
        n, c, h, w = x_shape
        self.x_shape = tuple(x_shape)
        self.flat = FlatInput(c, h, w, kernel, strides, dil, pads, ends=ends, fill=-np.inf)
        if (self.flat.oh, self.flat.ow) != tuple(out_sp):
            raise ValueError("geometry")
        _Prepared._alloc_out(self, (n, c) + tuple(out_sp))
        self.in_view = self.flat.in_view
        self.acc = np.empty((c, self.flat.L), _F32)

    def set_target(self, view) -> None:
        self.target = view
        self.aug = None

    def _run(self, lo, hi, dest):
        fl = self.flat
        nt = len(fl.taps)
        acc = self.acc[lo:hi]
        if nt == 1:
            np.copyto(dest[:, lo:hi], fl.crop(fl.tap(0, lo, hi)))
            return
        for k in range(1, nt - 1):
            np.maximum(fl.tap(0, lo, hi) if k == 1 else acc, fl.tap(k, lo, hi), out=acc)
        last = fl.crop(fl.tap(nt - 1, lo, hi))
        np.maximum(fl.crop(acc) if nt > 2 else fl.crop(fl.tap(0, lo, hi)), last, out=dest[:, lo:hi])

    def __call__(self, node, inputs):
        x = inputs[0]
        if x.shape != self.x_shape or x.dtype != _F32:
            return max_pool(node, inputs)
        dest = self.out if self.target is None else self.target
        self.flat.load(x)
        parallel_chunks(self.x_shape[1], lambda lo, hi: self._run(lo, hi, dest), self.out.size * 4)
        return [dest]


def _prepare_max_pool(node, weights, graph):
    shape = graph.shape(node.inputs[0])
    if len(shape) != 4 or shape[0] != 1 or len(node.outputs) != 1:
        return None
    if any(p < 0 for p in node.attrs.get("pads", [0] * 4)):
        return None
    try:
        return _PreparedMaxPool(node, shape)
    except ValueError:
        return None


max_pool.prepare = _prepare_max_pool
