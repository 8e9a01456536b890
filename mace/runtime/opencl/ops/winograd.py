"""Host side of Conv's `winograd` variant, F(2x2,3x3) (kernels: winograd.cl; launches: conv.py)."""
from __future__ import annotations

import numpy as np

#: filter transform of F(2x2,3x3): U = G g G^T
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def qualifies(rank: int, kernel, strides, dilations, group: int) -> bool:
    """F(2x2,3x3) computes exactly a 2-D 3x3 conv with stride 1, dilation 1 and one group."""
    return rank == 4 and tuple(kernel) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilations) == (1, 1) \
        and group == 1


def transform_weights(w: np.ndarray) -> np.ndarray:
    """U = G g G^T of every (m, c) 3x3 filter g of w (M, C, 3, 3), as (16, M, C) float32: one
    M x C GEMM operand per transform position i = 4 * row + column. In float64, rounded once."""
    m, c = w.shape[:2]
    u = np.einsum("ik,mckl,jl->ijmc", G, np.asarray(w, np.float64), G)
    return u.reshape(16, m, c).astype(np.float32)


def plane_rows(rows: int, t: int, itemsize: int) -> int:
    """Rows of V's planes (C, padded with zero channels) such that the 16 planes of a
    (16, rows, T) buffer start in distinct sets of a 4 KiB-periodic cache (64 sets of 64-byte
    lines): at a multiple of 4 KiB (64 channels x 28x28 tiles) the input transform's 16 write
    streams share one set and it runs at half speed (measured on PoCL). Not applied to M: the
    output transform's reads suffer less than the GEMM loses to extra output channels."""
    for r in range(rows, rows + 16):
        if len({i * r * t * itemsize // 64 % 64 for i in range(16)}) == 16:
            return r
    return rows
