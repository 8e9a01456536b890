"""Pooling windows: geometry from the normalized attributes (ceil mode included), the end padding
that keeps every window inside the padded buffer, the divisor of each AveragePool window, flops."""
from __future__ import annotations

import numpy as np

from mace.ops.conv import out_spatial, tap_slices


def geometry(attrs, in_shape):
    """(kernel, strides, dilations, pads, ends, out_sp) of a MaxPool / AveragePool on `in_shape`
    (N, C, *spatial); `ends` is the end padding so that every output window lies inside the
    padded input (at least the model's own end pads)."""
    nsp = len(in_shape) - 2
    in_sp = list(in_shape[2:])
    kernel = list(attrs["kernel_shape"])
    strides = attrs.get("strides", [1] * nsp)
    dil = attrs.get("dilations", [1] * nsp)
    pads = list(attrs.get("pads", [0] * (2 * nsp)))
    out_sp = out_spatial(in_sp, kernel, strides, dil, pads, bool(attrs.get("ceil_mode", 0)))
    ends = [max((out_sp[d] - 1) * strides[d] + (kernel[d] - 1) * dil[d] + 1 - in_sp[d] - pads[d], pads[nsp + d])
            for d in range(nsp)]
    return kernel, strides, dil, pads, ends, out_sp


def window_counts(in_sp, kernel, strides, dil, pads, ends, out_sp, include_pad) -> np.ndarray:
    """AveragePool divisor per output position (float32, at least 1): the window's cells inside
    the input, or inside input + the model's pads with count_include_pad."""
    nsp = len(kernel)
    ones = np.zeros(tuple(in_sp[d] + pads[d] + ends[d] for d in range(nsp)), np.float32)
    if include_pad:
        ones[tuple(slice(0, pads[d] + in_sp[d] + pads[nsp + d]) for d in range(nsp))] = 1
    else:
        ones[tuple(slice(pads[d], pads[d] + in_sp[d]) for d in range(nsp))] = 1
    cnt = np.zeros(out_sp, np.float32)
    for _, sl in tap_slices(kernel, strides, dil, out_sp):
        cnt += ones[sl]
    return np.maximum(cnt, 1)


def flops(out_shape, kernel) -> float:
    """One operation per window cell of every output."""
    return float(np.prod(out_shape)) * float(np.prod(kernel))
