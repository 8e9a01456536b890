"""Integer arithmetic with ONNX's semantics (NumPy's differ for Div and Mod):
Div truncates toward zero; Mod with fmod=0 takes the divisor's sign (Python's %), with fmod=1
the dividend's (C's fmod). Wrap-around on overflow, as in ONNX and NumPy."""
from __future__ import annotations

import numpy as np


def trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b rounded toward zero, exact for every integer width (no float round trip); a zero
    divisor gives 0 (ONNX leaves it undefined)."""
    with np.errstate(all="ignore"):
        q = np.floor_divide(a, b)
        if np.dtype(q.dtype).kind == "i":
            r = a - q * b
            q = q + ((r != 0) & ((a < 0) != (b < 0))).astype(q.dtype)
    return q


def mod(a: np.ndarray, b: np.ndarray, fmod: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.fmod(a, b) if fmod else np.mod(a, b)


def clip_bounds(dtype, lo: float, hi: float):
    """Clip's float bounds (attributes after normalization) within the integer type's range."""
    info = np.iinfo(dtype)
    lo = info.min if lo <= info.min else int(np.ceil(lo))
    hi = info.max if hi >= info.max else int(np.floor(hi))
    return np.asarray(lo, dtype), np.asarray(hi, dtype)
