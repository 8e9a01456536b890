"""Ops that only reinterpret the shape: Reshape, Flatten, Squeeze, Unsqueeze, Identity."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu.registry import cpu_op


@cpu_op("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
def reshape_like(node, inputs):
    # The output shape is static (kept in node attrs by the frontend for Reshape; the executor
    # knows all shapes), so every one of these is a reshape to the planned shape.
    shape = node.attrs.get("shape")
    x = inputs[0]
    if shape is None:
        return [x]
    return [np.reshape(x, shape)]
