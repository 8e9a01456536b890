"""Ops that only reinterpret the shape: Reshape, Flatten, Squeeze, Unsqueeze, Identity (any element type)."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import ANY
from mace.runtime.cpu.registry import cpu_op


@cpu_op("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", types=ANY)
def reshape_like(node, inputs):
    # The normalized attrs hold the static output shape, so every one of these is a reshape to
    # it (a view: kernels never write into their inputs). An Identity the converter kept (graph
    # input -> graph output) has no `shape` and is a copy, so an output never aliases an input.
    shape = node.attrs.get("shape")
    x = inputs[0]
    if shape is None:
        return [np.array(x, copy=True)]
    return [np.reshape(x, shape)]
