"""Tensors made from an input's shape or triangle: Trilu (keep the upper or lower triangle of
the last two dims, diagonal offset `k`) and EyeLike (ones on diagonal `k`, in the output's type)."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import ANY
from mace.runtime.cpu.registry import cpu_op


@cpu_op("Trilu", types=ANY)
def trilu(node, inputs):
    x = np.asarray(inputs[0])
    k = int(node.attrs.get("k", 0))
    fn = np.triu if int(node.attrs.get("upper", 1)) else np.tril
    return [np.asarray(fn(x, k), order="C")]


@cpu_op("EyeLike", types=ANY)
def eye_like(node, inputs):
    n, m = np.asarray(inputs[0]).shape
    return [np.eye(n, m, int(node.attrs.get("k", 0)), dtype=np.dtype(node.attrs["dtype"]))]
