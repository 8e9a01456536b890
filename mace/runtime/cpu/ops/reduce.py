"""ReduceMean over `axes` (non-negative, sorted; empty: identity) with `keepdims`."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu.registry import cpu_op


@cpu_op("ReduceMean")
def reduce_mean(node, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    axes = tuple(int(a) % max(x.ndim, 1) for a in node.attrs.get("axes", range(x.ndim)))
    keep = bool(node.attrs.get("keepdims", 1))
    if not axes:
        return [np.array(x, dtype=np.float32)]
    return [np.asarray(np.mean(x, axis=axes, keepdims=keep, dtype=np.float32), dtype=np.float32)]
