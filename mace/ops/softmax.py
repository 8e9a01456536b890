"""Softmax's view of its input: [outer, n, inner] around `axis`, or with `legacy_flatten`
(opset < 13) [prod(dims before axis), prod(dims from axis), 1]."""
from __future__ import annotations

import numpy as np


def _numel(dims) -> int:
    return int(np.prod(dims, dtype=np.int64)) if len(dims) else 1


def softmax_view(shape, axis: int, legacy: bool) -> tuple[int, int, int]:
    shape = list(shape)
    if not shape:
        return 1, 1, 1
    if legacy:
        return _numel(shape[:axis]), _numel(shape[axis:]), 1
    return _numel(shape[:axis]), shape[axis], _numel(shape[axis + 1:])
