"""Gemm / MatMul: the reduction length K and flops."""
from __future__ import annotations

import numpy as np


def reduction_len(op_type: str, a_shape, attrs) -> int:
    """K, the length of each dot product: A's last dim (its first for Gemm with transA)."""
    return a_shape[0] if op_type == "Gemm" and attrs.get("transA") else a_shape[-1]


def flops(op_type: str, a_shape, out_shape, attrs) -> float:
    """2 x multiply-accumulates: every output element is a dot product of length K."""
    return 2.0 * float(np.prod(out_shape)) * float(reduction_len(op_type, a_shape, attrs))
