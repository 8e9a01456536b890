"""ConvTranspose on the CPU (NCHW; 1-D, 2-D and 3-D): col = W^T @ X per group (one sgemm), then
col2im: one strided scatter-add per kernel tap into the output. Sizes and taps come from
`mace.ops.deconv` and `mace.ops.conv`; bias and the fused activation are applied in place."""
from __future__ import annotations

import numpy as np

from mace.ops.conv import tap_slices
from mace.ops.deconv import full_size
from mace.runtime.cpu import activation
from mace.runtime.cpu.helpers import F32
from mace.runtime.cpu.registry import cpu_op


@cpu_op("ConvTranspose")
def conv_transpose(node, inputs):
    a = node.attrs
    x = np.asarray(inputs[0], F32)
    w = np.asarray(inputs[1], F32)  # (C, M/group, *k)
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
    full_sp = tuple(full_size(in_sp[d], kernel[d], strides[d], dilations[d], opad[d]) for d in range(nsp))
    out_sp = tuple(full_sp[d] - pads[d] - pads[nsp + d] for d in range(nsp))
    ksz = int(np.prod(kernel))
    pin = int(np.prod(in_sp))
    # (group, mg*ksz, cg) @ (n, group, cg, pin) -> (n, group, mg*ksz, pin)
    wt = w.reshape(group, cg, mg * ksz).transpose(0, 2, 1)
    col = np.matmul(wt, x.reshape(n, group, cg, pin)).reshape((n, m) + tuple(kernel) + tuple(in_sp))
    # accumulate into a buffer big enough for every tap, then crop pads
    big_sp = tuple(max(full_sp[d], pads[d] + out_sp[d]) for d in range(nsp))
    acc = np.zeros((n, m) + big_sp, F32)
    for tap, sl in tap_slices(kernel, strides, dilations, in_sp):
        acc[(slice(None), slice(None)) + sl] += col[(slice(None), slice(None)) + tap]
    crop = (slice(None), slice(None)) + tuple(slice(pads[d], pads[d] + out_sp[d]) for d in range(nsp))
    out = np.ascontiguousarray(acc[crop])
    if b is not None:
        out += np.asarray(b, F32).reshape((1, m) + (1,) * nsp)
    return [activation.apply_node(out, node)]
