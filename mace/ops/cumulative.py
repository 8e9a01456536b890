"""CumSum / CumProd along an axis, with ONNX's `exclusive` (the sum before each element, the
first being the identity) and `reverse` (from the end)."""
from __future__ import annotations

import numpy as np


def cumulate(x: np.ndarray, axis: int, exclusive: bool, reverse: bool, prod: bool = False) -> np.ndarray:
    x = np.asarray(x)
    if reverse:
        x = np.flip(x, axis)
    with np.errstate(all="ignore"):
        out = (np.cumprod if prod else np.cumsum)(x, axis=axis, dtype=x.dtype)
    if exclusive:
        ident = np.ones_like if prod else np.zeros_like
        first = ident(np.take(out, [0], axis=axis))
        out = np.concatenate([first, np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis=axis)
    if reverse:
        out = np.flip(out, axis)
    return np.asarray(out, order="C")
