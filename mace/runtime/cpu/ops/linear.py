"""Gemm and MatMul on the CPU: BLAS sgemm through np.matmul (transposes are free views)."""
from __future__ import annotations

import numpy as np

from mace.runtime.cpu import activation
from mace.runtime.cpu.registry import cpu_op

_F32 = np.float32


@cpu_op("Gemm")
def gemm(node, inputs):
    a = node.attrs
    A = np.asarray(inputs[0], _F32)
    B = np.asarray(inputs[1], _F32)
    C = inputs[2] if len(inputs) > 2 else None
    if a.get("transA", 0):
        A = A.T
    if a.get("transB", 0):
        B = B.T
    out = np.matmul(A, B)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if alpha != 1.0:
        out *= _F32(alpha)
    if C is not None and beta != 0.0:
        C = np.asarray(C, _F32)
        out += C if beta == 1.0 else C * _F32(beta)
    return [activation.apply_node(out, node)]


@cpu_op("MatMul")
def matmul(node, inputs):
    out = np.matmul(np.asarray(inputs[0], _F32), np.asarray(inputs[1], _F32))
    out = np.asarray(out, _F32)  # 0-d for two vectors (ascontiguousarray would make it 1-d)
    if not out.flags.c_contiguous:
        out = np.ascontiguousarray(out)
    return [activation.apply_node(out, node)]
