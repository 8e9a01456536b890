"""Index rules shared by Gather, GatherElements, GatherND, ArgMax/ArgMin and TopK: ONNX indices
may be negative (counted from the end); one outside [-n, n) is an error of the run's inputs."""
from __future__ import annotations

import numpy as np

from mace.errors import InputError


def wrap(indices, size: int, what: str) -> np.ndarray:
    """Indices in [0, size) as int64; InputError naming `what` for one out of range."""
    idx = np.asarray(indices, dtype=np.int64)
    bad = (idx < -size) | (idx >= size)
    if bad.any():
        raise InputError(f"{what}: index {int(idx[bad].reshape(-1)[0])} is out of range for a dimension of "
                         f"size {size}: pass indices in [-{size}, {size})")
    return np.where(idx < 0, idx + size, idx)


def gather_shape(data_shape, indices_shape, axis: int) -> list[int]:
    """Gather's output: data's dims before axis, the indices' dims, data's dims after axis."""
    return [*data_shape[:axis], *indices_shape, *data_shape[axis + 1:]]


def reduced_shape(shape, axis: int, keepdims: bool) -> list[int]:
    """ArgMax/ArgMin's output: `axis` kept as 1 or dropped."""
    return [1 if d == axis else n for d, n in enumerate(shape) if keepdims or d != axis]
