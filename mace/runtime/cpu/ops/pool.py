"""MaxPool, AveragePool (any number of spatial dims; pads, strides, dilations, ceil_mode,
count_include_pad) and GlobalAveragePool / GlobalMaxPool on the CPU: a vectorized tap loop over
strided views of the padded input, no per-pixel Python."""
from __future__ import annotations

import numpy as np

from mace.ops.conv import tap_slices
from mace.ops.pool import geometry, window_counts
from mace.runtime.cpu import kernels
from mace.runtime.cpu.helpers import F32, Prepared, pad_input, parallel_chunks, plane
from mace.runtime.cpu.registry import cpu_op


def _pool_taps(x, node, pad_value, combine, finish=None):
    """Pad once, then fold every window tap into the output with `combine(out, tap, out=out)`
    (channel chunks in parallel); `finish(out_chunk)` runs on each chunk at the end."""
    kernel, strides, dil, pads, ends, out_sp = geometry(node.attrs, x.shape)
    xp = pad_input(x, pads[:len(kernel)], ends, value=pad_value)
    n, c = x.shape[:2]
    out = np.empty((n, c) + out_sp, F32)
    taps = list(tap_slices(kernel, strides, dil, out_sp))

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
    return [_pool_taps(np.asarray(inputs[0], F32), node, -np.inf, np.maximum)]


@cpu_op("AveragePool")
def average_pool(node, inputs):
    x = np.asarray(inputs[0], F32)
    kernel, strides, dil, pads, ends, out_sp = geometry(node.attrs, x.shape)
    if (list(kernel) == list(x.shape[2:]) and not any(pads) and not any(ends) and all(d == 1 for d in dil)
            and all(o == 1 for o in out_sp)):
        return global_average_pool(node, [x])   # one window over the whole map (MobileNetV1's head)
    inv = (1.0 / window_counts(x.shape[2:], kernel, strides, dil, pads, ends, out_sp,
                         node.attrs.get("count_include_pad", 0))).astype(F32)

    def scale(o):
        o *= inv
    return [_pool_taps(x, node, 0.0, np.add, scale)]


@cpu_op("GlobalAveragePool")
def global_average_pool(node, inputs):
    x = np.asarray(inputs[0], F32)
    axes = tuple(range(2, x.ndim))
    n, c = x.shape[:2]
    p = int(np.prod(x.shape[2:]))
    # a matrix-vector product with 1/p: NumPy's mean over many short rows costs ~0.1 us a row
    out = np.matmul(np.ascontiguousarray(x).reshape(n * c, p), np.full(p, 1.0 / p, F32)) if p else \
        np.full(n * c, np.nan, F32)
    return [out.reshape((n, c) + (1,) * len(axes)).astype(F32, copy=False)]


@cpu_op("GlobalMaxPool")
def global_max_pool(node, inputs):
    x = np.asarray(inputs[0], F32)
    n, c = x.shape[:2]
    return [x.reshape(n, c, -1).max(axis=2).reshape((n, c) + (1,) * (x.ndim - 2))]


class _PreparedMaxPool(Prepared):
    """Batch-1 2-D MaxPool, separable: a max over the KW taps of each row (stride sw) into a
    (C, Hp, OW) buffer, then over the KH taps of each column (stride sh) into the output:
    KW + KH - 2 passes instead of KH * KW - 1. The -inf padded input buffer is persistent, and
    its interior (`in_view`) is where a producer with no other reader writes directly."""

    def __init__(self, node, x_shape):
        kernel, strides, dil, pads, ends, out_sp = geometry(node.attrs, x_shape)
        n, c, h, w = x_shape
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dil, out_sp
        pt, pl = pads[0], pads[1]
        self.x_shape = tuple(x_shape)
        self.xbuf = np.full((c, h + pt + ends[0], w + pl + ends[1]), -np.inf, F32)
        self.row_taps = [np.s_[:, :, j * dw:j * dw + (ow - 1) * sw + 1:sw] for j in range(kw)]
        self.col_taps = [np.s_[:, i * dh:i * dh + (oh - 1) * sh + 1:sh] for i in range(kh)]
        self.rows = np.empty((c, self.xbuf.shape[1], ow), F32)
        self._alloc_out((n, c, oh, ow))  # (it clears in_view)
        self.in_view = self.xbuf[None, :, pt:pt + h, pl:pl + w]
        self.geom = (oh, ow, kh, kw, sh, sw, dh, dw)
        self.compiled = kernels.available()
        self.xplane = plane(self.xbuf)
        self.inv = np.ones((1, 1), F32)

    def _run(self, lo, hi, dest):
        xb, rows, out = self.xbuf[lo:hi], self.rows[lo:hi], dest[0, lo:hi]
        taps = self.row_taps
        if len(taps) == 1:
            rows = xb[taps[0]]
        else:
            np.maximum(xb[taps[0]], xb[taps[1]], out=rows)
            for t in taps[2:]:
                np.maximum(rows, xb[t], out=rows)
        taps = self.col_taps
        if len(taps) == 1:
            np.copyto(out, rows[taps[0]])
            return
        np.maximum(rows[taps[0]], rows[taps[1]], out=out)
        for t in taps[2:]:
            np.maximum(out, rows[t], out=out)

    def __call__(self, node, inputs):
        x = inputs[0]
        if x.shape != self.x_shape or x.dtype != F32:
            return max_pool(node, inputs)
        dest = self._dest()
        if x is not self.in_view:
            np.copyto(self.in_view, x)
        py = plane(dest) if self.compiled else None
        if py is not None:
            from mace.runtime.cpu.kernels import maxpool_sep, pool
            xp, g, inv = self.xplane, self.geom, self.inv
            if g[6:] == (1, 1):   # no dilation (geom: oh, ow, kh, kw, sh, sw, dh, dw)
                parallel_chunks(self.x_shape[1], lambda lo, hi: maxpool_sep(*xp, *py, *g[:6], lo, hi),
                                self.out.size * (g[2] + g[3]))
                return [dest]
            parallel_chunks(self.x_shape[1], lambda lo, hi: pool(*xp, *py, *g, True, inv, lo, hi),
                            self.out.size * g[2] * g[3])
            return [dest]
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
