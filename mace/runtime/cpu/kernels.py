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

from mace.runtime.cpu.jit import kernel

ACT = {None: 0, "": 0, "Relu": 1, "Clip": 2, "LeakyRelu": 3, "Sigmoid": 4, "Tanh": 5, "HardSigmoid": 6,
       "HardSwish": 7}
_F = np.float32

_PLANE = "float32[::1], int64, int64, int64"
_EPILOGUE_SIG = (f"void({_PLANE}, float32[::1], boolean, {_PLANE}, {_PLANE}, "
                 "int64, int64, int64, float32, float32, int64, int64)")


@kernel("void(float32[::1], int64, int64, int64, float32, float32)")
def act_row(y, start, n, act, p0, p1):
    """y[start:start + n] = act(y[...]) in place; one loop per activation (vectorizable)."""
    if act == 1:
        for i in range(start, start + n):
            y[i] = max(y[i], _F(0))
    elif act == 2:
        for i in range(start, start + n):
            y[i] = min(max(y[i], p0), p1)
    elif act == 3:
        for i in range(start, start + n):
            v = y[i]
            y[i] = v if v >= 0 else v * p0
    elif act == 4:
        for i in range(start, start + n):
            y[i] = _F(1) / (_F(1) + math.exp(-y[i]))
    elif act == 5:
        for i in range(start, start + n):
            y[i] = math.tanh(y[i])
    elif act == 6:
        for i in range(start, start + n):
            y[i] = min(max(y[i] * p0 + p1, _F(0)), _F(1))
    elif act == 7:
        for i in range(start, start + n):
            v = y[i]
            y[i] = v * min(max(v / _F(6) + _F(0.5), _F(0)), _F(1))


@kernel(_EPILOGUE_SIG)
def epilogue(a, ao, acs, ars, bias, has_res, r, ro, rcs, rrs, y, yo, ycs, yrs, oh, ow, act, p0, p1, c0, c1):
    """y[c, h, w] = act(a[c, h, w] + bias[c] (+ r[c, h, w])): the one pass after a GEMM (bias,
    residual, activation, the crop of padded GEMM columns, the write into a consumer's buffer)."""
    for c in range(c0, c1):
        bc = bias[c]
        for h in range(oh):
            ai = ao + c * acs + h * ars
            yi = yo + c * ycs + h * yrs
            if has_res:
                ri = ro + c * rcs + h * rrs
                for w in range(ow):
                    y[yi + w] = a[ai + w] + bc + r[ri + w]
            else:
                for w in range(ow):
                    y[yi + w] = a[ai + w] + bc
            if act:
                act_row(y, yi, ow, act, p0, p1)


@kernel(f"void({_PLANE}, float32[:, :, ::1], float32[::1], {_PLANE}, "
        "int64, int64, int64, int64, int64, int64, int64, float32, float32, int64, int64)")
def depthwise(x, xo, xcs, xrs, w, bias, y, yo, ycs, yrs, oh, ow, sh, sw, dh, dw, act, p0, p1, c0, c1):
    """Depthwise conv + bias + activation from a zero-padded input plane, one output row at a time
    (the row stays in L1 between the taps and the activation). 3x3 taps are one expression per
    output (no accumulator traffic); stride-2 rows are split into even/odd columns first, so every
    tap reads contiguous memory."""
    kh, kw = w.shape[1], w.shape[2]
    need = (ow - 1) * sw + (kw - 1) * dw + 1
    ev = np.empty(need // 2 + 2, _F)
    od = np.empty(need // 2 + 2, _F)
    for c in range(c0, c1):
        bc = bias[c]
        for h in range(oh):
            yi = yo + c * ycs + h * yrs
            if kh == 3 and kw == 3 and dh == 1 and dw == 1 and sw <= 2:
                _dw3_row(x, xo + c * xcs + h * sh * xrs, xrs, w[c], bc, y, yi, ow, sw, ev, od)
            else:
                for i in range(ow):
                    y[yi + i] = bc
                for i in range(kh):
                    xi = xo + c * xcs + (h * sh + i * dh) * xrs
                    for j in range(kw):
                        wv = w[c, i, j]
                        xj = xi + j * dw
                        if sw == 1:
                            for q in range(ow):
                                y[yi + q] += wv * x[xj + q]
                        else:
                            for q in range(ow):
                                y[yi + q] += wv * x[xj + q * sw]
            if act:
                act_row(y, yi, ow, act, p0, p1)


@kernel("void(float32[::1], int64, int64, float32[:, ::1], float32, float32[::1], int64, int64, int64, "
        "float32[::1], float32[::1])")
def _dw3_row(x, xi, xrs, w, bc, y, yi, ow, sw, ev, od):
    w00, w01, w02 = w[0, 0], w[0, 1], w[0, 2]
    w10, w11, w12 = w[1, 0], w[1, 1], w[1, 2]
    w20, w21, w22 = w[2, 0], w[2, 1], w[2, 2]
    a, b, c = xi, xi + xrs, xi + 2 * xrs
    if sw == 1:
        for q in range(ow):
            y[yi + q] = (bc + w00 * x[a + q] + w01 * x[a + q + 1] + w02 * x[a + q + 2]
                         + w10 * x[b + q] + w11 * x[b + q + 1] + w12 * x[b + q + 2]
                         + w20 * x[c + q] + w21 * x[c + q + 1] + w22 * x[c + q + 2])
        return
    for q in range(ow):
        y[yi + q] = bc
    for r, u0, u1, u2 in ((a, w00, w01, w02), (b, w10, w11, w12), (c, w20, w21, w22)):
        for q in range(ow):      # deinterleave: ev[q] = row[2q], od[q] = row[2q + 1]
            ev[q] = x[r + 2 * q]
            od[q] = x[r + 2 * q + 1]
        ev[ow] = x[r + 2 * ow]
        for q in range(ow):
            y[yi + q] += u0 * ev[q] + u1 * od[q] + u2 * ev[q + 1]


@kernel(f"void({_PLANE}, {_PLANE}, int64, int64, int64, int64, int64, int64, int64, int64, "
        "boolean, float32[:, ::1], int64, int64)")
def pool(x, xo, xcs, xrs, y, yo, ycs, yrs, oh, ow, kh, kw, sh, sw, dh, dw, is_max, inv, c0, c1):
    """Max (is_max) or average pooling of a padded plane (-inf / 0 padding); the average is scaled
    by `inv` (OH, OW): 1 / the window's counted elements."""
    for c in range(c0, c1):
        for h in range(oh):
            yi = yo + c * ycs + h * yrs
            for i in range(kh):
                xi = xo + c * xcs + (h * sh + i * dh) * xrs
                for j in range(kw):
                    xj = xi + j * dw
                    first = i == 0 and j == 0
                    for q in range(ow):
                        v = x[xj + q * sw]
                        if first:
                            y[yi + q] = v
                        elif is_max:
                            y[yi + q] = max(y[yi + q], v)
                        else:
                            y[yi + q] += v
            if not is_max:
                for q in range(ow):
                    y[yi + q] *= inv[h, q]


@kernel("void(float32[::1], float32[::1], float32[::1], int64, int64, float32, float32, int64, int64)")
def binary_act(a, b, y, op, act, p0, p1, lo, hi):
    """y = act(a op b) over [lo, hi) of same-shape flat operands (op 0..3: + - * /)."""
    if op == 0:
        for i in range(lo, hi):
            y[i] = a[i] + b[i]
    elif op == 1:
        for i in range(lo, hi):
            y[i] = a[i] - b[i]
    elif op == 2:
        for i in range(lo, hi):
            y[i] = a[i] * b[i]
    else:
        for i in range(lo, hi):
            y[i] = a[i] / b[i]
    if act:
        act_row(y, lo, hi - lo, act, p0, p1)


ALL = (act_row, _dw3_row, epilogue, depthwise, pool, binary_act)
