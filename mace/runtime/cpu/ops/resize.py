"""Resize on the CPU: nearest / linear / cubic, separable per axis, each axis resampled with
its tap table from `mace.ops.resize`."""
from __future__ import annotations

import numpy as np

from mace.ops.resize import axis_taps, is_identity, output_shape
from mace.runtime.cpu.registry import cpu_op


@cpu_op("Resize")
def resize(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    a = node.attrs
    out_shape = output_shape(node, x.shape)
    scales = a["scales"]
    if a.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        raise ValueError(f"node {node.name}: Resize tf_crop_and_resize is not supported")
    for ax in range(x.ndim):
        idx, w = axis_taps(x.shape[ax], out_shape[ax], scales[ax], a)
        if is_identity(idx, w, x.shape[ax]):
            continue
        bshape = [1] * x.ndim
        bshape[ax] = out_shape[ax]
        acc = None
        for t in range(idx.shape[1]):
            part = np.take(x, idx[:, t], axis=ax)
            if idx.shape[1] > 1:
                part = part * w[:, t].reshape(bshape)
            acc = part if acc is None else acc + part
        x = acc
    return [np.ascontiguousarray(x, dtype=np.float32)]
