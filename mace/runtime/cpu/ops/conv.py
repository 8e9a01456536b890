"""Conv on the CPU (NCHW, any number of spatial dims).

- pointwise (1x1, stride 1, no pads): one batched sgemm, W(M, C) @ X(C, H*W).
- depthwise (one input and one output channel per group): a tap loop, kh*kw vectorized
  multiply-adds over strided views of the padded input, split across 2 threads when large.
- everything else: im2col through a strided view of the padded input + one sgemm per group.
Bias and the fused activation (`activation` attr) are applied in place on the output.
Output sizes and window taps come from `mace.ops.conv`.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from mace.ops.conv import out_size, out_spatial, tap_slices
from mace.runtime.cpu import activation, kernels
from mace.runtime.cpu.helpers import (F32, THREADS, Prepared, act_into, act_params, epilogue_plan, pad_input,
                                     parallel_chunks, plane)
from mace.runtime.cpu.registry import cpu_op


def window_view(xp: np.ndarray, kernel, strides, dilations, out_sp):
    """A (N, C, *kernel, *out) strided view of the padded input xp (N, C, *spatial)."""
    n, c = xp.shape[:2]
    st = xp.strides
    nsp = len(kernel)
    shape = (n, c) + tuple(kernel) + tuple(out_sp)
    strides = st[:2] + tuple(st[2 + d] * dilations[d] for d in range(nsp)) \
        + tuple(st[2 + d] * strides[d] for d in range(nsp))
    return as_strided(xp, shape, strides, writeable=False)


def _depthwise(xp, w, kernel, strides, dilations, out_sp, out):
    """out[n, c] = sum_taps w[c, tap] * xp[n, c, tap-window] (w: (C, *kernel))."""
    n, c = xp.shape[:2]
    taps = list(tap_slices(kernel, strides, dilations, out_sp))
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


def conv2d_nchw(x, w, b, strides, dilations, pads, group, act_node=None, residual=None):
    """Conv over any number of spatial dims; returns float32 (N, M, *out). `residual` (same shape
    as the output) is added after the bias, before the activation."""
    x = np.asarray(x, F32)
    w = np.asarray(w, F32)
    nsp = x.ndim - 2
    kernel = w.shape[2:]
    n, c = x.shape[:2]
    m = w.shape[0]
    cg = c // group
    mg = m // group
    out_sp = out_spatial(x.shape[2:], kernel, strides, dilations, pads)
    p = int(np.prod(out_sp))
    ksz = int(np.prod(kernel))
    if cg == 1 and mg == 1 and group > 1:
        xp = pad_input(x, pads[:nsp], pads[nsp:])
        out = np.empty((n, m) + out_sp, F32)
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
        out += np.asarray(b, F32).reshape((1, m) + (1,) * nsp)
    if residual is not None:
        out += np.asarray(residual, F32).reshape(out.shape)
    if act_node is not None:
        out = activation.apply_node(out, act_node)
    return out


@cpu_op("Conv")
def conv(node, inputs):
    a = node.attrs
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    res = inputs[3] if len(inputs) > 3 and a.get("residual") else None
    nsp = np.ndim(x) - 2
    strides = a.get("strides", [1] * nsp)
    dilations = a.get("dilations", [1] * nsp)
    pads = a.get("pads", [0] * (2 * nsp))
    return [conv2d_nchw(x, w, b, strides, dilations, pads, int(a.get("group", 1)), node, res)]


# -- prepared steps (CpuExecutor): prepacked weights, persistent buffers, no per-run allocation ---
#
# `conv.prepare(node, weights, graph)` returns a step with the kernel's signature, or None where the
# generic kernel above runs (dynamic weights, not 2-D). Buffers live as long as the executor and
# are overwritten by the next run: the executor copies graph outputs before handing them out.
#
# "Flat" input layout (FlatInput): the zero-padded input of a batch-1 layer is split into
# stride_h * stride_w phase planes (one plane for stride 1), each a per-channel buffer of row pitch
# Wq. Output position q = oh * Wq + ow of tap (i, j) reads plane (i*dh % sh, j*dw % sw) at
# q + off(i, j), so the im2col block of one tap is ONE contiguous run of L = OH * Wq elements per
# channel: long inner loops instead of OW-long rows. Results carry Wq - OW garbage columns that the
# final (activation) pass drops.
#
# Bias rides in the GEMM: an im2col buffer has a constant ones row and the weight matrix a bias
# column; a pointwise conv reading a prepared producer's output uses the producer's ones-augmented
# buffer (`aug`: (C + 1, H * W), last row ones) the same way. The only pass left after the sgemm
# is the activation, which writes straight into the consumer's padded buffer when the consumer is
# the only reader (`set_target`).

_FLAT_MAX_WASTE = 1.15  # a dense conv uses the flat layout when Wq / OW stays below this
_ROW_GEMMS = True  # stride-1 dense convs: KH sgemms over a KW x im2col (see _init_rows)
_TOEPLITZ_MAX_OW = 16  # depthwise outputs at most this wide run as a banded sgemm (below)


class FlatInput:
    """The padded, phase-split, flat copy of one (1, C, H, W) input; see above."""

    def __init__(self, c, h, w, kernel, strides, dilations, pads, ends=None, fill=0.0):
        kh, kw = kernel
        sh, sw = strides
        dh, dw = dilations
        pt, pl, pb, pr = pads
        if ends is not None:
            pb, pr = ends
        self.c, self.h, self.w = c, h, w
        self.oh = out_size(h, kh, sh, dh, pt, pb)
        self.ow = out_size(w, kw, sw, dw, pl, pr)
        hp, wp = h + pt + pb, w + pl + pr
        self.hq, self.wq = -(-hp // sh), -(-wp // sw)
        self.L = self.oh * self.wq
        self.taps = []  # (phase a, phase b, offset)
        for i in range(kh):
            for j in range(kw):
                ri, cj = i * dh, j * dw
                self.taps.append((ri % sh, cj % sw, (ri // sh) * self.wq + cj // sw))
        pitch = max(self.hq * self.wq, self.L + max(t[2] for t in self.taps))
        self.planes = np.full((sh, sw, c, pitch), fill, F32)
        self.strides = (sh, sw)
        # where x lands in each plane
        self.loads = []
        for a in range(sh):
            for b in range(sw):
                h0, w0 = (a - pt) % sh, (b - pl) % sw
                nh, nw = len(range(h0, h, sh)), len(range(w0, w, sw))
                if nh and nw:
                    u0, v0 = (h0 + pt) // sh, (w0 + pl) // sw
                    dst = self.planes[a, b, :, :self.hq * self.wq].reshape(c, self.hq, self.wq)
                    self.loads.append((dst[:, u0:u0 + nh, v0:v0 + nw], (slice(None), slice(h0, None, sh),
                                                                       slice(w0, None, sw))))
        # stride 1: the interior of the single plane, a view a producer can write into
        self.in_view = self.loads[0][0][None] if sh == sw == 1 else None
        if sh == sw == 1:
            st = self.planes.strides
            self.all_taps = as_strided(self.planes[0, 0], (c, kh, kw, self.L),
                                       (st[2], st[3] * dh * self.wq, st[3] * dw, st[3]), writeable=False)
        else:
            self.all_taps = None

    def load(self, x):
        """x: (1, C, H, W) or (C, H, W)."""
        if self.in_view is not None and x is self.in_view:
            return  # a producer wrote it in place
        x = x.reshape(self.c, self.h, self.w)
        for dst, sl in self.loads:
            np.copyto(dst, x[sl])

    def tap(self, k, lo=0, hi=None):
        a, b, off = self.taps[k]
        return self.planes[a, b, lo:hi, off:off + self.L]

    def crop(self, acc):
        """(C', L) -> the valid (1, C', OH, OW) view."""
        return acc.reshape(-1, self.oh, self.wq)[None, :, :, :self.ow]


class WindowInput:
    """The padded (1, C, Hp, Wp) copy of one input with a strided (C, KH, KW, OH, OW) window view:
    im2col rows are OW long (used where the flat layout would waste too many GEMM columns)."""

    def __init__(self, c, h, w, kernel, strides, dilations, pads):
        pt, pl, pb, pr = pads
        self.c, self.h, self.w = c, h, w
        self.oh = out_size(h, kernel[0], strides[0], dilations[0], pt, pb)
        self.ow = out_size(w, kernel[1], strides[1], dilations[1], pl, pr)
        self.L = self.oh * self.ow
        self.xbuf = np.zeros((1, c, h + pt + pb, w + pl + pr), F32)
        self.in_view = self.xbuf[:, :, pt:pt + h, pl:pl + w]
        self.all_taps = window_view(self.xbuf, kernel, strides, dilations, (self.oh, self.ow))[0]

    def load(self, x):
        if x is not self.in_view:
            np.copyto(self.in_view, x.reshape(self.in_view.shape))

    def crop(self, acc):
        return acc.reshape(1, -1, self.oh, self.ow)


class _PreparedConv(Prepared):
    _plan = None  # ((dest, residual, bias), the epilogue plan for them)

    def __init__(self, node, x_shape, w, b, strides, dilations, pads, group):
        a = node.attrs
        self.act = a.get("activation")
        self.params = tuple(a.get("activation_params", ()))
        self.residual = bool(a.get("residual")) and len(node.inputs) > 3
        self.x_shape = tuple(x_shape)
        n, c, h, wd = x_shape
        m, cg, kh, kw = w.shape
        sh, sw = strides
        if min(pads) < 0:
            raise ValueError("negative pads")  # the generic kernel crops
        oh = out_size(h, kh, sh, dilations[0], pads[0], pads[2])
        ow = out_size(wd, kw, sw, dilations[1], pads[1], pads[3])
        self._alloc_out((n, m, oh, ow))
        mg = m // group
        ksz = kh * kw
        b = np.zeros(m, F32) if b is None else np.asarray(b, F32)
        self.src = None  # (producer's output view, its aug buffer) for pointwise
        if ksz == 1 and sh == sw == 1 and not any(pads) and group == 1:
            self.mode = "pw"
            self.w2 = np.ascontiguousarray(w.reshape(m, c), F32)
            self.w_aug = np.ascontiguousarray(np.concatenate([self.w2, b[:, None]], axis=1))
            self.bias = np.array(b, F32, copy=True)
            self.acc = np.empty((n, m, oh * ow), F32)
            return
        if n != 1:
            raise ValueError("batch > 1")  # the generic kernel
        depthwise = group > 1 and cg == 1 and mg == 1
        if not depthwise and group != 1:
            raise ValueError("grouped")  # the generic kernel
        if depthwise and not self.residual and _compiled_act(self.act):
            self._init_direct_dw(c, h, wd, w.reshape(c, kh, kw), b, strides, dilations, pads)
            return
        if depthwise and ow <= _TOEPLITZ_MAX_OW and dilations[0] == 1:
            self._init_toeplitz(c, h, wd, w.reshape(c, kh, kw), b, strides, dilations, pads)
            return
        flat = FlatInput(c, h, wd, (kh, kw), strides, dilations, pads)
        if not depthwise and flat.wq > _FLAT_MAX_WASTE * ow:
            flat = WindowInput(c, h, wd, (kh, kw), strides, dilations, pads)
        self.flat = flat
        self.in_view = flat.in_view
        L = flat.L
        if depthwise:
            self.mode = "dw"
            # channel chunks of ~1 MiB of columns (stay in L2 between the copy and the GEMV); one
            # chunk-sized column buffer per parallel_chunks slice, not a whole-layer im2col
            self.chunk = max(1, (1 << 20) // (4 * (ksz + 1) * L))
            k = min(THREADS, c)
            starts = sorted({0} | {c * i // k for i in range(k)})
            self.slots = {}
            for lo in starts:
                buf = np.empty((min(self.chunk, c), ksz + 1, L), F32)
                buf[:, ksz] = 1.0
                cs = buf.strides
                dst = as_strided(buf, (buf.shape[0], kh, kw, L), (cs[0], kw * cs[1], cs[1], cs[2])) \
                    if flat.all_taps is not None else None
                self.slots[lo] = (buf, dst)
            wb = np.empty((c, 1, ksz + 1), F32)
            wb[:, 0, :ksz] = w.reshape(c, ksz)
            wb[:, 0, ksz] = b
            self.wb = wb
            self.acc = np.empty((c, 1, L), F32)
        elif isinstance(flat, FlatInput) and sh == sw == 1 and kh > 1 and _ROW_GEMMS:
            self._init_rows(c, w, b, dilations)
        else:
            self.mode = "gen"
            k = c * ksz
            self.cols = np.empty((k + 1, L), F32)
            self.cols[k] = 1.0
            self.w_aug = np.ascontiguousarray(np.concatenate([w.reshape(m, k), b[:, None]], axis=1), F32)
            self.acc = np.empty((m, L), F32)
        self.ksz = ksz

    def _init_direct_dw(self, c, h, wd, w, b, strides, dilations, pads):
        """Depthwise as the compiled direct kernel (bias and activation in the pass that writes the
        output, into a consumer's padded buffer when there is one) over a zero-padded input."""
        self.mode = "dwk"
        win = WindowInput(c, h, wd, w.shape[1:], strides, dilations, pads)
        self.flat, self.in_view = win, win.in_view
        self.w3, self.bias = np.array(w, F32, copy=True), np.array(b, F32, copy=True)  # writeable: numba's types
        self.xplane = plane(win.xbuf)
        self.geom = (win.oh, win.ow, strides[0], strides[1], dilations[0], dilations[1])

    def _run_direct_dw(self, dest):
        from mace.runtime.cpu.kernels import ACT, depthwise, depthwise3x3, depthwise5x5
        py = plane(dest)
        if py is None:
            dest = self.out
            py = plane(dest)
        p0, p1 = act_params(self.params)
        code, xp, w, b, g = ACT[self.act], self.xplane, self.w3, self.bias, self.geom
        if w.shape[1:] in ((3, 3), (5, 5)) and g[4:] == (1, 1) and g[3] in (1, 2):
            k = depthwise3x3 if w.shape[1] == 3 else depthwise5x5
            fn = lambda lo, hi: k(*xp, w, b, *py, *g[:4], code, p0, p1, lo, hi)  # noqa: E731
        else:
            fn = lambda lo, hi: depthwise(*xp, w, b, *py, *g, code, p0, p1, lo, hi)  # noqa: E731
        parallel_chunks(self.x_shape[1], fn, self.out.size * w.shape[1] * w.shape[2])
        if dest is not self._dest():
            np.copyto(self._dest(), dest)
        return [self._dest()]

    def _init_toeplitz(self, c, h, wd, w, b, strides, dilations, pads):
        """Depthwise on small maps as one batched sgemm per layer: out[c] (OH, OW) =
        Xc[c] (OH, KH * Wp + 1) @ T[c] (KH * Wp + 1, OW), where row oh of Xc is the KH padded input
        rows under output row oh (contiguous in the padded buffer, copied once: KH x the input)
        plus a ones column, and T[c] the banded (Toeplitz) matrix of the channel's taps plus the
        bias row. More flops than direct, but BLAS-speed instead of ~20 memory-bound passes."""
        self.mode = "dwt"
        kh, kw = w.shape[1:]
        sh, sw = strides
        dw = dilations[1]
        win = WindowInput(c, h, wd, (kh, kw), strides, dilations, pads)
        self.flat = win
        self.in_view = win.in_view
        oh, ow = win.oh, win.ow
        wp = win.xbuf.shape[3]
        kk = kh * wp
        st = win.xbuf.strides
        self.rows_view = as_strided(win.xbuf, (c, oh, kk), (st[1], sh * st[2], st[3]), writeable=False)
        self.xc = np.empty((c, oh, kk + 1), F32)
        self.xc[:, :, kk] = 1.0
        t = np.zeros((c, kk + 1, ow), F32)
        cols = np.arange(ow)
        for i in range(kh):
            for j in range(kw):
                t[:, i * wp + sw * cols + j * dw, cols] = w[:, i, j][:, None]
        t[:, kk, :] = b[:, None]
        self.T = t
        self.acc = np.empty((c, oh, ow), F32)

    def _init_rows(self, c, w, b, dilations):
        """Stride-1 dense conv as KH accumulated sgemms over a KW x (not KH*KW x) im2col:
        cols3[(j, ch), q'] = x_flat[ch, j*dw + q'] for q' < L + (KH-1)*dh*Wq, then tap row i is
        the BLAS-legal strided submatrix cols3[:, i*dh*Wq : i*dh*Wq + L] and
        out = sum_i W_i (M, KW*C + 1) @ that (the last row of cols3 is ones: bias in W_0)."""
        self.mode = "rows"
        fl = self.flat
        m, _, kh, kw = w.shape
        dh, dw = dilations
        step = dh * fl.wq
        lr = fl.L + (kh - 1) * step
        self.cols = np.empty((kw * c + 1, lr), F32)
        self.cols[-1] = 1.0
        st = fl.planes.strides
        self.rows_src = as_strided(fl.planes[0, 0], (kw, c, lr), (dw * st[3], st[2], st[3]), writeable=False)
        self.rows_dst = self.cols[:-1].reshape(kw, c, lr)
        self.w_rows = []
        for i in range(kh):
            wi = np.zeros((m, kw * c + 1), F32)
            wi[:, :-1] = w[:, :, i, :].transpose(0, 2, 1).reshape(m, kw * c)
            if i == 0:
                wi[:, -1] = b
            self.w_rows.append((wi, self.cols[:, i * step:i * step + fl.L]))
        self.acc = np.empty((m, fl.L), F32)
        self.tmp = np.empty((m, fl.L), F32)

    def use_aug_input(self, view, aug) -> bool:
        if self.mode != "pw" or aug.shape != (self.x_shape[1] + 1, int(np.prod(self.x_shape[2:]))):
            return False
        self.src = (view, aug)
        return True

    def _dw_chunk(self, lo, hi):
        fl = self.flat
        buf, dst = self.slots[lo]
        for s in range(lo, hi, self.chunk):
            e = min(hi, s + self.chunk)
            cols = buf[:e - s]
            if dst is not None:
                np.copyto(dst[:e - s], fl.all_taps[s:e])
            else:
                for k in range(self.ksz):
                    np.copyto(cols[:, k], fl.tap(k, s, e))
            np.matmul(self.wb[s:e], cols, out=self.acc[s:e])

    def __call__(self, node, inputs):
        x = inputs[0]
        if x.shape != self.x_shape or x.dtype != F32:
            return conv(node, inputs)
        res = inputs[3] if self.residual else None
        if res is not None and (res.shape != self.out_shape or res.dtype != F32):
            return conv(node, inputs)
        dest = self._dest()
        if self.mode == "pw":
            n, c = self.x_shape[:2]
            if self.src is not None and x is self.src[0]:
                w, xs, bias = self.w_aug, self.src[1], None
            else:
                w, xs, bias = self.w2, (x.reshape(c, -1) if n == 1 else x.reshape(n, c, -1)), self.bias
            acc = self.acc
            gemm = (lambda lo, hi: np.matmul(w[lo:hi], xs, out=acc[0, lo:hi])) if n == 1 and xs.ndim == 2 \
                else (lambda lo, hi: np.matmul(w, xs, out=acc))
            return [self._gemm_epilogue(gemm, acc.reshape(self.out_shape), dest, res, bias, xs.shape[-2])]
        fl = self.flat
        fl.load(x)
        if self.mode == "dwk":
            return self._run_direct_dw(dest)
        if self.mode == "dwt":
            np.copyto(self.xc[:, :, :-1], self.rows_view)
            np.matmul(self.xc, self.T, out=self.acc)
            return [act_into(self.acc[None], self.act, self.params, dest, res)]
        if self.mode == "rows":
            np.copyto(self.rows_dst, self.rows_src)
            return [self._gemm_epilogue(self._rows_gemm, fl.crop(self.acc), dest, res, None, self.cols.shape[0] * len(self.w_rows))]
        if self.mode == "dw":
            parallel_chunks(self.x_shape[1], self._dw_chunk, self.out.size * (self.ksz + 2))
            return [act_into(fl.crop(self.acc.reshape(-1, fl.L)), self.act, self.params, dest, res)]
        if fl.all_taps is not None:
            np.copyto(self.cols[:-1].reshape(fl.all_taps.shape), fl.all_taps)
        else:
            cv = self.cols[:-1].reshape(self.x_shape[1], self.ksz, fl.L)
            for k in range(self.ksz):
                np.copyto(cv[:, k], fl.tap(k))
        w, cols, acc = self.w_aug, self.cols, self.acc
        return [self._gemm_epilogue(lambda lo, hi: np.matmul(w[lo:hi], cols, out=acc[lo:hi]), fl.crop(acc), dest,
                                    res, None, cols.shape[0])]

    def _rows_gemm(self, lo, hi):
        acc, tmp = self.acc[lo:hi], self.tmp[lo:hi]
        for i, (wi, src) in enumerate(self.w_rows):
            np.matmul(wi[lo:hi], src, out=acc if i == 0 else tmp)
            if i:
                np.add(acc, tmp, out=acc)

    def _gemm_epilogue(self, gemm, acc, dest, res, bias, k):
        """gemm(lo, hi) computes output channels [lo, hi) into acc; with the compiled epilogue each
        thread runs its channels' GEMM rows and then their epilogue (while they are in cache)."""
        key = (dest, res, bias)   # plane views and parameters, worked out once per operand set
        if self._plan is None or any(a is not b for a, b in zip(self._plan[0], key)):
            self._plan = (key, epilogue_plan(acc, self.act, self.params, dest, res, bias))
        plan = self._plan[1]
        m = self.out_shape[1]
        if plan is None:
            gemm(0, m)
            return act_into(acc, self.act, self.params, dest, res, bias)

        def task(lo, hi):
            gemm(lo, hi)
            plan(lo, hi)
        parallel_chunks(m, task, m * k * acc.shape[-1] * acc.shape[-2] // 64)
        return dest


def _compiled_act(act) -> bool:
    from mace.runtime.cpu.kernels import ACT
    return act in ACT and kernels.available()


def _prepare_conv(node, weights, graph):
    ins = node.inputs
    if len(ins) < 2 or ins[1] not in weights or (len(ins) > 2 and ins[2] and ins[2] not in weights):
        return None
    x_shape = graph.shape(ins[0])
    w = np.asarray(weights[ins[1]])
    if len(x_shape) != 4 or w.ndim != 4 or w.dtype != F32:
        return None
    b = np.asarray(weights[ins[2]], F32) if len(ins) > 2 and ins[2] else None
    a = node.attrs
    try:
        return _PreparedConv(node, x_shape, w, b, list(a.get("strides", [1, 1])),
                             list(a.get("dilations", [1, 1])), list(a.get("pads", [0] * 4)),
                             int(a.get("group", 1)))
    except ValueError:
        return None


conv.prepare = _prepare_conv
