"""Conv and ConvTranspose on the CPU (NCHW, any number of spatial dims for Conv; 1-D/2-D/3-D
ConvTranspose through the same col2im machinery).

- pointwise (1x1, stride 1, no pads): one batched sgemm, W(M, C) @ X(C, H*W).
- depthwise (one input and one output channel per group): a tap loop, kh*kw vectorized
  multiply-adds over strided views of the padded input, split across 2 threads when large.
- everything else: im2col through a strided view of the padded input + one sgemm per group.
Bias and the fused activation (`activation` attr) are applied in place on the output.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from mace.runtime.cpu import activation
from mace.runtime.cpu.registry import cpu_op

_F32 = np.float32
_THREADS = max(1, min(os.cpu_count() or 1, 4))
_POOL: ThreadPoolExecutor | None = None
_PAR_MIN = 1 << 17  # elements of output below which threading is not worth it


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_THREADS, thread_name_prefix="mace-cpu")
    return _POOL


def parallel_chunks(n: int, fn, work: int) -> None:
    """Run fn(lo, hi) over [0, n) in up to _THREADS chunks (NumPy releases the GIL)."""
    k = min(_THREADS, n) if work >= _PAR_MIN else 1
    if k <= 1:
        fn(0, n)
        return
    bounds = [n * i // k for i in range(k + 1)]
    futs = [_pool().submit(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    fn(bounds[0], bounds[1])
    for f in futs:
        f.result()


def pad_input(x: np.ndarray, begins, ends, value=0.0) -> np.ndarray:
    """x padded on its spatial dims (2..); negative pads crop."""
    nsp = x.ndim - 2
    if not any(begins) and not any(ends):
        return x
    crop = tuple(slice(None) for _ in range(2)) + tuple(
        slice(max(-b, 0), x.shape[2 + d] - max(-e, 0)) for d, (b, e) in enumerate(zip(begins, ends)))
    x = x[crop]
    widths = [(0, 0), (0, 0)] + [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)]
    if not any(w for pair in widths for w in pair):
        return x
    assert len(widths) == nsp + 2
    return np.pad(x, widths, mode="constant", constant_values=value)


def out_size(n, k, s, d, pb, pe, ceil_mode=False):
    eff = (k - 1) * d + 1
    num = n + pb + pe - eff
    if ceil_mode:
        o = -(-num // s) + 1
        if (o - 1) * s >= n + pb:  # the last window must start inside the input or left padding
            o -= 1
        return o
    return num // s + 1


def window_view(xp: np.ndarray, kernel, strides, dilations, out_sp):
    """A (N, C, *kernel, *out) strided view of the padded input xp (N, C, *spatial)."""
    n, c = xp.shape[:2]
    st = xp.strides
    nsp = len(kernel)
    shape = (n, c) + tuple(kernel) + tuple(out_sp)
    strides = st[:2] + tuple(st[2 + d] * dilations[d] for d in range(nsp)) \
        + tuple(st[2 + d] * strides[d] for d in range(nsp))
    return as_strided(xp, shape, strides, writeable=False)


def _tap_slices(kernel, strides, dilations, out_sp):
    """For each kernel tap: (tap index tuple, spatial slices into the padded input)."""
    import itertools
    for tap in itertools.product(*[range(k) for k in kernel]):
        sl = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, s, o in zip(tap, dilations, strides, out_sp))
        yield tap, sl


def _depthwise(xp, w, kernel, strides, dilations, out_sp, out):
    """out[n, c] = sum_taps w[c, tap] * xp[n, c, tap-window] (w: (C, *kernel))."""
    n, c = xp.shape[:2]
    taps = list(_tap_slices(kernel, strides, dilations, out_sp))
    bshape = (1, -1) + (1,) * len(kernel)

    def run(lo, hi):
        o = out[:, lo:hi]
        tmp = np.empty_like(o)
        for k, (tap, sl) in enumerate(taps):
            src = xp[(slice(None), slice(lo, hi)) + sl]
            wk = w[(slice(lo, hi),) + tap].reshape(bshape)
            if k == 0:
                np.multiply(src, wk, out=o)
            else:
                np.multiply(src, wk, out=tmp)
                o += tmp

    parallel_chunks(c, run, out.size * len(taps))


def conv2d_nchw(x, w, b, strides, dilations, pads, group, act_node=None):
    """Conv over any number of spatial dims; returns float32 (N, M, *out)."""
    x = np.asarray(x, _F32)
    w = np.asarray(w, _F32)
    nsp = x.ndim - 2
    kernel = w.shape[2:]
    n, c = x.shape[:2]
    m = w.shape[0]
    cg = c // group
    mg = m // group
    out_sp = tuple(out_size(x.shape[2 + d], kernel[d], strides[d], dilations[d], pads[d], pads[nsp + d])
                   for d in range(nsp))
    p = int(np.prod(out_sp))
    ksz = int(np.prod(kernel))
    if cg == 1 and mg == 1 and group > 1:
        xp = pad_input(x, pads[:nsp], pads[nsp:])
        out = np.empty((n, m) + out_sp, _F32)
        _depthwise(xp, w.reshape((m,) + tuple(kernel)), kernel, strides, dilations, out_sp, out)
    elif ksz == 1 and all(s == 1 for s in strides) and not any(pads):
        xr = x.reshape(n, group, cg, p)
        out = np.matmul(w.reshape(group, mg, cg), xr).reshape((n, m) + out_sp)
    else:
        xp = pad_input(x, pads[:nsp], pads[nsp:])
        if ksz == 1:
            sl = (slice(None), slice(None)) + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out_sp, strides))
            cols = np.ascontiguousarray(xp[sl]).reshape(n, group, cg, p)
        else:
            view = window_view(xp, kernel, strides, dilations, out_sp)
            cols = np.ascontiguousarray(view).reshape(n, group, cg * ksz, p)
        out = np.matmul(w.reshape(group, mg, cg * ksz), cols).reshape((n, m) + out_sp)
    if b is not None:
        out += np.asarray(b, _F32).reshape((1, m) + (1,) * nsp)
    if act_node is not None:
        out = activation.apply_node(out, act_node)
    return out


@cpu_op("Conv")
def conv(node, inputs):
    a = node.attrs
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    nsp = np.ndim(x) - 2
    strides = a.get("strides", [1] * nsp)
    dilations = a.get("dilations", [1] * nsp)
    pads = a.get("pads", [0] * (2 * nsp))
    return [conv2d_nchw(x, w, b, strides, dilations, pads, int(a.get("group", 1)), node)]


@cpu_op("ConvTranspose")
def conv_transpose(node, inputs):
    """col = W^T @ X per group (sgemm), then col2im: kh*kw strided scatter-adds into the output."""
    a = node.attrs
    x = np.asarray(inputs[0], _F32)
    w = np.asarray(inputs[1], _F32)  # (C, M/group, *k)
    b = inputs[2] if len(inputs) > 2 else None
    nsp = x.ndim - 2
    kernel = w.shape[2:]
    strides = a.get("strides", [1] * nsp)
    dilations = a.get("dilations", [1] * nsp)
    pads = a.get("pads", [0] * (2 * nsp))
    opad = a.get("output_padding", [0] * nsp)
    group = int(a.get("group", 1))
    n, c = x.shape[:2]
    cg = c // group
    mg = w.shape[1]
    m = mg * group
    in_sp = x.shape[2:]
    full_sp = tuple(strides[d] * (in_sp[d] - 1) + (kernel[d] - 1) * dilations[d] + 1 + opad[d] for d in range(nsp))
    out_sp = tuple(full_sp[d] - pads[d] - pads[nsp + d] for d in range(nsp))
    ksz = int(np.prod(kernel))
    pin = int(np.prod(in_sp))
    # (group, mg*ksz, cg) @ (n, group, cg, pin) -> (n, group, mg*ksz, pin)
    wt = w.reshape(group, cg, mg * ksz).transpose(0, 2, 1)
    col = np.matmul(wt, x.reshape(n, group, cg, pin)).reshape((n, m) + tuple(kernel) + tuple(in_sp))
    # accumulate into a buffer big enough for every tap, then crop pads
    big_sp = tuple(max(full_sp[d], pads[d] + out_sp[d]) for d in range(nsp))
    acc = np.zeros((n, m) + big_sp, _F32)
    for tap, sl in _tap_slices(kernel, strides, dilations, in_sp):
        acc[(slice(None), slice(None)) + sl] += col[(slice(None), slice(None)) + tap]
    crop = (slice(None), slice(None)) + tuple(slice(pads[d], pads[d] + out_sp[d]) for d in range(nsp))
    out = np.ascontiguousarray(acc[crop])
    if b is not None:
        out += np.asarray(b, _F32).reshape((1, m) + (1,) * nsp)
    return [activation.apply_node(out, node)]


