"""Einsum: NumPy's einsum on the normalized equation (explicit `->` output), float32 or integer
operands (one, two or more: exporters write the two-operand forms of batched matmuls and
attention)."""
from __future__ import annotations

import numpy as np

from mace.ops.dtypes import NUMERIC
from mace.runtime.cpu.registry import cpu_op


@cpu_op("Einsum", types=NUMERIC)
def einsum(node, inputs):
    xs = [np.asarray(x) for x in inputs]
    out = np.einsum(node.attrs["equation"], *xs, optimize=len(xs) > 2)
    return [np.asarray(out, dtype=xs[0].dtype, order="C")]
