"""The compiled (numba) kernels of the CPU runtime: the passes BLAS does not cover.

Every operand is a "plane view": a flat float32 buffer plus (offset, channel stride, row stride)
in elements, element (c, h, w) at buf[off + c * cs + h * rs + w]. So a kernel writes straight into
the interior of a consumer's padded buffer and reads a cropped GEMM result, with C-contiguous
arrays only (numba vectorizes those; the same loops over strided array views run ~6x slower).
Each kernel takes a channel range [c0, c1): the executor's threads split the channels, and every
kernel runs without the GIL (`nogil`), which is also what lets client threads run at once.
Activation codes are `ACT` (the fused `activation` attribute); the math matches `activation.py`.
"""
from __future__ import annotations

import math

import numpy as np

from mace.runtime.cpu import jit
from mace.runtime.cpu.jit import kernel

ACT = {None: 0, "": 0, "Relu": 1, "Clip": 2, "LeakyRelu": 3, "Sigmoid": 4, "Tanh": 5, "HardSigmoid": 6,
       "HardSwish": 7}
_F = np.float32
_VEC_MIN = 32  # runs shorter than this are indexed, not sliced (see _epi)

_PLANE = "float32[::1], int64, int64, int64"
_EPILOGUE_SIG = (f"void({_PLANE}, float32[::1], boolean, {_PLANE}, {_PLANE}, "
                 "int64, int64, int64, float32, float32, int64, int64)")


@kernel(None)
def act_row(y, start, n, act, p0, p1):
    """y[start:start + n] = act(y[...]) in place; one loop per activation (vectorizable)."""
    v = y[start:start + n]
    if act == 1:
        for i in range(n):
            v[i] = max(v[i], _F(0))
    elif act == 2:
        for i in range(n):
            v[i] = min(max(v[i], p0), p1)
    elif act == 3:
        for i in range(n):
            t = v[i]
            v[i] = t if t >= 0 else t * p0
    elif act == 4:
        for i in range(n):
            v[i] = _F(1) / (_F(1) + math.exp(-v[i]))
    elif act == 5:
        for i in range(n):
            v[i] = math.tanh(v[i])
    elif act == 6:
        for i in range(n):
            v[i] = min(max(v[i] * p0 + p1, _F(0)), _F(1))
    elif act == 7:
        for i in range(n):
            t = v[i]
            v[i] = t * min(max(t / _F(6) + _F(0.5), _F(0)), _F(1))


@kernel(_EPILOGUE_SIG)
def epilogue(a, ao, acs, ars, bias, has_res, r, ro, rcs, rrs, y, yo, ycs, yrs, oh, ow, act, p0, p1, c0, c1):
    """y[c, h, w] = act(a[c, h, w] + bias[c] (+ r[c, h, w])): the one pass after a GEMM (bias,
    residual, activation, the crop of padded GEMM columns, the write into a consumer's buffer)."""
    if has_res:
        _epi(a, ao, acs, ars, bias, True, r, ro, rcs, rrs, y, yo, ycs, yrs, oh, ow, act, p0, p1, c0, c1)
    else:
        _epi(a, ao, acs, ars, bias, False, r, ro, rcs, rrs, y, yo, ycs, yrs, oh, ow, act, p0, p1, c0, c1)


@kernel(None)
def _epi(a, ao, acs, ars, bias, has_res, r, ro, rcs, rrs, y, yo, ycs, yrs, oh, ow, act, p0, p1, c0, c1):
    # none / Relu / Clip (the common ones) in the one loop that writes the row; others after it.
    # Rows stored back to back make one run per channel; runs shorter than _VEC_MIN are indexed
    # directly (a slice is an array view whose reference counting cost ~30 ns a row: 14x14 and
    # 7x7 maps spent 4x the GEMM's time here)
    lo, hi = (p0, p1) if act == 2 else (_F(0), _F(np.inf))
    clamp = act == 1 or act == 2
    nr, n = oh, ow
    if ars == ow and yrs == ow and (rrs == ow or not has_res):
        nr, n = 1, oh * ow
    for c in range(c0, c1):
        bc = bias[c]
        for h in range(nr):
            ai = ao + c * acs + h * ars
            yi = yo + c * ycs + h * yrs
            ri = ro + c * rcs + h * rrs
            if n < _VEC_MIN:
                for w in range(n):
                    v = a[ai + w] + bc
                    if has_res:
                        v += r[ri + w]
                    y[yi + w] = min(max(v, lo), hi) if clamp else v
            else:
                arow, yrow = a[ai:ai + n], y[yi:yi + n]   # slices: range indexes vectorize, offsets do not
                if has_res:
                    rrow = r[ri:ri + n]
                    if clamp:
                        for w in range(n):
                            yrow[w] = min(max(arow[w] + bc + rrow[w], lo), hi)
                    else:
                        for w in range(n):
                            yrow[w] = arow[w] + bc + rrow[w]
                elif clamp:
                    for w in range(n):
                        yrow[w] = min(max(arow[w] + bc, lo), hi)
                else:
                    for w in range(n):
                        yrow[w] = arow[w] + bc
            if act > 2:
                act_row(y, yi, n, act, p0, p1)


@kernel(f"void({_PLANE}, float32[:, :, ::1], float32[::1], {_PLANE}, "
        "int64, int64, int64, int64, int64, int64, int64, float32, float32, int64, int64)")
def depthwise(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, sw, dh, dw, act, p0, p1, c0, c1):
    """Depthwise conv + bias + activation from a zero-padded input plane, one output row at a time
    (the row stays in L1 between the taps and the activation). 3x3 taps are one expression per
    output (no accumulator traffic); stride-2 rows are split into even/odd columns first, so every
    tap reads contiguous memory."""
    if sw == 1:   # (a stride test inside the loops halves their speed)
        _dw_any(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, 1, dh, dw, act, p0, p1, c0, c1)
    else:
        _dw_any(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, sw, dh, dw, act, p0, p1, c0, c1)


@kernel(None)
def _dw_any(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, sw, dh, dw, act, p0, p1, c0, c1):
    kh, kw = w.shape[1], w.shape[2]
    for c in range(c0, c1):
        bc = bias[c]
        for h in range(oh):
            yi = yo + c * ycs + h * yrs
            yrow = y[yi:yi + ow]
            for i in range(ow):
                yrow[i] = bc
            for i in range(kh):
                xi = xo + c * xcs + (h * sh + i * dh) * xrs
                for j in range(kw):
                    wv = w[c, i, j]
                    xrow = x[xi + j * dw:xi + j * dw + (ow - 1) * sw + 1]
                    for q in range(ow):
                        yrow[q] += wv * xrow[q * sw]
            if act:
                act_row(y, yi, ow, act, p0, p1)


@kernel(f"void({_PLANE}, float32[:, :, ::1], float32[::1], {_PLANE}, "
        "int64, int64, int64, int64, int64, float32, float32, int64, int64)")
def depthwise3x3(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, sw, act, p0, p1, c0, c1):
    """`depthwise` for 3x3 taps, stride 1 or 2, no dilation: one expression per output. (The
    stride test sits outside the loops: inside, it halves the speed.)"""
    if sw == 1:
        _dw3_s1(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, act, p0, p1, c0, c1)
    else:
        _dw3_s2(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, act, p0, p1, c0, c1)


@kernel(None)
def _dw3_s1(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, act, p0, p1, c0, c1):
    n = ow + 2
    for c in range(c0, c1):
        w00, w01, w02 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
        w10, w11, w12 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
        w20, w21, w22 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
        bc = bias[c]
        for h in range(oh):
            xi = xo + c * xcs + h * sh * xrs
            yi = yo + c * ycs + h * yrs
            r0, r1, r2 = x[xi:xi + n], x[xi + xrs:xi + xrs + n], x[xi + 2 * xrs:xi + 2 * xrs + n]
            o = y[yi:yi + ow]
            for q in range(ow):
                o[q] = (bc + w00 * r0[q] + w01 * r0[q + 1] + w02 * r0[q + 2]
                        + w10 * r1[q] + w11 * r1[q + 1] + w12 * r1[q + 2]
                        + w20 * r2[q] + w21 * r2[q + 1] + w22 * r2[q + 2])
            if act:
                act_row(y, yi, ow, act, p0, p1)


@kernel(None)
def _dw3_s2(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, act, p0, p1, c0, c1):
    n = 2 * ow + 1
    e0, e1, e2 = np.empty(ow + 1, _F), np.empty(ow + 1, _F), np.empty(ow + 1, _F)
    d0, d1, d2 = np.empty(ow, _F), np.empty(ow, _F), np.empty(ow, _F)
    for c in range(c0, c1):
        w00, w01, w02 = w[c, 0, 0], w[c, 0, 1], w[c, 0, 2]
        w10, w11, w12 = w[c, 1, 0], w[c, 1, 1], w[c, 1, 2]
        w20, w21, w22 = w[c, 2, 0], w[c, 2, 1], w[c, 2, 2]
        bc = bias[c]
        for h in range(oh):
            xi = xo + c * xcs + h * sh * xrs
            yi = yo + c * ycs + h * yrs
            r0, r1, r2 = x[xi:xi + n], x[xi + xrs:xi + xrs + n], x[xi + 2 * xrs:xi + 2 * xrs + n]
            o = y[yi:yi + ow]
            for q in range(ow):   # even / odd columns: every tap below reads contiguously
                e0[q], d0[q] = r0[2 * q], r0[2 * q + 1]
                e1[q], d1[q] = r1[2 * q], r1[2 * q + 1]
                e2[q], d2[q] = r2[2 * q], r2[2 * q + 1]
            e0[ow], e1[ow], e2[ow] = r0[2 * ow], r1[2 * ow], r2[2 * ow]
            for q in range(ow):
                o[q] = (bc + w00 * e0[q] + w01 * d0[q] + w02 * e0[q + 1]
                        + w10 * e1[q] + w11 * d1[q] + w12 * e1[q + 1]
                        + w20 * e2[q] + w21 * d2[q] + w22 * e2[q + 1])
            if act:
                act_row(y, yi, ow, act, p0, p1)


@kernel(f"void({_PLANE}, float32[:, :, ::1], float32[::1], {_PLANE}, "
        "int64, int64, int64, int64, int64, float32, float32, int64, int64)")
def depthwise5x5(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, sw, act, p0, p1, c0, c1):
    """`depthwise` for 5x5 taps, stride 1 or 2, no dilation: a 5-term expression per tap row."""
    if sw == 1:
        _dw5(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, 1, act, p0, p1, c0, c1)
    else:
        _dw5(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, 2, act, p0, p1, c0, c1)


@kernel(None)
def _dw5(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, sw, act, p0, p1, c0, c1):
    n = (ow - 1) * sw + 5
    e, d = np.empty(ow + 2, _F), np.empty(ow + 2, _F)
    for c in range(c0, c1):
        bc = bias[c]
        for h in range(oh):
            yi = yo + c * ycs + h * yrs
            o = y[yi:yi + ow]
            for q in range(ow):
                o[q] = bc
            for i in range(5):
                xi = xo + c * xcs + (h * sh + i) * xrs
                r = x[xi:xi + n]
                u0, u1, u2, u3, u4 = w[c, i, 0], w[c, i, 1], w[c, i, 2], w[c, i, 3], w[c, i, 4]
                if sw == 1:
                    for q in range(ow):
                        o[q] += u0 * r[q] + u1 * r[q + 1] + u2 * r[q + 2] + u3 * r[q + 3] + u4 * r[q + 4]
                else:
                    for q in range(ow + 1):   # even / odd columns
                        e[q], d[q] = r[2 * q], r[2 * q + 1]
                    e[ow + 1] = r[2 * ow + 2]
                    for q in range(ow):
                        o[q] += u0 * e[q] + u1 * d[q] + u2 * e[q + 1] + u3 * d[q + 1] + u4 * e[q + 2]
            if act:
                act_row(y, yi, ow, act, p0, p1)


@kernel(f"void({_PLANE}, {_PLANE}, int64, int64, int64, int64, int64, int64, int64, int64, "
        "boolean, float32[:, ::1], int64, int64)")
def pool(x, xo, xcs, xrs, y, yo, ycs, yrs, oh, ow, kh, kw, sh, sw, dh, dw, is_max, inv, c0, c1):
    """Max (is_max) or average pooling of a padded plane (-inf / 0 padding); the average is scaled
    by `inv` (OH, OW): 1 / the window's counted elements."""
    for c in range(c0, c1):
        for h in range(oh):
            yi = yo + c * ycs + h * yrs
            o = y[yi:yi + ow]
            for i in range(kh):
                xi = xo + c * xcs + (h * sh + i * dh) * xrs
                for j in range(kw):
                    xr = x[xi + j * dw:xi + j * dw + (ow - 1) * sw + 1]
                    if i == 0 and j == 0:
                        for q in range(ow):
                            o[q] = xr[q * sw]
                    elif is_max:
                        for q in range(ow):
                            o[q] = max(o[q], xr[q * sw])
                    else:
                        for q in range(ow):
                            o[q] += xr[q * sw]
            if not is_max:
                for q in range(ow):
                    o[q] *= inv[h, q]


@kernel(f"void({_PLANE}, {_PLANE}, int64, int64, int64, int64, int64, int64, int64, int64)")
def maxpool_sep(x, xo, xcs, xrs, y, yo, ycs, yrs, oh, ow, kh, kw, sh, sw, c0, c1):
    """Max pooling (no dilation) of a -inf padded plane, separable per output row: the max over
    its KH input rows first (contiguous, vectorized), then over the KW taps of that one row while
    it is in L1; 3.6x faster than `pool`'s strided taps on SqueezeNet's 3x3 stride-2 pools."""
    if sw == 1:
        _maxpool_sep(x, xo, xcs, xrs, y, yo, ycs, yrs, oh, ow, kh, kw, sh, 1, c0, c1)
    else:
        _maxpool_sep(x, xo, xcs, xrs, y, yo, ycs, yrs, oh, ow, kh, kw, sh, sw, c0, c1)


@kernel(None)
def _maxpool_sep(x, xo, xcs, xrs, y, yo, ycs, yrs, oh, ow, kh, kw, sh, sw, c0, c1):
    n = (ow - 1) * sw + kw
    m = np.empty(n, _F)
    for c in range(c0, c1):
        for h in range(oh):
            xi = xo + c * xcs + h * sh * xrs
            r = x[xi:xi + n]
            for q in range(n):
                m[q] = r[q]
            for i in range(1, kh):
                r = x[xi + i * xrs:xi + i * xrs + n]
                for q in range(n):
                    m[q] = max(m[q], r[q])
            yi = yo + c * ycs + h * yrs
            o = y[yi:yi + ow]
            for q in range(ow):
                o[q] = m[q * sw]
            for j in range(1, kw):
                for q in range(ow):
                    o[q] = max(o[q], m[q * sw + j])


@kernel("void(float32[::1], float32[::1], float32[::1], int64, int64, float32, float32, int64, int64)")
def binary_act(a, b, y, op, act, p0, p1, lo, hi):
    """y = act(a op b) over [lo, hi) of same-shape flat operands (op 0..3: + - * /)."""
    n = hi - lo
    av, bv, yv = a[lo:hi], b[lo:hi], y[lo:hi]
    if op == 0:
        for i in range(n):
            yv[i] = av[i] + bv[i]
    elif op == 1:
        for i in range(n):
            yv[i] = av[i] - bv[i]
    elif op == 2:
        for i in range(n):
            yv[i] = av[i] * bv[i]
    else:
        for i in range(n):
            yv[i] = av[i] / bv[i]
    if act:
        act_row(y, lo, hi - lo, act, p0, p1)


def available() -> bool:
    """The compiled kernels are usable in this process now. Never waits: the first call starts the
    background work (numba's import, the cache's loads, a compile of what it lacks: `jit.start`)."""
    return jit.start()


def first_result_done() -> None:
    """An executor's first result is out: the background work may begin (`jit.first_result_done`)."""
    jit.first_result_done()


def wait(timeout: float | None = None) -> bool:
    """`available`, after waiting (up to `timeout` s) for the background work to end."""
    return jit.wait(timeout)
