"""ConvTranspose geometry: the full (uncropped) and the output spatial sizes, the pads an explicit
output shape implies, and flops."""
from __future__ import annotations

import numpy as np


def full_size(n, k, s, d, opad) -> int:
    """Length of one axis before the pads are cropped: s * (n - 1) + (k - 1) * d + 1 + output_padding."""
    return s * (n - 1) + (k - 1) * d + 1 + opad


def out_spatial(in_sp, kernel, strides, dilations, pads, output_padding) -> tuple:
    """Output spatial shape; `pads` holds the begins then the ends."""
    nsp = len(kernel)
    return tuple(full_size(in_sp[d], kernel[d], strides[d], dilations[d], output_padding[d]) - pads[d] - pads[nsp + d]
                 for d in range(nsp))


def pads_for_output(in_sp, out_sp, kernel, strides, dilations, output_padding, auto_pad) -> list[int]:
    """Pads (begins then ends) that give `out_sp`; SAME_UPPER puts the odd one at the end, else the begin."""
    begins, ends = [], []
    for d in range(len(kernel)):
        total = max(full_size(in_sp[d], kernel[d], strides[d], dilations[d], output_padding[d]) - out_sp[d], 0)
        if auto_pad == "SAME_UPPER":
            begins.append(total // 2)
            ends.append(total - total // 2)
        else:
            begins.append(total - total // 2)
            ends.append(total // 2)
    return begins + ends


def flops(in_shape, w_shape) -> float:
    """2 x multiply-accumulates: every input element meets Mg * prod(kernel) weights."""
    return 2.0 * float(np.prod(in_shape)) * float(np.prod(w_shape[1:]))
