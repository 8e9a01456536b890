"""Conv geometry: output sizes (ceil mode included), auto_pad, the 1-D-as-2-D view both GPU conv
kernels use, kernel-tap windows (shared with pooling and ConvTranspose), and flops."""
from __future__ import annotations

import itertools
import math

import numpy as np


def out_size(n, k, s, d, pb, pe, ceil_mode=False):
    """Output length of one spatial axis: input n, kernel k, stride s, dilation d, pads pb/pe.
    With ceil_mode, the last window must start inside the input or the left padding (what
    onnxruntime and PyTorch do)."""
    eff = (k - 1) * d + 1
    num = n + pb + pe - eff
    if ceil_mode:
        o = -(-num // s) + 1
        if (o - 1) * s >= n + pb:
            o -= 1
        return o
    return num // s + 1


def out_spatial(in_sp, kernel, strides, dilations, pads, ceil_mode=False) -> tuple:
    """Output spatial shape; `pads` holds the begins then the ends."""
    nsp = len(kernel)
    return tuple(out_size(in_sp[d], kernel[d], strides[d], dilations[d], pads[d], pads[nsp + d], ceil_mode)
                 for d in range(nsp))


def auto_pads(auto_pad: str, in_sp, kernel, strides, dilations) -> list[int] | None:
    """Explicit pads (begins then ends) for auto_pad SAME_UPPER / SAME_LOWER / VALID; None for NOTSET."""
    nsp = len(kernel)
    if auto_pad == "VALID":
        return [0] * (2 * nsp)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return None
    begins, ends = [], []
    for d in range(nsp):
        eff = (kernel[d] - 1) * dilations[d] + 1
        out = math.ceil(in_sp[d] / strides[d])
        total = max((out - 1) * strides[d] + eff - in_sp[d], 0)
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def as_2d(in_shape, out_shape, w_shape, attrs):
    """Geometry of a 1-D or 2-D conv as 2-D: (N, C, H, W), (OH, OW), (KH, KW), strides, dilations, pads."""
    nsp = len(in_shape) - 2
    kernel = list(attrs.get("kernel_shape", w_shape[2:]))
    strides = list(attrs.get("strides", [1] * nsp))
    dil = list(attrs.get("dilations", [1] * nsp))
    pads = list(attrs.get("pads", [0] * (2 * nsp)))
    if nsp == 1:
        return ((in_shape[0], in_shape[1], 1, in_shape[2]), (1, out_shape[2]), (1, kernel[0]), (1, strides[0]),
                (1, dil[0]), (0, pads[0], 0, pads[1]))
    return (tuple(in_shape), tuple(out_shape[2:]), tuple(kernel), tuple(strides), tuple(dil), tuple(pads))


def tap_slices(kernel, strides, dilations, out_sp):
    """For each kernel tap: (tap index tuple, spatial slices into the padded input) selecting the
    input element each output position reads through that tap."""
    for tap in itertools.product(*[range(k) for k in kernel]):
        sl = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, s, o in zip(tap, dilations, strides, out_sp))
        yield tap, sl


def flops(out_shape, w_shape) -> float:
    """2 x multiply-accumulates: every output element sums Cg * prod(kernel) products."""
    return 2.0 * float(np.prod(out_shape)) * float(np.prod(w_shape[1:]))
